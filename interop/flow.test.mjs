// One complete FAPI 2.0 Security Profile flow against a fresh Portcullis, driven by panva's
// oauth4webapi (an independent, certified client) and a scripted form browser:
// discovery -> DCR -> PAR (PKCE, private_key_jwt, DPoP) -> login + consent -> callback with iss
// -> token (DPoP) -> id_token (oauth4webapi + jose) -> userinfo -> refresh with a new DPoP key.
// Plus the two unhappy front-channel paths: consent denied, wrong password.

import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';

import * as jose from 'jose';
import * as oauth from 'oauth4webapi';

import {
  FAPI_ALGS, discover, explain, newDpop, pushAuthorizationRequest, registerClient, requestOptions, step, withDpopNonceRetry,
} from './lib/fapi-client.mjs';
import { FormBrowser, consentButton, describePage, loginForm } from './lib/form-browser.mjs';
import { REDIRECT_URI, USER, startServer } from './lib/server.mjs';

describe('FAPI 2.0 flow with oauth4webapi', () => {
  let server;
  let as;
  let registered;

  before(async () => {
    server = await startServer();
    as = await step('discovery', () => discover(server));
    registered = await step('registration', () => registerClient(server, as));
  });

  after(async () => {
    await server?.stop();
  });

  // Logs in through the form browser; returns the page after the login POST.
  async function login(browser, authorizationUrl, password = server.password) {
    const first = await step('authorization request', () => browser.open(authorizationUrl));
    const form = loginForm(first);
    assert.ok(form, `expected the login form (inputs username, password), got ${describePage(first)}`);
    return step('login', () => browser.submit(first, form, { fill: { username: server.username, password } }));
  }

  test('serve prints the issuer, the discovery URL and the CA path (INTERFACE.md)', { skip: !process.env.INTEROP_ISSUER ? false : 'only for a spawned Portcullis' }, () => {
    const out = server.output();
    for (const expected of [server.issuer, `${server.issuer}/.well-known/openid-configuration`, server.caFile]) {
      assert.ok(out.includes(expected), `serve output lacks ${expected}:\n${out}`);
    }
  });

  test('discovery publishes the FAPI 2.0 metadata a client needs', async () => {
    // processDiscoveryResponse already checked that `issuer` equals the issuer URL (AS-SP-13).
    assert.equal(as.issuer, server.issuer);
    assert.match(as.pushed_authorization_request_endpoint ?? '', /^https:\/\//, 'PAR endpoint (AS-SP-14)');
    assert.equal(as.require_pushed_authorization_requests, true, 'require_pushed_authorization_requests (AS-SP-14)');
    assert.ok(as.code_challenge_methods_supported?.includes('S256'), 'S256 PKCE (AS-SP-15)');
    assert.ok(!as.code_challenge_methods_supported?.includes('plain'), 'plain PKCE must not be listed (AS-SP-15)');
    assert.ok(as.token_endpoint_auth_methods_supported?.includes('private_key_jwt'), 'private_key_jwt (AS-SP-19)');
    assert.ok(as.dpop_signing_alg_values_supported?.includes('ES256'), 'DPoP ES256 (AS-SP-17)');
    for (const alg of as.dpop_signing_alg_values_supported) assert.ok(FAPI_ALGS.includes(alg), `non-FAPI DPoP alg ${alg} (AS-SP-17)`);
    assert.equal(as.authorization_response_iss_parameter_supported, true, 'RFC 9207 iss (AS-SP-16)');
    for (const name of ['authorization_endpoint', 'token_endpoint', 'jwks_uri', 'registration_endpoint', 'userinfo_endpoint']) {
      assert.match(as[name] ?? '', /^https:\/\//, `${name} must be an https URL (AS-SP-01)`);
    }
    // oauth4webapi falls back to RS256 for id_tokens when neither the client nor this list says otherwise.
    assert.ok(as.id_token_signing_alg_values_supported?.some((a) => FAPI_ALGS.includes(a)), 'id_token_signing_alg_values_supported lists a FAPI alg');

    // Every response carries x-fapi-interaction-id, echoing ours (INTERFACE.md).
    const id = crypto.randomUUID();
    const res = await oauth.discoveryRequest(new URL(server.issuer), { ...requestOptions(server), headers: { 'x-fapi-interaction-id': id } });
    await res.arrayBuffer();
    assert.equal(res.headers.get('x-fapi-interaction-id'), id, 'x-fapi-interaction-id echoed');
  });

  test('dynamic client registration returns the registered FAPI client (RFC 7591)', () => {
    const { client, metadata } = registered;
    assert.equal(typeof client.client_id, 'string');
    // RFC 7591 §3.2.1: the response carries all registered metadata.
    assert.equal(client.token_endpoint_auth_method, 'private_key_jwt');
    assert.equal(client.dpop_bound_access_tokens, true);
    assert.deepEqual(client.redirect_uris, metadata.redirect_uris);
    assert.deepEqual([...client.grant_types].sort(), [...metadata.grant_types].sort());
    assert.equal(client.client_secret, undefined, 'a private_key_jwt client gets no secret (AS-SP-23)');
  });

  test('authorization code flow: PAR, login, consent, token, id_token, userinfo, refresh', async (t) => {
    const { client, clientAuth, metadata } = registered;
    const dpop = await newDpop(client); // a fresh DPoP key for this user session

    // PAR: 201 with a request_uri that lives less than 600 s (AS-SP-39, AS-SP-40).
    const { codeVerifier, state, nonce, par, authorizationUrl } = await step('PAR', () => pushAuthorizationRequest(server, as, registered, dpop));
    assert.ok(par.expires_in > 0 && par.expires_in < 600, `PAR expires_in ${par.expires_in} (AS-SP-40)`);

    // Front channel: only client_id + request_uri (AS-SP-49), login, then consent naming the client (AS-SP-54).
    const browser = new FormBrowser({ fetch: server.fetch, redirectUri: REDIRECT_URI });
    const consentPage = await login(browser, authorizationUrl);
    const allow = consentButton(consentPage, 'allow');
    assert.ok(allow, `expected the consent form (decision=allow), got ${describePage(consentPage)}`);
    assert.ok(consentPage.text.includes(metadata.client_name), 'the consent page names the client (AS-SP-54)');
    const callback = await step('consent', () => browser.submit(consentPage, allow.form, { button: allow.button }));
    assert.equal(callback.kind, 'callback', `expected a redirect to ${REDIRECT_URI}, got ${describePage(callback)}`);

    // Callback: iss is the issuer (AS-SP-50, RFC 9207); state and iss are checked again by oauth4webapi.
    assert.equal(callback.url.searchParams.get('iss'), as.issuer, 'iss in the authorization response (AS-SP-50)');
    assert.equal(callback.url.hash, '', 'the response is in the query, not the fragment (AS-SP-51)');
    const params = await step('callback', () => oauth.validateAuthResponse(as, client, callback.url, state));
    assert.ok(params.get('code'), 'authorization code');

    // Token request with private_key_jwt and DPoP (AS-SP-24, AS-SP-72, AS-SP-79).
    let tokenResponse;
    const tokens = await step('token', () => withDpopNonceRetry(async () => {
      tokenResponse = await oauth.authorizationCodeGrantRequest(as, client, clientAuth, params, REDIRECT_URI, codeVerifier, requestOptions(server, { DPoP: dpop }));
      return oauth.processAuthorizationCodeResponse(as, client, tokenResponse, { expectedNonce: nonce, requireIdToken: true });
    }));
    assert.equal(tokens.token_type, 'dpop', 'token_type DPoP (AS-SP-73, AS-SP-80)');
    assert.match(tokenResponse.headers.get('cache-control') ?? '', /no-store/, 'Cache-Control: no-store (AS-SP-68)');
    assert.ok(tokens.refresh_token, 'a client with the refresh_token grant gets a refresh token (INTERFACE.md)');

    // id_token: oauth4webapi validated iss, aud, exp, iat and nonce; now the signature, twice.
    const claims = oauth.getValidatedIdTokenClaims(tokens);
    assert.equal(claims.nonce, nonce);
    await step('id_token signature (oauth4webapi)', () => oauth.validateApplicationLevelSignature(as, tokenResponse, requestOptions(server)));
    const jwks = await step('jwks_uri', async () => {
      const res = await server.fetch(as.jwks_uri, { headers: { accept: 'application/json' }, redirect: 'manual' });
      assert.equal(res.status, 200, `GET jwks_uri: HTTP ${res.status}`);
      return res.json();
    });
    for (const key of jwks.keys) {
      assert.ok(key.kid, `every JWKS key has a kid (AS-SP-21): ${JSON.stringify(key)}`);
      for (const secret of ['d', 'p', 'q', 'dp', 'dq', 'qi', 'k']) assert.equal(key[secret], undefined, `JWKS key ${key.kid} exposes "${secret}" (AS-SP-21)`);
    }
    const { payload, protectedHeader } = await step('id_token signature (jose)', () => jose.jwtVerify(tokens.id_token, jose.createLocalJWKSet(jwks), {
      issuer: as.issuer,
      audience: client.client_id,
      algorithms: FAPI_ALGS, // AS-SP-95
    }));
    assert.ok(protectedHeader.kid, 'id_token header has a kid (AS-SP-101)');
    assert.equal(payload.sub, claims.sub);
    t.diagnostic(`id_token alg ${protectedHeader.alg}, sub ${claims.sub}`);

    // userinfo with the DPoP-bound access token (AS-SP-103).
    const userinfo = await step('userinfo', () => withDpopNonceRetry(async () => oauth.processUserInfoResponse(as, client, claims.sub,
      await oauth.userInfoRequest(as, client, tokens.access_token, requestOptions(server, { DPoP: dpop })))));
    assert.equal(userinfo.sub, claims.sub);
    if (server.spawned) {
      // the claims given to `portcullis user add --claim` come back for scope profile + email
      assert.equal(userinfo.email, USER.claims.email);
      assert.equal(userinfo.name, USER.claims.name);
    }

    // Refresh with a NEW DPoP key: the refresh token is bound to the client, not to the old key,
    // and the new access token is bound to the new key (AS-SP-85); no rotation (AS-SP-89).
    const dpopKey2 = await jose.generateKeyPair('ES256');
    const dpop2 = oauth.DPoP(client, dpopKey2);
    const refreshed = await step('refresh', () => withDpopNonceRetry(async () => oauth.processRefreshTokenResponse(as, client,
      await oauth.refreshTokenGrantRequest(as, client, clientAuth, tokens.refresh_token, requestOptions(server, { DPoP: dpop2 })))));
    assert.equal(refreshed.token_type, 'dpop');
    assert.ok(refreshed.access_token && refreshed.access_token !== tokens.access_token, 'refresh issues a new access token');
    assert.ok(refreshed.refresh_token === undefined || refreshed.refresh_token === tokens.refresh_token, 'refresh token not rotated (AS-SP-89)');
    if (refreshed.id_token) assert.equal(oauth.getValidatedIdTokenClaims(refreshed).sub, claims.sub);
    const userinfo2 = await step('userinfo after refresh', () => withDpopNonceRetry(async () => oauth.processUserInfoResponse(as, client, claims.sub,
      await oauth.userInfoRequest(as, client, refreshed.access_token, requestOptions(server, { DPoP: dpop2 })))));
    assert.equal(userinfo2.sub, claims.sub);

    // The demo protected API (scope accounts) with oauth4webapi's protectedResourceRequest:
    // DPoP with ath and the resource's nonce; a token without the scope is 403
    // insufficient_scope (RFC 6750 §3.1).
    const demo = as.portcullis_demo_api;
    assert.ok(demo?.accounts_endpoint, 'discovery publishes the demo API (portcullis_demo_api)');
    const withoutScope = await oauth.protectedResourceRequest(refreshed.access_token, 'GET', new URL(demo.accounts_endpoint), new Headers(), null, requestOptions(server, { DPoP: dpop2 }))
      .catch((err) => err);
    const challenged = withoutScope instanceof Response ? withoutScope : withoutScope.response;
    assert.equal(challenged?.status, 403, `a token without the accounts scope: ${explain(withoutScope)}`);
    assert.match(challenged.headers.get('www-authenticate') ?? '', /error="insufficient_scope"/);


    // private_key_jwt: revoking the access token makes it inactive and useless at userinfo;
    // revoking the refresh token ends the grant (AS-OPT-14..20).
    assert.ok(as.revocation_endpoint, 'revocation_endpoint in discovery');
    const introspect = async (token) => oauth.processIntrospectionResponse(as, client,
      await oauth.introspectionRequest(as, client, clientAuth, token, requestOptions(server)));
    const active = await step('introspection', () => introspect(refreshed.access_token));
    assert.equal(active.active, true);
    assert.equal(active.token_type, 'DPoP');
    assert.equal(active.cnf?.jkt, await jose.calculateJwkThumbprint(await jose.exportJWK(dpopKey2.publicKey)), 'cnf.jkt is the thumbprint of the refresh proof key');
    await step('revoke the access token', async () => oauth.processRevocationResponse(
      await oauth.revocationRequest(as, client, clientAuth, refreshed.access_token, { ...requestOptions(server), additionalParameters: { token_type_hint: 'access_token' } })));
    assert.equal((await step('introspection after revocation', () => introspect(refreshed.access_token))).active, false);
    const refused = await oauth.userInfoRequest(as, client, refreshed.access_token, requestOptions(server, { DPoP: dpop2 }));
    assert.equal(refused.status, 401, 'a revoked access token is refused at userinfo');
    await step('revoke the refresh token', async () => oauth.processRevocationResponse(
      await oauth.revocationRequest(as, client, clientAuth, tokens.refresh_token, requestOptions(server))));
    assert.equal((await introspect(tokens.refresh_token)).active, false, 'the refresh token is revoked');
    // (dpop2 holds the server's current nonce, so the refusal is about the token)
    const afterRevocation = await oauth.refreshTokenGrantRequest(as, client, clientAuth, tokens.refresh_token, requestOptions(server, { DPoP: dpop2 }));
    assert.equal(afterRevocation.status, 400, 'a revoked refresh token is refused');
    assert.equal((await afterRevocation.json()).error, 'invalid_grant');
    // RFC 7009 §2.2: an unknown token is answered 200 as well
    await step('revoke an unknown token', async () => oauth.processRevocationResponse(
      await oauth.revocationRequest(as, client, clientAuth, 'no-such-token', requestOptions(server))));
  });

  test('the demo API with oauth4webapi: protectedResourceRequest with a DPoP-bound token (scope accounts)', async () => {
    const { client, clientAuth } = registered;
    const dpop = await newDpop(client);
    const { codeVerifier, state, nonce, authorizationUrl } = await step('PAR', () => pushAuthorizationRequest(server, as, registered, dpop, { scope: 'openid accounts' }));
    const browser = new FormBrowser({ fetch: server.fetch, redirectUri: REDIRECT_URI });
    const consentPage = await login(browser, authorizationUrl);
    assert.match(consentPage.text, /accounts/, 'the consent page names the accounts scope');
    const allow = consentButton(consentPage, 'allow');
    const callback = await step('consent', () => browser.submit(consentPage, allow.form, { button: allow.button }));
    const params = await step('callback', () => oauth.validateAuthResponse(as, client, callback.url, state));
    const tokens = await step('token', () => withDpopNonceRetry(async () => oauth.processAuthorizationCodeResponse(as, client,
      await oauth.authorizationCodeGrantRequest(as, client, clientAuth, params, REDIRECT_URI, codeVerifier, requestOptions(server, { DPoP: dpop })),
      { expectedNonce: nonce })));
    const url = new URL(as.portcullis_demo_api.accounts_endpoint);
    const interactionId = randomUUID();
    const res = await step('GET /api/accounts', () => withDpopNonceRetry(async () => {
      const r = await oauth.protectedResourceRequest(tokens.access_token, 'GET', url, new Headers({ 'x-fapi-interaction-id': interactionId }), null,
        requestOptions(server, { DPoP: dpop }));
      if (r.status !== 200) throw new Error(`HTTP ${r.status}: ${r.headers.get('www-authenticate')} ${await r.text()}`);
      return r;
    }));
    assert.equal(res.headers.get('x-fapi-interaction-id'), interactionId, 'the interaction id is echoed');
    assert.ok(res.headers.get('date'), 'Date on the resource response');
    const body = await res.json();
    assert.equal(body.accounts.length, 2);
    // the token as Bearer (no proof): 401 with a Bearer challenge (RS-SP-09)
    const bearer = await server.fetch(url, { headers: { authorization: `Bearer ${tokens.access_token}` } });
    assert.equal(bearer.status, 401);
    assert.match(bearer.headers.get('www-authenticate') ?? '', /^Bearer error="invalid_token"/);
  });

  test('JAR through PAR and a JARM response: issueRequestObject and validateJwtAuthResponse (FAPI 2.0 Message Signing)', async () => {
    const { client, clientAuth, signingKey } = registered;
    const dpop = await newDpop(client);
    const codeVerifier = oauth.generateRandomCodeVerifier();
    const state = oauth.generateRandomState();
    const nonce = oauth.generateRandomNonce();
    const params = new URLSearchParams({
      response_type: 'code',
      redirect_uri: REDIRECT_URI,
      scope: 'openid',
      code_challenge: await oauth.calculatePKCECodeChallenge(codeVerifier),
      code_challenge_method: 'S256',
      state,
      nonce,
      response_mode: 'jwt',
    });
    const request = await step('request object', () => oauth.issueRequestObject(as, client, params, signingKey));
    const par = await step('PAR with request', () => withDpopNonceRetry(async () => oauth.processPushedAuthorizationResponse(as, client,
      await oauth.pushedAuthorizationRequest(as, client, clientAuth, { request }, requestOptions(server, { DPoP: dpop })))));
    const authorizationUrl = new URL(as.authorization_endpoint);
    authorizationUrl.searchParams.set('client_id', client.client_id);
    authorizationUrl.searchParams.set('request_uri', par.request_uri);
    const browser = new FormBrowser({ fetch: server.fetch, redirectUri: REDIRECT_URI });
    const consentPage = await login(browser, authorizationUrl);
    const allow = consentButton(consentPage, 'allow');
    const callback = await step('consent', () => browser.submit(consentPage, allow.form, { button: allow.button }));
    // JARM: nothing but `response` in the callback, verified by oauth4webapi against the JWKS
    assert.deepEqual([...callback.url.searchParams.keys()], ['response'], 'only response in the JARM callback (AS-MS-12)');
    const cb = await step('JARM callback', () => oauth.validateJwtAuthResponse(as, client, callback.url, state, requestOptions(server)));
    const tokens = await step('token', () => withDpopNonceRetry(async () => oauth.processAuthorizationCodeResponse(as, client,
      await oauth.authorizationCodeGrantRequest(as, client, clientAuth, cb, REDIRECT_URI, codeVerifier, requestOptions(server, { DPoP: dpop })),
      { expectedNonce: nonce, requireIdToken: true })));
    assert.equal(tokens.token_type, 'dpop');
    // a request object signed by another key is refused with invalid_request_object
    const { privateKey } = await jose.generateKeyPair('ES256');
    const forged = await oauth.issueRequestObject(as, client, params, { key: privateKey, kid: signingKey.kid });
    const refused = await withDpopNonceRetry(async () => {
      const r = await oauth.pushedAuthorizationRequest(as, client, clientAuth, { request: forged }, requestOptions(server, { DPoP: dpop }));
      await oauth.processPushedAuthorizationResponse(as, client, r.clone()).catch((err) => {
        if (oauth.isDPoPNonceError(err)) throw err;
      });
      return r;
    });
    assert.equal(refused.status, 400);
    assert.equal((await refused.json()).error, 'invalid_request_object');
  });

  test('denying consent redirects with access_denied, the pushed state and iss (AS-SP-55)', async () => {
    const { client } = registered;
    const { state, authorizationUrl } = await step('PAR', async () => pushAuthorizationRequest(server, as, registered, await newDpop(client)));
    const browser = new FormBrowser({ fetch: server.fetch, redirectUri: REDIRECT_URI });
    const consentPage = await login(browser, authorizationUrl);
    const deny = consentButton(consentPage, 'deny');
    assert.ok(deny, `expected the consent form (decision=deny), got ${describePage(consentPage)}`);
    const callback = await step('consent', () => browser.submit(consentPage, deny.form, { button: deny.button }));
    assert.equal(callback.kind, 'callback', `expected a redirect to ${REDIRECT_URI}, got ${describePage(callback)}`);

    const q = callback.url.searchParams;
    assert.equal(q.get('error'), 'access_denied');
    assert.equal(q.get('state'), state);
    assert.equal(q.get('iss'), as.issuer, 'iss on error responses too (AS-SP-50)');
    assert.equal(q.get('code'), null);
    // oauth4webapi checks iss and state first, then reports the error.
    assert.throws(() => oauth.validateAuthResponse(as, client, callback.url, state),
      (err) => err instanceof oauth.AuthorizationResponseError && err.error === 'access_denied');
  });

  test('a wrong password shows the login form again with HTTP 401', async () => {
    const { client } = registered;
    const { authorizationUrl } = await step('PAR', async () => pushAuthorizationRequest(server, as, registered, await newDpop(client)));
    const browser = new FormBrowser({ fetch: server.fetch, redirectUri: REDIRECT_URI });
    const rejected = await login(browser, authorizationUrl, `${server.password}-wrong`);
    assert.equal(rejected.kind, 'page', `a wrong password must not redirect: ${describePage(rejected)}`);
    assert.equal(rejected.status, 401, describePage(rejected));
    const form = loginForm(rejected);
    assert.ok(form, `the login form is shown again: ${describePage(rejected)}`);

    // The same interaction still accepts the right password.
    const next = await step('second login', () => browser.submit(rejected, form, { fill: { username: server.username, password: server.password } }));
    assert.ok(consentButton(next, 'allow'), `after the right password, consent: ${describePage(next)}`);
  });
});

