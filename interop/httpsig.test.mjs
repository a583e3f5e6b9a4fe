// RFC 9421 HTTP Message Signatures (FAPI 2.0 HTTP Signatures profile) at the demo API, checked
// against an independent implementation: dhensby's `http-message-signatures` signs the client's
// requests (ecdsa-p256-sha256 and ed25519, with and without the `alg` parameter) and verifies
// the server's response signatures, `;req` components included. Content-Digest (RFC 9530) is
// computed here with node:crypto. Tokens come from a full oauth4webapi flow (DCR with
// require_signed_resource_requests, PAR, login, consent, DPoP-bound token); the DPoP proof of each
// resource request is oauth4webapi's own (protectedResourceRequest), and the request is signed in
// the `customFetch` it calls, i.e. over exactly the Authorization and DPoP headers it sends.

import assert from 'node:assert/strict';
import { KeyObject, createHash, createPublicKey, randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';

import { createSigner, createVerifier, httpbis } from 'http-message-signatures';
import * as jose from 'jose';
import * as oauth from 'oauth4webapi';

import { discover, pushAuthorizationRequest, registerClient, requestOptions, step, withDpopNonceRetry } from './lib/fapi-client.mjs';
import { FormBrowser, consentButton, describePage, loginForm } from './lib/form-browser.mjs';
import { REDIRECT_URI, startServer } from './lib/server.mjs';

const REQUEST_TAG = 'fapi-2-request';
const RESPONSE_TAG = 'fapi-2-response';
const SCOPE = 'openid accounts payments';
const PAYMENT = { amount: '12.30', currency: 'EUR', creditor_name: 'Bob', creditor_iban: 'DE02100100109307118603' };

// JWS alg (oauth4webapi / jose name) -> RFC 9421 algorithm name.
const HTTPSIG_ALG = { ES256: 'ecdsa-p256-sha256', Ed25519: 'ed25519' };

// RFC 9530: `sha-256=:<base64>:` over the exact body bytes.
function contentDigest(bytes) {
  return `sha-256=:${createHash('sha256').update(bytes).digest('base64')}:`;
}

// A Signature-Input member, read by hand (not with the library under test): the label, the
// covered components as serialised, and the parameters.
function parseSignatureInput(value) {
  const m = /^([a-z*][a-z0-9_*.-]*)=\(([^)]*)\)(.*)$/.exec(value.trim());
  assert.ok(m, `Signature-Input is one member: ${value}`);
  const components = m[2].split(' ').filter(Boolean);
  const params = {};
  for (const p of m[3].split(';').filter(Boolean)) {
    const eq = p.indexOf('=');
    const [k, v] = eq < 0 ? [p, 'true'] : [p.slice(0, eq), p.slice(eq + 1)];
    params[k] = v.startsWith('"') ? JSON.parse(v) : Number(v);
  }
  return { label: m[1], components, params };
}

describe('RFC 9421 HTTP Message Signatures with http-message-signatures (FAPI 2.0 HTTP Signatures)', () => {
  let server;
  let as;
  let demo;
  let serverJwks;

  before(async () => {
    server = await startServer();
    as = await step('discovery', () => discover(server));
    demo = as.portcullis_demo_api;
    serverJwks = await step('jwks_uri', async () => {
      const res = await server.fetch(as.jwks_uri, { headers: { accept: 'application/json' }, redirect: 'manual' });
      assert.equal(res.status, 200);
      return res.json();
    });
  });

  after(async () => {
    await server?.stop();
  });

  // RFC 7591 registration of a private_key_jwt client whose one key (ES256 or Ed25519) also signs
  // its resource requests, registered with require_signed_resource_requests; DPoP with the
  // same algorithm.
  async function registerSigningClient(alg) {
    const { publicKey, privateKey } = await jose.generateKeyPair(alg, { extractable: true });
    const jwk = { ...(await jose.exportJWK(publicKey)), alg, use: 'sig' };
    jwk.kid = await jose.calculateJwkThumbprint(jwk);
    const metadata = {
      client_name: `interop httpsig.test.mjs ${alg}`,
      redirect_uris: [REDIRECT_URI],
      grant_types: ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: 'private_key_jwt',
      token_endpoint_auth_signing_alg: alg,
      jwks: { keys: [jwk] },
      dpop_bound_access_tokens: true,
      require_signed_resource_requests: true,
    };
    const options = requestOptions(server, server.initialAccessToken ? { initialAccessToken: server.initialAccessToken } : {});
    const client = await oauth.processDynamicClientRegistrationResponse(await oauth.dynamicClientRegistrationRequest(as, metadata, options));
    return {
      client,
      clientAuth: oauth.PrivateKeyJwt({ key: privateKey, kid: jwk.kid }),
      dpop: oauth.DPoP(client, await jose.generateKeyPair(alg)),
      kid: jwk.kid,
      httpsigAlg: HTTPSIG_ALG[alg],
      httpsigKey: KeyObject.from(privateKey), // the library signs with node:crypto KeyObjects
    };
  }

  // PAR, login, consent, token: a DPoP-bound access token for `reg`.
  async function obtainTokens(reg, scope = SCOPE) {
    const { client, clientAuth, dpop } = reg;
    const { codeVerifier, state, nonce, authorizationUrl } = await step('PAR', () => pushAuthorizationRequest(server, as, reg, dpop, { scope }));
    const browser = new FormBrowser({ fetch: server.fetch, redirectUri: REDIRECT_URI });
    const first = await step('authorization request', () => browser.open(authorizationUrl));
    const form = loginForm(first);
    assert.ok(form, `expected the login form, got ${describePage(first)}`);
    const consentPage = await step('login', () => browser.submit(first, form, { fill: { username: server.username, password: server.password } }));
    const allow = consentButton(consentPage, 'allow');
    assert.ok(allow, `expected the consent form, got ${describePage(consentPage)}`);
    const callback = await step('consent', () => browser.submit(consentPage, allow.form, { button: allow.button }));
    assert.equal(callback.kind, 'callback', describePage(callback));
    const params = await step('callback', () => oauth.validateAuthResponse(as, client, callback.url, state));
    const tokens = await step('token', () => withDpopNonceRetry(async () => oauth.processAuthorizationCodeResponse(as, client,
      await oauth.authorizationCodeGrantRequest(as, client, clientAuth, params, REDIRECT_URI, codeVerifier, requestOptions(server, { DPoP: dpop })),
      { expectedNonce: nonce })));
    assert.equal(tokens.token_type, 'dpop');
    for (const s of scope.split(' ')) assert.ok(tokens.scope === undefined || tokens.scope.split(' ').includes(s), `scope ${s} granted: ${tokens.scope}`);
    return tokens;
  }

  // Signs `request` ({ method, url, headers }) with http-message-signatures as a FAPI client:
  // @method, @target-uri, authorization, dpop, content-digest (with a body); created, keyid,
  // alg (unless `withAlg` is false) and tag. Every piece can be overridden for the negative cases.
  async function signRequest(reg, request, { hasBody, withAlg = true, fields, tag = REQUEST_TAG, created, keyid, name } = {}) {
    return httpbis.signMessage({
      key: createSigner(reg.httpsigKey, reg.httpsigAlg, reg.kid),
      name,
      fields: fields ?? ['@method', '@target-uri', 'authorization', 'dpop', ...(hasBody ? ['content-digest'] : [])],
      params: ['created', 'keyid', ...(withAlg ? ['alg'] : []), 'tag'],
      paramValues: { tag, ...(created && { created }), ...(keyid && { keyid }) },
    }, request);
  }

  // One demo API call through oauth4webapi's protectedResourceRequest (its DPoP proof, with the
  // resource's nonce: one retry on use_dpop_nonce). Its customFetch adds Content-Digest, signs
  // the request with the library (unless `unsigned`), lets `tamper` change what goes out, and
  // sends it. Returns the response, its body bytes and the request as sent.
  async function callApi(reg, accessToken, { method = 'GET', endpoint, json, unsigned = false, signing = {}, tamper }) {
    const url = new URL(endpoint);
    const body = json === undefined ? null : JSON.stringify(json);
    let sent;
    const signingFetch = async (href, init) => {
      let request = { method: init.method, url: href, headers: { ...init.headers } };
      let bytes = init.body ?? null;
      if (bytes !== null) request.headers['content-digest'] = contentDigest(Buffer.from(bytes));
      if (!unsigned) request = await signRequest(reg, request, { hasBody: bytes !== null, ...signing });
      if (tamper) ({ request, bytes } = tamper({ request, bytes }));
      sent = { request, body: bytes };
      return server.fetch(href, { method: init.method, headers: request.headers, body: bytes ?? undefined, redirect: 'manual', signal: init.signal });
    };
    const headers = new Headers({ 'x-fapi-interaction-id': randomUUID() });
    if (body !== null) headers.set('content-type', 'application/json');
    for (let attempt = 1; ; attempt++) {
      let res;
      try {
        res = await oauth.protectedResourceRequest(accessToken, method, url, headers, body,
          { [oauth.customFetch]: signingFetch, DPoP: reg.dpop, signal: AbortSignal.timeout(15_000) });
      } catch (err) {
        if (!(err instanceof oauth.WWWAuthenticateChallengeError)) throw err;
        if (oauth.isDPoPNonceError(err) && attempt === 1) continue; // the DPoP handle cached the nonce
        res = err.response;
      }
      const bytes = Buffer.from(await res.arrayBuffer());
      return { res, bytes, sent, text: bytes.toString('utf8') };
    }
  }

  // Verifies the server's response signature with the library, the request as sent passed in for
  // the `;req` components, and checks what the profile asks for (HS 5.3.2): the tag, the covered
  // components, created, keyid in the server's JWKS (ES256), no alg, Content-Digest = our own
  // sha-256 of the body. Returns the parsed Signature-Input.
  async function verifyResponse({ res, bytes, sent }, { requestSignedAs } = {}) {
    const digest = res.headers.get('content-digest');
    if (bytes.length > 0) assert.equal(digest, contentDigest(bytes), 'Content-Digest is the sha-256 of the response body (RFC 9530)');
    const signatureInput = res.headers.get('signature-input');
    assert.ok(signatureInput && res.headers.get('signature'), `the response is signed (HTTP ${res.status}): ${[...res.headers.keys()].join(', ')}`);
    const input = parseSignatureInput(signatureInput);
    assert.equal(input.label, 'sig1');
    assert.equal(input.params.tag, RESPONSE_TAG);
    assert.equal(input.params.alg, undefined, 'no alg parameter on the response signature');
    assert.ok(Math.abs(Date.now() / 1000 - input.params.created) < 60, `created ${input.params.created} is now`);
    const requestHasBody = sent.body !== null && sent.body !== undefined && Buffer.from(sent.body).length > 0;
    const expected = [
      '"@status"',
      ...(bytes.length > 0 ? ['"content-digest"'] : []),
      '"@method";req',
      '"@target-uri";req',
      ...(requestHasBody ? ['"content-digest";req'] : []),
      ...(requestSignedAs ? [`"signature";req;key="${requestSignedAs}"`, `"signature-input";req;key="${requestSignedAs}"`] : []),
    ];
    assert.deepEqual([...input.components].sort(), [...expected].sort(), `covered components: ${signatureInput}`);

    let usedKey;
    const keyLookup = async (params) => {
      const jwk = serverJwks.keys.find((k) => k.kid === params.keyid);
      if (!jwk) return null;
      usedKey = jwk;
      return { id: jwk.kid, algs: ['ecdsa-p256-sha256'], verify: createVerifier(createPublicKey({ key: jwk, format: 'jwk' }), 'ecdsa-p256-sha256') };
    };
    const config = {
      keyLookup,
      requiredParams: ['created', 'keyid', 'tag'],
      requiredFields: ['@status', '@method', '@target-uri'],
      maxAge: 60,
      tolerance: 5,
    };
    const response = { status: res.status, headers: Object.fromEntries(res.headers) };
    const verified = await httpbis.verifyMessage(config, response, sent.request);
    assert.equal(verified, true, `http-message-signatures verifies the response signature (${signatureInput})`);
    assert.ok(usedKey, `keyid ${input.params.keyid} is in the server's JWKS`);
    assert.equal(usedKey.kty, 'EC');
    assert.equal(usedKey.crv, 'P-256');
    // and the same signature does not verify for another status (the check is real)
    assert.equal(await httpbis.verifyMessage(config, { ...response, status: res.status === 200 ? 201 : 200 }, sent.request), false,
      'the signature does not verify over another @status');
    if (requestSignedAs) {
      // nor against a request carrying another signature
      const other = { ...sent.request, headers: { ...sent.request.headers } };
      for (const name of Object.keys(other.headers)) {
        if (name.toLowerCase() === 'signature') other.headers[name] = `${requestSignedAs}=:${Buffer.alloc(64, 1).toString('base64')}:`;
      }
      assert.equal(await httpbis.verifyMessage(config, response, other), false, 'the signature binds the request signature (;req)');
    }
    return input;
  }

  // 401 invalid_signature (RS-MS-03), in the challenge and the JSON body, for the reason
  // `reason` (matched against error_description, so that a refusal for another cause, such as
  // the DPoP proof, does not pass for this one).
  function assertInvalidSignature(result, what, reason) {
    const { res, text } = result;
    assert.equal(res.status, 401, `${what}: HTTP ${res.status} ${res.headers.get('www-authenticate')} ${text}`);
    const challenge = res.headers.get('www-authenticate') ?? '';
    assert.match(challenge, /error="invalid_signature"/, `${what}: WWW-Authenticate ${challenge}`);
    let body;
    try { body = JSON.parse(text); } catch { assert.fail(`${what}: the body is not JSON: ${text}`); }
    assert.equal(body.error, 'invalid_signature', `${what}: ${text}`);
    if (reason) assert.match(body.error_description ?? '', reason, `${what}: ${text}`);
  }

  test('discovery describes the demo API and its HTTP message signatures', () => {
    assert.ok(demo, 'portcullis_demo_api in discovery');
    assert.match(demo.accounts_endpoint ?? '', /^https:\/\/.*\/api\/accounts$/);
    assert.match(demo.payments_endpoint ?? '', /^https:\/\/.*\/api\/payments$/);
    const hms = demo.http_message_signatures;
    assert.equal(hms?.request_tag, REQUEST_TAG);
    assert.equal(hms?.response_tag, RESPONSE_TAG);
    assert.equal(hms?.response_signing_jwks_uri, as.jwks_uri);
    assert.ok(serverJwks.keys.some((k) => k.kty === 'EC' && k.crv === 'P-256' && k.kid), 'the JWKS has an ES256 key');
  });

  for (const alg of ['ES256', 'Ed25519']) {
    describe(`${alg} client (${HTTPSIG_ALG[alg]})`, () => {
      let reg;
      let tokens;

      before(async () => {
        reg = await step(`registration (${alg})`, () => registerSigningClient(alg));
        tokens = await obtainTokens(reg);
      });

      test('registration keeps require_signed_resource_requests', () => {
        assert.equal(reg.client.require_signed_resource_requests, true);
      });

      for (const withAlg of [true, false]) {
        test(`GET accounts signed by the library, ${withAlg ? `alg="${HTTPSIG_ALG[alg]}"` : 'no alg parameter'} -> 200, response signature verified`, async () => {
          const result = await callApi(reg, tokens.access_token, { endpoint: demo.accounts_endpoint, signing: { withAlg } });
          assert.equal(result.res.status, 200, `HTTP ${result.res.status} ${result.res.headers.get('www-authenticate')} ${result.text}`);
          assert.equal(JSON.parse(result.text).accounts.length, 2);
          const sentInput = parseSignatureInput(result.sent.request.headers['Signature-Input']);
          assert.equal(sentInput.params.alg, withAlg ? HTTPSIG_ALG[alg] : undefined, 'the library wrote alg as asked');
          assert.equal(sentInput.params.keyid, reg.kid);
          await verifyResponse(result, { requestSignedAs: sentInput.label });
        });
      }

      test('POST payments with a JSON body and Content-Digest, signed by the library -> 201, response signature verified', async () => {
        const result = await callApi(reg, tokens.access_token, { method: 'POST', endpoint: demo.payments_endpoint, json: PAYMENT, signing: { name: 'pay' } });
        assert.equal(result.res.status, 201, `HTTP ${result.res.status} ${result.res.headers.get('www-authenticate')} ${result.text}`);
        const payment = JSON.parse(result.text);
        assert.equal(payment.status, 'accepted');
        assert.equal(payment.amount, PAYMENT.amount);
        assert.equal(payment.creditor_iban, PAYMENT.creditor_iban);
        const sentInput = parseSignatureInput(result.sent.request.headers['Signature-Input']);
        assert.ok(sentInput.components.includes('"content-digest"'));
        assert.equal(sentInput.label, 'pay');
        await verifyResponse(result, { requestSignedAs: 'pay' });
      });

      test('an unsigned request from a client registered to sign -> 401 invalid_signature (signed refusal)', async () => {
        const result = await callApi(reg, tokens.access_token, { endpoint: demo.accounts_endpoint, unsigned: true });
        assertInvalidSignature(result, 'unsigned GET', /must sign/);
        await verifyResponse(result);
      });

      test('a signature not covering "authorization" -> 401 invalid_signature', async () => {
        const result = await callApi(reg, tokens.access_token, { endpoint: demo.accounts_endpoint, signing: { fields: ['@method', '@target-uri', 'dpop'] } });
        assertInvalidSignature(result, 'authorization not covered', /not cover.*authorization/);
        await verifyResponse(result);
      });

      test('the body altered after signing (Content-Digest mismatch) -> 401 invalid_signature', async () => {
        const result = await callApi(reg, tokens.access_token, {
          method: 'POST',
          endpoint: demo.payments_endpoint,
          json: PAYMENT,
          tamper: ({ request, bytes }) => ({ request, bytes: JSON.stringify({ ...PAYMENT, amount: '99999.00' }) }),
        });
        assertInvalidSignature(result, 'body altered', /Content-Digest/);
        await verifyResponse(result);
      });

      test('the body and its Content-Digest altered after signing (signature mismatch) -> 401 invalid_signature', async () => {
        const altered = JSON.stringify({ ...PAYMENT, creditor_iban: 'GB33BUKB20201555555555' });
        const result = await callApi(reg, tokens.access_token, {
          method: 'POST',
          endpoint: demo.payments_endpoint,
          json: PAYMENT,
          tamper: ({ request }) => ({ request: { ...request, headers: { ...request.headers, 'content-digest': contentDigest(Buffer.from(altered)) } }, bytes: altered }),
        });
        assertInvalidSignature(result, 'body and digest altered', /does not verify/);
        await verifyResponse(result);
      });

      test('created 120 s in the past -> 401 invalid_signature', async () => {
        const result = await callApi(reg, tokens.access_token, { endpoint: demo.accounts_endpoint, signing: { created: new Date(Date.now() - 120_000) } });
        assertInvalidSignature(result, 'created 120 s old', /created/);
        await verifyResponse(result);
      });

      test('another tag -> 401 invalid_signature', async () => {
        for (const tag of ['fapi-2-response', 'not-fapi']) {
          const result = await callApi(reg, tokens.access_token, { endpoint: demo.accounts_endpoint, signing: { tag } });
          assertInvalidSignature(result, `tag ${tag}`, /tag/);
        }
      });

      test('an unknown keyid -> 401 invalid_signature', async () => {
        const result = await callApi(reg, tokens.access_token, { endpoint: demo.accounts_endpoint, signing: { keyid: 'no-such-kid' } });
        assertInvalidSignature(result, 'unknown keyid', /keyid/);
        await verifyResponse(result);
      });

      test('an alg that does not fit the key -> 401 invalid_signature', async () => {
        const other = alg === 'ES256' ? 'ed25519' : 'ecdsa-p256-sha256';
        const result = await callApi(reg, tokens.access_token, {
          endpoint: demo.accounts_endpoint,
          signing: { withAlg: true },
          tamper: ({ request, bytes }) => {
            const headers = { ...request.headers };
            headers['Signature-Input'] = headers['Signature-Input'].replace(`alg="${HTTPSIG_ALG[alg]}"`, `alg="${other}"`);
            return { request: { ...request, headers }, bytes };
          },
        });
        assertInvalidSignature(result, `alg ${other} with a ${alg} key`, /alg/);
      });

      test('the signed request still works afterwards (the refusals left the token usable)', async () => {
        const result = await callApi(reg, tokens.access_token, { endpoint: demo.accounts_endpoint });
        assert.equal(result.res.status, 200, `HTTP ${result.res.status} ${result.text}`);
      });
    });
  }

  test('a client not registered to sign: unsigned -> 200, a bad signature is still verified and refused', async () => {
    const registered = await step('registration', () => registerClient(server, as, { clientName: 'interop httpsig.test.mjs unsigned' }));
    const reg = {
      ...registered,
      dpop: oauth.DPoP(registered.client, await jose.generateKeyPair('ES256')),
      kid: registered.signingKey.kid,
      httpsigAlg: 'ecdsa-p256-sha256',
      httpsigKey: KeyObject.from(registered.signingKey.key),
    };
    const tokens = await obtainTokens(reg, 'openid accounts');
    const unsigned = await callApi(reg, tokens.access_token, { endpoint: demo.accounts_endpoint, unsigned: true });
    assert.equal(unsigned.res.status, 200, `HTTP ${unsigned.res.status} ${unsigned.text}`);
    await verifyResponse(unsigned);
    const signed = await callApi(reg, tokens.access_token, { endpoint: demo.accounts_endpoint });
    assert.equal(signed.res.status, 200, `HTTP ${signed.res.status} ${signed.text}`);
    await verifyResponse(signed, { requestSignedAs: 'sig' });
    const stale = await callApi(reg, tokens.access_token, { endpoint: demo.accounts_endpoint, signing: { created: new Date(Date.now() - 120_000) } });
    assertInvalidSignature(stale, 'created 120 s old, client not registered to sign', /created/);
  });
});
