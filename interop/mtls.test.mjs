// RFC 8705 against a fresh Portcullis, driven by oauth4webapi: a tls_client_auth client with
// certificate-bound access tokens runs the whole flow over mutual TLS.
// client PKI (openssl) -> server trusting its CA -> discovery (mtls_endpoint_aliases) -> DCR ->
// PAR over mTLS (PKCE) -> login + consent -> callback with iss -> token over mTLS (Bearer) ->
// id_token (oauth4webapi + jose) -> userinfo over mTLS -> introspection: cnf x5t#S256 equals our
// own SHA-256 of the certificate. Then the binding: another certificate of the same CA, or none,
// is refused at userinfo (invalid_token) and at the token endpoint (invalid_client); a refresh
// with the right certificate still works.
//
// oauth4webapi leaves the certificate to the fetch it is given: TlsClientAuth() only sends
// client_id, `use_mtls_endpoint_aliases: true` on the client makes it use the aliases from
// discovery, and [oauth.customFetch] is a node:https agent presenting the client certificate.

import assert from 'node:assert/strict';
import { X509Certificate, createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';

import * as jose from 'jose';
import * as oauth from 'oauth4webapi';

import { createClientPki } from './lib/client-pki.mjs';
import {
  FAPI_ALGS, SCOPE, discover, pushAuthorizationRequest, registerTlsClient, requestOptions, step,
} from './lib/fapi-client.mjs';
import { FormBrowser, consentButton, describePage, loginForm } from './lib/form-browser.mjs';
import { createCaFetch } from './lib/https-fetch.mjs';
import { REDIRECT_URI, USER, startServer } from './lib/server.mjs';

// The registered subject, RFC 4514 order (last RDN of the openssl subject first).
const CLIENT_SUBJECT = '/O=Portcullis Interop/CN=interop-client';
const CLIENT_DN = 'CN=interop-client,O=Portcullis Interop';
const OTHER_SUBJECT = '/O=Portcullis Interop/CN=interop-other-client';

const MTLS_ALIASES = ['token_endpoint', 'pushed_authorization_request_endpoint', 'userinfo_endpoint', 'introspection_endpoint'];

// RFC 8705 §3.1: x5t#S256 is base64url(SHA-256(DER of the certificate)), computed here by
// node:crypto, independently of the server.
function x5tS256(certPem) {
  return createHash('sha256').update(new X509Certificate(certPem).raw).digest('base64url');
}

// Runs `fn`, which must fail; returns the error (an assertion failure when it succeeds).
async function rejection(name, fn) {
  try {
    const result = await fn();
    assert.fail(`${name}: expected a refusal, got ${JSON.stringify(result)?.slice(0, 300)}`);
  } catch (err) {
    if (err?.code === 'ERR_ASSERTION') throw err;
    return err;
  }
}

// RFC 6749 §5.2: 401 invalid_client (in the body; a WWW-Authenticate challenge is allowed too).
function assertInvalidClient(err, name) {
  if (err instanceof oauth.WWWAuthenticateChallengeError) {
    assert.equal(err.status, 401, `${name}: ${err.message}`);
    assert.ok(err.cause.some((c) => c.parameters.error === 'invalid_client'), `${name}: challenge ${JSON.stringify(err.cause)}`);
    return;
  }
  assert.ok(err instanceof oauth.ResponseBodyError, `${name}: expected an OAuth error response, got ${err?.stack ?? err}`);
  assert.equal(err.status, 401, `${name}: HTTP ${err.status} ${JSON.stringify(err.cause)}`);
  assert.equal(err.error, 'invalid_client', `${name}: ${JSON.stringify(err.cause)}`);
}

// RFC 6750 §3.1 + RFC 8705 §3: 401 with a Bearer challenge carrying error="invalid_token".
function assertInvalidToken(err, name) {
  assert.ok(err instanceof oauth.WWWAuthenticateChallengeError, `${name}: expected a WWW-Authenticate challenge, got ${err?.stack ?? err}`);
  assert.equal(err.status, 401, `${name}: HTTP ${err.status}`);
  const header = err.response.headers.get('www-authenticate');
  assert.match(header, /^Bearer\b/, `${name}: WWW-Authenticate ${header}`);
  const bearer = err.cause.find((c) => c.scheme === 'bearer');
  assert.equal(bearer?.parameters.error, 'invalid_token', `${name}: WWW-Authenticate ${header}`);
}

describe('RFC 8705 mTLS (tls_client_auth, certificate-bound tokens) with oauth4webapi', {
  skip: process.env.INTEROP_ISSUER
    ? 'needs a spawned Portcullis: the client CA it trusts (PORTCULLIS_TLS_CLIENT_CA_FILE) is made by this test, an external issuer\'s is unknown'
    : false,
}, () => {
  let pkiDir;
  let pki;
  let server;
  let as;
  let registered;
  let viaClientCert; // fetch presenting the registered client's certificate
  let viaOtherCert; // fetch presenting another certificate of the same CA (another subject)

  before(async () => {
    pkiDir = fs.mkdtempSync(path.join(os.tmpdir(), 'portcullis-interop-pki-'));
    pki = await step('client PKI (openssl)', async () => {
      const ca = await createClientPki(pkiDir);
      return { ...ca, client: await ca.issue('client', CLIENT_SUBJECT), other: await ca.issue('other', OTHER_SUBJECT) };
    });
    server = await startServer({ env: { PORTCULLIS_TLS_CLIENT_CA_FILE: pki.caFile } });
    viaClientCert = createCaFetch(server.caPem, { clientCert: pki.client });
    viaOtherCert = createCaFetch(server.caPem, { clientCert: pki.other });
    as = await step('discovery', () => discover(server));
    registered = await step('registration', () => registerTlsClient(server, as, { subjectDn: CLIENT_DN }));
  });

  after(async () => {
    viaClientCert?.close();
    viaOtherCert?.close();
    await server?.stop();
    if (pkiDir) fs.rmSync(pkiDir, { recursive: true, force: true });
  });

  // Options for one oauth4webapi request whose TLS connection presents `fetch`'s certificate.
  const over = (fetch, extra = {}) => requestOptions(server, { ...extra, [oauth.customFetch]: fetch });

  // PAR over mTLS, login + consent in the form browser, callback, code grant over mTLS; returns
  // the token response as processed by oauth4webapi (id_token checked, nonce included) and raw.
  async function authorize() {
    const { client, clientAuth } = registered;
    const { codeVerifier, state, nonce, par, authorizationUrl } = await step('PAR', () => pushAuthorizationRequest(server, as, registered, undefined, { fetch: viaClientCert }));
    assert.ok(par.expires_in > 0 && par.expires_in < 600, `PAR expires_in ${par.expires_in} (AS-SP-40)`);

    // Front channel on the main listener: no certificate there, and none needed.
    const browser = new FormBrowser({ fetch: server.fetch, redirectUri: REDIRECT_URI });
    const first = await step('authorization request', () => browser.open(authorizationUrl));
    const form = loginForm(first);
    assert.ok(form, `expected the login form (inputs username, password), got ${describePage(first)}`);
    const consentPage = await step('login', () => browser.submit(first, form, { fill: { username: server.username, password: server.password } }));
    const allow = consentButton(consentPage, 'allow');
    assert.ok(allow, `expected the consent form (decision=allow), got ${describePage(consentPage)}`);
    const callback = await step('consent', () => browser.submit(consentPage, allow.form, { button: allow.button }));
    assert.equal(callback.kind, 'callback', `expected a redirect to ${REDIRECT_URI}, got ${describePage(callback)}`);

    // RFC 9207 iss (AS-SP-50); oauth4webapi checks iss and state again.
    assert.equal(callback.url.searchParams.get('iss'), as.issuer, 'iss in the authorization response (AS-SP-50)');
    const params = await step('callback', () => oauth.validateAuthResponse(as, client, callback.url, state));

    // Code grant at the token endpoint's mTLS alias, authenticated by the certificate alone; no DPoP.
    // `raw` is the body as sent (oauth4webapi lower-cases token_type).
    let tokenResponse;
    let raw;
    const tokens = await step('token', async () => {
      tokenResponse = await oauth.authorizationCodeGrantRequest(as, client, clientAuth, params, REDIRECT_URI, codeVerifier, over(viaClientCert));
      raw = await tokenResponse.clone().json().catch(() => undefined);
      return oauth.processAuthorizationCodeResponse(as, client, tokenResponse, { expectedNonce: nonce, requireIdToken: true });
    });
    return { tokens, raw, tokenResponse, nonce };
  }

  async function userinfo(accessToken, fetch, expectedSubject, client = registered.client) {
    return oauth.processUserInfoResponse(as, client, expectedSubject,
      await oauth.userInfoRequest(as, client, accessToken, over(fetch)));
  }

  async function introspect(token) {
    const { client, clientAuth } = registered;
    return oauth.processIntrospectionResponse(as, client,
      await oauth.introspectionRequest(as, client, clientAuth, token, over(viaClientCert)));
  }

  test('discovery publishes tls_client_auth, bound tokens and the mTLS aliases on the mTLS listener (RFC 8705 §2.3, §3.3, §5)', () => {
    assert.ok(as.token_endpoint_auth_methods_supported?.includes('tls_client_auth'), `token_endpoint_auth_methods_supported ${JSON.stringify(as.token_endpoint_auth_methods_supported)}`);
    assert.equal(as.tls_client_certificate_bound_access_tokens, true, 'tls_client_certificate_bound_access_tokens (§3.3)');
    const aliases = as.mtls_endpoint_aliases;
    assert.ok(aliases && typeof aliases === 'object', `mtls_endpoint_aliases ${JSON.stringify(aliases)}`);
    const issuer = new URL(as.issuer);
    for (const name of MTLS_ALIASES) {
      assert.match(aliases[name] ?? '', /^https:\/\//, `mtls_endpoint_aliases.${name} must be an https URL`);
      const alias = new URL(aliases[name]);
      assert.equal(alias.hostname, issuer.hostname, `mtls_endpoint_aliases.${name} is on the issuer's host`);
      assert.equal(Number(alias.port), server.mtlsPort, `mtls_endpoint_aliases.${name} is on the mTLS listener (${aliases[name]})`);
      assert.equal(alias.pathname, new URL(as[name]).pathname, `mtls_endpoint_aliases.${name} has the path of ${name}`);
    }
  });

  test('dynamic client registration returns the tls_client_auth client (RFC 7591, RFC 8705 §2.1.2)', () => {
    const { registered: client, metadata } = registered;
    assert.equal(typeof client.client_id, 'string');
    assert.equal(client.token_endpoint_auth_method, 'tls_client_auth');
    assert.equal(client.tls_client_auth_subject_dn, CLIENT_DN);
    assert.equal(client.tls_client_certificate_bound_access_tokens, true);
    assert.deepEqual(client.redirect_uris, metadata.redirect_uris);
    assert.deepEqual([...client.grant_types].sort(), [...metadata.grant_types].sort());
    assert.equal(client.client_secret, undefined, 'a tls_client_auth client gets no secret');
    assert.equal(client.dpop_bound_access_tokens ?? false, false, 'not DPoP-bound');
  });

  test('authorization code flow over mTLS: PAR, login, consent, Bearer token bound to the certificate, id_token, userinfo, introspection', async (t) => {
    const { client } = registered;
    const { tokens, raw, tokenResponse, nonce } = await authorize();

    // RFC 8705 §3: a certificate-bound token is a Bearer token (no DPoP was sent).
    assert.equal(raw.token_type, 'Bearer', `token_type in the token response: ${raw.token_type}`);
    assert.equal(tokens.token_type, 'bearer'); // oauth4webapi lower-cases it
    assert.match(tokenResponse.headers.get('cache-control') ?? '', /no-store/, 'Cache-Control: no-store (AS-SP-68)');
    assert.ok(tokens.refresh_token, 'a client with the refresh_token grant gets a refresh token');

    // id_token: oauth4webapi validated iss, aud, exp, iat and nonce; now the signature, twice.
    const claims = oauth.getValidatedIdTokenClaims(tokens);
    assert.equal(claims.nonce, nonce);
    await step('id_token signature (oauth4webapi)', () => oauth.validateApplicationLevelSignature(as, tokenResponse, requestOptions(server)));
    const jwks = await step('jwks_uri', async () => {
      const res = await server.fetch(as.jwks_uri, { headers: { accept: 'application/json' }, redirect: 'manual' });
      assert.equal(res.status, 200, `GET jwks_uri: HTTP ${res.status}`);
      return res.json();
    });
    const { payload, protectedHeader } = await step('id_token signature (jose)', () => jose.jwtVerify(tokens.id_token, jose.createLocalJWKSet(jwks), {
      issuer: as.issuer,
      audience: client.client_id,
      algorithms: FAPI_ALGS, // AS-SP-95
    }));
    assert.equal(payload.sub, claims.sub);
    t.diagnostic(`id_token alg ${protectedHeader.alg}, sub ${claims.sub}`);

    // userinfo at its mTLS alias with the bound token, presenting the same certificate.
    const info = await step('userinfo', () => userinfo(tokens.access_token, viaClientCert, claims.sub));
    assert.equal(info.sub, claims.sub);
    assert.equal(info.email, USER.claims.email);
    assert.equal(info.name, USER.claims.name);

    // Introspection (tls_client_auth again): the binding is our own thumbprint of our certificate.
    const thumbprint = x5tS256(pki.client.cert);
    const details = await step('introspection', () => introspect(tokens.access_token));
    assert.equal(details.active, true, JSON.stringify(details));
    assert.equal(details.client_id, client.client_id);
    assert.equal(details.sub, claims.sub);
    assert.deepEqual(details.scope.split(' ').sort(), SCOPE.split(' ').sort());
    assert.equal(details.token_type, 'Bearer', `introspection token_type: ${JSON.stringify(details)}`);
    assert.equal(details.cnf?.['x5t#S256'], thumbprint, `cnf ${JSON.stringify(details.cnf)} vs SHA-256 of the client certificate ${thumbprint} (RFC 8705 §3.1)`);
    assert.notEqual(x5tS256(pki.other.cert), thumbprint, 'the two test certificates differ');
  });

  test('the binding holds: another certificate or none is refused; a refresh with the right one works', async () => {
    const { client, clientAuth } = registered;
    const { tokens } = await authorize();
    const { sub } = oauth.getValidatedIdTokenClaims(tokens);

    // userinfo with the token, but over a connection presenting the other certificate (RFC 8705 §3).
    assertInvalidToken(await rejection('userinfo with the other certificate',
      () => userinfo(tokens.access_token, viaOtherCert, sub)), 'userinfo with the other certificate');

    // userinfo on the main listener, which asks for no certificate: the token is bound to one.
    const noAliases = { ...client, use_mtls_endpoint_aliases: false };
    assertInvalidToken(await rejection('userinfo without a certificate',
      () => userinfo(tokens.access_token, server.fetch, sub, noAliases)), 'userinfo without a certificate');

    // The token endpoint on the main listener: client_id only, no certificate -> invalid_client.
    assertInvalidClient(await rejection('refresh without a certificate', async () => oauth.processRefreshTokenResponse(as, noAliases,
      await oauth.refreshTokenGrantRequest(as, noAliases, clientAuth, tokens.refresh_token, requestOptions(server)))), 'refresh without a certificate');

    // The token endpoint's mTLS alias with a certificate from the trusted CA but another subject.
    assertInvalidClient(await rejection('refresh with the other certificate', async () => oauth.processRefreshTokenResponse(as, client,
      await oauth.refreshTokenGrantRequest(as, client, clientAuth, tokens.refresh_token, over(viaOtherCert)))), 'refresh with the other certificate');

    // The refused attempts changed nothing: a refresh with the right certificate, a new bound token.
    const refreshed = await step('refresh', async () => oauth.processRefreshTokenResponse(as, client,
      await oauth.refreshTokenGrantRequest(as, client, clientAuth, tokens.refresh_token, over(viaClientCert))));
    assert.equal(refreshed.token_type, 'bearer');
    assert.ok(refreshed.access_token && refreshed.access_token !== tokens.access_token, 'refresh issues a new access token');
    assert.ok(refreshed.refresh_token === undefined || refreshed.refresh_token === tokens.refresh_token, 'refresh token not rotated (AS-SP-89)');
    const details = await step('introspection after refresh', () => introspect(refreshed.access_token));
    assert.equal(details.active, true, JSON.stringify(details));
    assert.equal(details.token_type, 'Bearer');
    assert.equal(details.cnf?.['x5t#S256'], x5tS256(pki.client.cert), `cnf after refresh ${JSON.stringify(details.cnf)}`);
    const info = await step('userinfo after refresh', () => userinfo(refreshed.access_token, viaClientCert, sub));
    assert.equal(info.sub, sub);
  });
});
