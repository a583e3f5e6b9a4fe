// A small scripted browser for the front channel: it follows redirects by hand, keeps cookies,
// parses HTML forms and submits them the way a browser would (hidden inputs included, the
// clicked submit button's name=value added, Origin and Sec-Fetch-* headers set). It stops at a
// redirect to the client's redirect_uri and never fetches it.

const MAX_REDIRECTS = 10;

export class CookieJar {
  #cookies = new Map(); // `${host}|${path}|${name}` -> { value, host, path, expires }

  update(url, headers) {
    for (const line of headers.getSetCookie()) {
      const [pair, ...attributes] = line.split(';').map((s) => s.trim());
      const eq = pair.indexOf('=');
      if (eq <= 0) continue;
      const cookie = { name: pair.slice(0, eq), value: pair.slice(eq + 1), host: url.hostname, path: defaultPath(url) };
      for (const attribute of attributes) {
        const [k, ...rest] = attribute.split('=');
        const v = rest.join('=');
        switch (k.toLowerCase()) {
          case 'path': if (v.startsWith('/')) cookie.path = v; break;
          case 'max-age': cookie.expires = Date.now() + Number(v) * 1000; break;
          case 'expires': cookie.expires ??= Date.parse(v); break;
          default: break; // Secure, HttpOnly, SameSite: we only ever speak https to one site
        }
      }
      const key = `${cookie.host}|${cookie.path}|${cookie.name}`;
      if (cookie.expires !== undefined && !(cookie.expires > Date.now())) this.#cookies.delete(key);
      else this.#cookies.set(key, cookie);
    }
  }

  headerFor(url) {
    const now = Date.now();
    return [...this.#cookies.values()]
      .filter((c) => c.host === url.hostname && pathMatches(url.pathname, c.path) && !(c.expires <= now))
      .sort((a, b) => b.path.length - a.path.length)
      .map((c) => `${c.name}=${c.value}`)
      .join('; ');
  }
}

function defaultPath(url) {
  const i = url.pathname.lastIndexOf('/');
  return i <= 0 ? '/' : url.pathname.slice(0, i);
}

function pathMatches(requestPath, cookiePath) {
  return requestPath === cookiePath
    || (requestPath.startsWith(cookiePath) && (cookiePath.endsWith('/') || requestPath[cookiePath.length] === '/'));
}

// ------------------------------------------------------------------ HTML forms

function decode(s) {
  const named = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'", nbsp: '\u00a0' };
  return s.replace(/&(?:#x([0-9a-f]+)|#(\d+)|([a-z]+));/gi, (m, hex, dec, name) => {
    if (hex) return String.fromCodePoint(parseInt(hex, 16));
    if (dec) return String.fromCodePoint(parseInt(dec, 10));
    return named[name.toLowerCase()] ?? m;
  });
}

function attributesOf(tag) {
  const out = {};
  for (const m of tag.matchAll(/([^\s"'<>/=]+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'=<>`]+)))?/g)) {
    out[m[1].toLowerCase()] = decode(m[2] ?? m[3] ?? m[4] ?? '');
  }
  return out;
}

// Every <form> with its inputs (name, type, value) and submit buttons (name, value, label).
export function parseForms(html, pageUrl) {
  const forms = [];
  for (const [, formAttrs, inner] of html.matchAll(/<form\b([^>]*)>([\s\S]*?)<\/form\s*>/gi)) {
    const a = attributesOf(formAttrs);
    const form = {
      action: new URL(a.action || pageUrl, pageUrl),
      method: (a.method || 'GET').toUpperCase(),
      inputs: [],
      buttons: [],
    };
    for (const [, buttonAttrs, content, inputAttrs] of inner.matchAll(/<button\b([^>]*)>([\s\S]*?)<\/button\s*>|<input\b([^>]*)>/gi)) {
      const isButton = buttonAttrs !== undefined;
      const t = attributesOf(isButton ? buttonAttrs : inputAttrs);
      if ('disabled' in t) continue;
      const type = (t.type || (isButton ? 'submit' : 'text')).toLowerCase();
      if (type === 'submit') {
        form.buttons.push({ name: t.name, value: t.value ?? '', label: isButton ? textOf(content) : t.value });
      } else if (!isButton && t.name && !(['checkbox', 'radio'].includes(type) && !('checked' in t))) {
        form.inputs.push({ name: t.name, type, value: t.value ?? (type === 'checkbox' ? 'on' : '') });
      }
    }
    forms.push(form);
  }
  return forms;
}

export function textOf(html) {
  return html.replace(/<(script|style)\b[\s\S]*?<\/\1\s*>/gi, ' ').replace(/<[^>]*>/g, ' ').replace(/\s+/g, ' ').trim();
}

// --------------------------------------------------------------------- browser

export class FormBrowser {
  constructor({ fetch, redirectUri, timeoutMs = 15_000 }) {
    this.fetch = fetch;
    this.redirectUri = new URL(redirectUri);
    this.timeoutMs = timeoutMs;
    this.jar = new CookieJar();
    this.trail = []; // "METHOD /path -> status", for failure messages
    this.origin = undefined; // the authorization server's origin, fixed by the first request
  }

  // Top-level navigation (as if the client redirected the user agent here).
  open(url) {
    return this.#navigate(new URL(url), { method: 'GET', site: 'cross-site' });
  }

  // Submits `form` like a browser: its inputs with their values (overridden by `fill`) plus the
  // pressed `button` ({ name, value }), if it has a name.
  submit(page, form, { fill = {}, button } = {}) {
    const values = new URLSearchParams();
    for (const input of form.inputs) values.append(input.name, fill[input.name] ?? input.value);
    for (const [name, value] of Object.entries(fill)) {
      if (!form.inputs.some((i) => i.name === name)) values.append(name, value);
    }
    if (button?.name) values.append(button.name, button.value ?? '');
    if (form.method === 'POST') {
      return this.#navigate(form.action, { method: 'POST', body: values.toString(), referrer: page.url });
    }
    const target = new URL(form.action);
    target.search = values.toString();
    return this.#navigate(target, { method: 'GET', referrer: page.url });
  }

  // Returns { kind: 'callback', url } at a redirect to the redirect_uri, otherwise the page that
  // ended the redirect chain: { kind: 'page', status, url, html, forms, text }.
  async #navigate(url, { method, body, referrer, site = 'same-origin' }) {
    for (let hops = 0; hops <= MAX_REDIRECTS; hops += 1) {
      this.origin ??= url.origin;
      if (url.origin !== this.origin) {
        throw new Error(`front channel left the server for ${url.href} (trail: ${this.trail.join(' | ')})`);
      }
      const headers = {
        accept: 'text/html,application/xhtml+xml',
        'sec-fetch-mode': 'navigate',
        'sec-fetch-dest': 'document',
        'sec-fetch-site': site,
      };
      if (referrer) headers.referer = referrer;
      const cookie = this.jar.headerFor(url);
      if (cookie) headers.cookie = cookie;
      if (body !== undefined) {
        headers['content-type'] = 'application/x-www-form-urlencoded';
        headers.origin = this.origin;
      }
      const res = await this.fetch(url.href, { method, headers, body, redirect: 'manual', signal: AbortSignal.timeout(this.timeoutMs) });
      this.jar.update(url, res.headers);
      this.trail.push(`${method} ${url.pathname} -> ${res.status}`);

      if (res.status >= 300 && res.status < 400 && res.headers.has('location')) {
        await res.arrayBuffer();
        const next = new URL(res.headers.get('location'), url);
        if (next.origin === this.redirectUri.origin && next.pathname === this.redirectUri.pathname) {
          return { kind: 'callback', url: next, status: res.status };
        }
        // A 307/308 would re-post the form (credentials included) elsewhere: browsers do that,
        // FAPI forbids 307 for it (AS-SP-52). We surface it instead of silently changing method.
        if (method === 'POST' && (res.status === 307 || res.status === 308)) {
          throw new Error(`POST ${url.pathname} answered ${res.status}; FAPI 2.0 forbids 307 after a credentials POST (AS-SP-52)`);
        }
        url = next;
        method = 'GET';
        body = undefined;
        site = 'same-origin';
        continue;
      }
      const html = await res.text();
      return { kind: 'page', status: res.status, url, contentType: res.headers.get('content-type'), html, forms: parseForms(html, url), text: textOf(html) };
    }
    throw new Error(`more than ${MAX_REDIRECTS} redirects (trail: ${this.trail.join(' | ')})`);
  }
}

// Helpers for the two pages Portcullis shows (INTERFACE.md: login form with `username` and
// `password`; consent form with submit buttons `decision` = `allow` | `deny`).
export function loginForm(page) {
  return page.kind === 'page' ? page.forms.find((f) => f.inputs.some((i) => i.name === 'username') && f.inputs.some((i) => i.name === 'password')) : undefined;
}

export function consentButton(page, value) {
  if (page.kind !== 'page') return undefined;
  for (const form of page.forms) {
    const button = form.buttons.find((b) => b.name === 'decision' && b.value === value);
    if (button) return { form, button };
  }
  return undefined;
}

export function describePage(page) {
  if (page.kind === 'callback') return `redirect to ${page.url.href}`;
  return `HTTP ${page.status} ${page.url.pathname} (${page.contentType}): ${page.text.slice(0, 300)}`;
}
