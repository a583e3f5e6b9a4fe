// One end-to-end authorization in real headless Chromium: what a person's browser does with
// Portcullis' login and consent pages (cookies, CSP, form posts, 303 redirects), which a scripted
// browser cannot prove. The client part (registration, PAR, token) is oauth4webapi in Node.
//
// Chromium trusts the development CA's server certificate through
// --ignore-certificate-errors-spki-list, pinned to the SPKI of the certificate the server
// presents; Node first verifies that certificate against the dev CA (chain and host name), so
// nothing unverified is trusted and TLS verification stays on for everything else.
//
// Needs /usr/bin/chromium (Debian's package). Without it the test is skipped, except under
// CI=true, where a missing browser is a failure.

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as tls from 'node:tls';
import { test } from 'node:test';

import * as oauth from 'oauth4webapi';
import { chromium } from 'playwright-core';

import {
  discover, newDpop, pushAuthorizationRequest, registerClient, requestOptions, step, withDpopNonceRetry,
} from './lib/fapi-client.mjs';
import { REDIRECT_URI, startServer } from './lib/server.mjs';

const CHROMIUM = '/usr/bin/chromium';
const haveChromium = fs.existsSync(CHROMIUM);
const skip = !haveChromium && !process.env.CI
  ? `${CHROMIUM} not found (apt-get install chromium); skipped outside CI`
  : false;

// base64(SHA-256(SubjectPublicKeyInfo)) of the certificate the server presents, after Node has
// verified it against the dev CA.
async function verifiedServerSpki(issuer, caPem) {
  const { hostname, port } = new URL(issuer);
  const socket = tls.connect({ host: hostname, port: Number(port || 443), ca: caPem, servername: net.isIP(hostname) ? undefined : hostname });
  await new Promise((resolve, reject) => socket.once('secureConnect', resolve).once('error', reject));
  const cert = socket.getPeerX509Certificate();
  socket.destroy();
  return createHash('sha256').update(cert.publicKey.export({ type: 'spki', format: 'der' })).digest('base64');
}

test('headless Chromium: login and consent end at the redirect_uri with code, state and iss', { skip }, async (t) => {
  assert.ok(haveChromium, `${CHROMIUM} is missing (CI=true: the browser test must run)`);
  const server = await startServer();
  let browser;
  t.after(async () => {
    await browser?.close(); // closes its contexts too
    await server.stop();
  });
  const spki = await verifiedServerSpki(server.issuer, server.caPem);
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--disable-quic', `--ignore-certificate-errors-spki-list=${spki}`],
  });

  const as = await step('discovery', () => discover(server));
  const registered = await step('registration', () => registerClient(server, as, { clientName: 'interop browser.test.mjs' }));
  const dpop = await newDpop(registered.client);
  const { state, nonce, codeVerifier, authorizationUrl } = await step('PAR', () => pushAuthorizationRequest(server, as, registered, dpop));

  const context = await browser.newContext();
  const issuerOrigin = new URL(server.issuer).origin;
  let callbackUrl;
  const blocked = [];
  // Only the issuer is reached over the network; the redirect_uri is answered here, anything
  // else is refused.
  await context.route('**/*', (route) => {
    const url = route.request().url();
    if (url.startsWith(REDIRECT_URI)) {
      callbackUrl ??= new URL(url);
      return route.fulfill({ status: 200, contentType: 'text/html', body: '<!doctype html><title>client</title><p>callback received</p>' });
    }
    if (new URL(url).origin === issuerOrigin) return route.continue();
    blocked.push(url);
    return route.abort();
  });

  const page = await context.newPage();
  // Console errors carry what Chromium refused, e.g. a CSP form-action that blocks the redirect
  // chain of the consent POST on its way to the redirect_uri.
  const consoleErrors = [];
  page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });
  const where = async () => `page ${page.url()}: ${(await page.textContent('body'))?.replace(/\s+/g, ' ').trim().slice(0, 300)}`
    + `${consoleErrors.length ? `\nChromium console errors:\n  ${consoleErrors.join('\n  ')}` : ''}`;
  const first = await page.goto(authorizationUrl.href);
  assert.equal(first.status(), 200, `authorization request: HTTP ${first.status()} ${await first.text()}`);
  await page.fill('input[name="username"]', server.username);
  await page.fill('input[name="password"]', server.password);
  await page.locator('form:has(input[name="password"]) [type="submit"]').first().click();

  const allow = page.locator('button[name="decision"][value="allow"], input[type="submit"][name="decision"][value="allow"]');
  await allow.waitFor({ timeout: 10_000 }).catch(async () => {
    assert.fail(`no consent button after login; ${await where()}`);
  });
  await allow.click();
  await page.waitForURL((url) => url.href.startsWith(REDIRECT_URI), { timeout: 10_000 }).catch(async () => {
    assert.fail(`never reached ${REDIRECT_URI}; ${await where()}`);
  });

  assert.ok(callbackUrl, 'the navigation to the redirect_uri was intercepted');
  assert.deepEqual(blocked, [], 'the pages load nothing from other origins');
  assert.ok(callbackUrl.searchParams.get('code'), `code in ${callbackUrl.href}`);
  assert.equal(callbackUrl.searchParams.get('state'), state);
  assert.equal(callbackUrl.searchParams.get('iss'), as.issuer, 'iss (AS-SP-50)');

  // The code the browser carried is good for a DPoP-bound token.
  const params = oauth.validateAuthResponse(as, registered.client, callbackUrl, state);
  const tokens = await step('token', () => withDpopNonceRetry(async () => oauth.processAuthorizationCodeResponse(as, registered.client,
    await oauth.authorizationCodeGrantRequest(as, registered.client, registered.clientAuth, params, REDIRECT_URI, codeVerifier, requestOptions(server, { DPoP: dpop })),
    { expectedNonce: nonce, requireIdToken: true })));
  assert.equal(tokens.token_type, 'dpop');
});
