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
import * as os from 'node:os';
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

// Issue 17 item 8: a bank's branding and German pages (ui_locales=de), checked the way a
// person with a keyboard or a screen reader meets them: the lang attribute, a label for every
// input, Tab reaching the submit button with a visible focus ring, readable contrast, buttons
// that are buttons. Screenshots go to interop/artifacts/ (gitignored) for a human to look at.
const ARTIFACTS = new URL('./artifacts/', import.meta.url);

// What the page's markup offers assistive technology, computed in the page.
function accessibilityReport() {
  const luminance = (rgb) => {
    const [r, g, b] = rgb.match(/\d+(\.\d+)?/g).slice(0, 3).map(Number).map((v) => {
      const c = v / 255;
      return c <= 0.04045 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
    });
    return 0.2126 * r + 0.7152 * g + 0.0722 * b;
  };
  const contrast = (a, b) => {
    const [x, y] = [luminance(a), luminance(b)].sort((p, q) => q - p);
    return (x + 0.05) / (y + 0.05);
  };
  const bodyBg = getComputedStyle(document.body).backgroundColor;
  const unlabelled = [...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
    .filter((el) => el.labels.length === 0 && !el.getAttribute('aria-label') && !el.getAttribute('aria-labelledby'))
    .map((el) => el.name || el.id);
  const fakeButtons = [...document.querySelectorAll('[role=button], a[onclick], div[onclick]')].map((el) => el.outerHTML);
  const textContrast = contrast(getComputedStyle(document.body).color, bodyBg);
  const buttonContrast = [...document.querySelectorAll('button.primary')].map((b) => {
    const s = getComputedStyle(b);
    return contrast(s.color, s.backgroundColor);
  });
  return { lang: document.documentElement.lang, unlabelled, fakeButtons, textContrast, buttonContrast };
}

test('headless Chromium: a branded German sign-in and consent, accessible by keyboard', { skip: skip || (process.env.INTEROP_ISSUER && 'needs a spawned server (branding settings)') }, async (t) => {
  assert.ok(haveChromium, `${CHROMIUM} is missing (CI=true: the browser test must run)`);
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  const logoDir = fs.mkdtempSync(`${os.tmpdir()}/portcullis-logo-`);
  const logo = `${logoDir}/logo.svg`;
  fs.writeFileSync(logo, '<svg xmlns="http://www.w3.org/2000/svg" width="120" height="40"><rect width="120" height="40" fill="#005a32"/></svg>');
  const server = await startServer({
    env: {
      PORTCULLIS_BRANDING_NAME: 'Beispielbank',
      PORTCULLIS_BRANDING_PRIMARY_COLOR: '#005a32',
      PORTCULLIS_BRANDING_LOGO_FILE: logo,
    },
  });
  let browser;
  t.after(async () => {
    await browser?.close();
    await server.stop();
    fs.rmSync(logoDir, { recursive: true, force: true });
  });
  const spki = await verifiedServerSpki(server.issuer, server.caPem);
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--disable-quic', `--ignore-certificate-errors-spki-list=${spki}`],
  });
  const as = await step('discovery', () => discover(server));
  assert.deepEqual(as.ui_locales_supported, ['en', 'de']);
  const registered = await step('registration', () => registerClient(server, as, { clientName: 'Haushaltsbuch' }));
  const dpop = await newDpop(registered.client);
  const { state, authorizationUrl } = await step('PAR', () => pushAuthorizationRequest(server, as, registered, dpop, { extra: { ui_locales: 'de' } }));

  // the browser itself prefers English: ui_locales wins
  const context = await browser.newContext({ locale: 'en-US' });
  const issuerOrigin = new URL(server.issuer).origin;
  let callbackUrl;
  await context.route('**/*', (route) => {
    const url = route.request().url();
    if (url.startsWith(REDIRECT_URI)) {
      callbackUrl ??= new URL(url);
      return route.fulfill({ status: 200, contentType: 'text/html', body: '<!doctype html><title>client</title>' });
    }
    if (new URL(url).origin === issuerOrigin) return route.continue();
    return route.abort();
  });
  const page = await context.newPage();
  const consoleErrors = [];
  page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });

  const first = await page.goto(authorizationUrl.href);
  assert.equal(first.status(), 200);
  assert.match(await page.title(), /Anmelden - Beispielbank/);
  const login = await page.evaluate(accessibilityReport);
  assert.equal(login.lang, 'de');
  assert.deepEqual(login.unlabelled, [], 'every input has a label');
  assert.deepEqual(login.fakeButtons, [], 'buttons are buttons');
  assert.ok(login.textContrast >= 4.5, `text contrast ${login.textContrast}`);
  assert.ok(login.buttonContrast.every((c) => c >= 4.5), `button contrast ${login.buttonContrast}`);
  // the logo comes from the server itself, allowed by img-src 'self' alone
  assert.ok(await page.locator('header img').evaluate((img) => img.complete && img.naturalWidth > 0), 'the logo loads');

  // keyboard: Tab from the top of the page reaches the submit button, whose focus is visible
  await page.fill('#username', server.username);
  await page.fill('#password', server.password);
  await page.evaluate(() => document.activeElement?.blur());
  let onSubmit = false;
  for (let i = 0; i < 10 && !onSubmit; i += 1) {
    await page.keyboard.press('Tab');
    onSubmit = await page.evaluate(() => document.activeElement?.matches('form:has(#password) button[type=submit]') ?? false);
  }
  assert.ok(onSubmit, 'Tab reaches the sign-in button');
  const ring = await page.evaluate(() => {
    const s = getComputedStyle(document.activeElement);
    return { style: s.outlineStyle, width: parseFloat(s.outlineWidth) };
  });
  assert.ok(ring.style !== 'none' && ring.width >= 2, `a visible focus ring on the button: ${JSON.stringify(ring)}`);
  await page.screenshot({ path: new URL('login-de.png', ARTIFACTS).pathname, fullPage: true });
  await page.keyboard.press('Enter');

  const allow = page.locator('button[name="decision"][value="allow"]');
  await allow.waitFor({ timeout: 10_000 });
  assert.match(await page.title(), /Zugriff erlauben - Beispielbank/);
  const body = await page.textContent('main');
  assert.match(body, /Sie sind angemeldet als\s+Alice Liddell/);
  assert.match(body, /Haushaltsbuch\s+möchte:/);
  assert.match(body, /Dieser Zugriff gilt für bis zu/);
  assert.match(await page.textContent('#not-you'), /Nicht Sie\?/);
  const consent = await page.evaluate(accessibilityReport);
  assert.equal(consent.lang, 'de');
  assert.deepEqual(consent.fakeButtons, []);
  assert.ok(consent.buttonContrast.every((c) => c >= 4.5), `button contrast ${consent.buttonContrast}`);
  await page.screenshot({ path: new URL('consent-de.png', ARTIFACTS).pathname, fullPage: true });
  await allow.click();
  await page.waitForURL((url) => url.href.startsWith(REDIRECT_URI), { timeout: 10_000 });
  assert.ok(callbackUrl?.searchParams.get('code'), 'a code');
  assert.equal(callbackUrl.searchParams.get('state'), state);
  assert.deepEqual(consoleErrors, [], 'nothing refused by the CSP');
});
