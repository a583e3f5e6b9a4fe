// The client side shared by the tests: oauth4webapi calls wired to the server's CA-trusting
// fetch, dynamic registration of a FAPI 2.0 client, PAR, and readable error messages.

import { randomUUID } from 'node:crypto';

import * as jose from 'jose';
import * as oauth from 'oauth4webapi';

import { REDIRECT_URI } from './server.mjs';

// FAPI 2.0 algorithms (AS-SP-95); `Ed25519` is the fully-specified name oauth4webapi uses.
export const FAPI_ALGS = ['ES256', 'PS256', 'EdDSA', 'Ed25519'];
export const SCOPE = 'openid profile email';

// Per-request options: the server's fetch, a timeout and a fresh x-fapi-interaction-id. A
// `[oauth.customFetch]` in `extra` (e.g. one presenting a TLS client certificate) replaces the
// server's fetch.
export function requestOptions(server, extra = {}) {
  return {
    [oauth.customFetch]: server.fetch,
    ...extra,
    headers: { 'x-fapi-interaction-id': randomUUID(), ...extra.headers },
    signal: AbortSignal.timeout(15_000),
  };
}

// Makes an oauth4webapi failure say what the server actually answered.
export function explain(err) {
  if (err instanceof oauth.ResponseBodyError) {
    return `HTTP ${err.status} ${JSON.stringify(err.cause)}`;
  }
  if (err instanceof oauth.WWWAuthenticateChallengeError) {
    return `HTTP ${err.status} WWW-Authenticate ${JSON.stringify(err.cause)}`;
  }
  if (err instanceof oauth.AuthorizationResponseError) {
    return `authorization error ${err.error}: ${err.error_description ?? ''}`;
  }
  if (err instanceof oauth.OperationProcessingError) {
    let detail = '';
    if (err.cause instanceof Response) detail = ` (HTTP ${err.cause.status} ${err.cause.headers.get('content-type')})`;
    else if (err.cause !== undefined) {
      try { detail = ` ${JSON.stringify(err.cause).slice(0, 600)}`; } catch { /* not serialisable */ }
    }
    return `${err.message} [${err.code}]${detail}`;
  }
  return err?.cause?.message ? `${err.message}: ${err.cause.message}` : String(err?.message ?? err);
}

// Runs one named step; a failure names the step and the server's answer.
export async function step(name, fn) {
  try {
    return await fn();
  } catch (err) {
    if (err?.code === 'ERR_ASSERTION') throw err;
    throw new Error(`${name}: ${explain(err)}`, { cause: err });
  }
}

// request + process, repeated once when the server demands a (new) DPoP nonce. The DPoP handle
// has cached the nonce from the error response, so the second proof carries it (AS-SP-82).
export async function withDpopNonceRetry(fn) {
  try {
    return await fn();
  } catch (err) {
    if (!oauth.isDPoPNonceError(err)) throw err;
    return fn();
  }
}

export async function discover(server) {
  const issuer = new URL(server.issuer);
  const res = await oauth.discoveryRequest(issuer, requestOptions(server, { algorithm: 'oidc' }));
  return oauth.processDiscoveryResponse(issuer, res);
}

// RFC 7591 registration of a private_key_jwt (ES256) client with its own JWKS and
// DPoP-bound tokens, using the server's initial access token.
export async function registerClient(server, as, { clientName = 'interop flow.test.mjs' } = {}) {
  const { publicKey, privateKey } = await jose.generateKeyPair('ES256');
  const jwk = { ...(await jose.exportJWK(publicKey)), alg: 'ES256', use: 'sig' };
  jwk.kid = await jose.calculateJwkThumbprint(jwk);
  const metadata = {
    client_name: clientName,
    redirect_uris: [REDIRECT_URI],
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    token_endpoint_auth_method: 'private_key_jwt',
    token_endpoint_auth_signing_alg: 'ES256',
    jwks: { keys: [jwk] },
    dpop_bound_access_tokens: true,
  };
  const options = requestOptions(server, server.initialAccessToken ? { initialAccessToken: server.initialAccessToken } : {});
  const res = await oauth.dynamicClientRegistrationRequest(as, metadata, options);
  const client = await oauth.processDynamicClientRegistrationResponse(res);
  const signingKey = { key: privateKey, kid: jwk.kid };
  return { client, metadata, clientAuth: oauth.PrivateKeyJwt(signingKey), signingKey };
}

// RFC 7591 registration of a tls_client_auth client (RFC 8705 §2.1) with certificate-bound
// access tokens (§3): the subject DN in RFC 4514 order, no keys and no secret. The returned
// client asks oauth4webapi for the mtls_endpoint_aliases (`use_mtls_endpoint_aliases`, §5);
// the certificate itself travels in the fetch given as [oauth.customFetch].
export async function registerTlsClient(server, as, { subjectDn, clientName = 'interop mtls.test.mjs' }) {
  const metadata = {
    client_name: clientName,
    redirect_uris: [REDIRECT_URI],
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    scope: SCOPE,
    token_endpoint_auth_method: 'tls_client_auth',
    tls_client_auth_subject_dn: subjectDn,
    tls_client_certificate_bound_access_tokens: true,
  };
  const options = requestOptions(server, server.initialAccessToken ? { initialAccessToken: server.initialAccessToken } : {});
  const res = await oauth.dynamicClientRegistrationRequest(as, metadata, options);
  const registered = await oauth.processDynamicClientRegistrationResponse(res);
  return { client: { ...registered, use_mtls_endpoint_aliases: true }, registered, metadata, clientAuth: oauth.TlsClientAuth() };
}

export async function newDpop(client) {
  return oauth.DPoP(client, await jose.generateKeyPair('ES256'));
}

// PAR with PKCE S256, state and nonce, client-authenticated with `clientAuth` (private_key_jwt,
// or TlsClientAuth() with `fetch` presenting the certificate) and carrying a DPoP proof unless
// `dpop` is undefined. Returns the secrets the rest of the flow needs and the front-channel URL,
// which carries only client_id + request_uri (AS-SP-49).
export async function pushAuthorizationRequest(server, as, { client, clientAuth }, dpop, { scope = SCOPE, fetch, extra = {} } = {}) {
  const codeVerifier = oauth.generateRandomCodeVerifier();
  const state = oauth.generateRandomState();
  const nonce = oauth.generateRandomNonce();
  const params = new URLSearchParams({
    response_type: 'code',
    client_id: client.client_id,
    redirect_uri: REDIRECT_URI,
    scope,
    code_challenge: await oauth.calculatePKCECodeChallenge(codeVerifier),
    code_challenge_method: 'S256',
    state,
    nonce,
    ...extra,
  });
  const par = await withDpopNonceRetry(async () => oauth.processPushedAuthorizationResponse(as, client,
    await oauth.pushedAuthorizationRequest(as, client, clientAuth, params,
      requestOptions(server, { DPoP: dpop, ...(fetch && { [oauth.customFetch]: fetch }) }))));
  const authorizationUrl = new URL(as.authorization_endpoint);
  authorizationUrl.searchParams.set('client_id', client.client_id);
  authorizationUrl.searchParams.set('request_uri', par.request_uri);
  return { codeVerifier, state, nonce, par, authorizationUrl };
}
