// A `fetch` that trusts one extra CA (the server's development CA) without touching the
// process-wide trust store and without disabling verification.
//
// Node's built-in fetch reads NODE_EXTRA_CA_CERTS only at start-up, and the CA of a freshly
// started Portcullis does not exist yet at that point. oauth4webapi takes a `customFetch`, so we
// hand it this function: node:https with `ca` set to the dev CA (the certificate chain and the
// host name are verified as usual), answering with a WHATWG `Response` like fetch does.
// It covers what oauth4webapi and the scripted browser use: GET/POST, string, URLSearchParams or
// byte bodies, `redirect: 'manual'` (redirects are never followed here) and `signal`.
//
// With `clientCert` ({ cert, key }, PEM) the agent also presents that TLS client certificate
// whenever a server asks for one (RFC 8705 mTLS: oauth4webapi's TlsClientAuth() leaves the
// certificate to the fetch it is given). One agent per certificate: its pooled connections, and
// the TLS sessions it resumes, are never shared with another identity.

import * as https from 'node:https';

const NULL_BODY_STATUS = new Set([101, 103, 204, 205, 304]);

export function createCaFetch(caPem, { clientCert } = {}) {
  const agent = new https.Agent({
    ca: caPem,
    ...(clientCert && { cert: clientCert.cert, key: clientCert.key }),
    keepAlive: true,
    maxSockets: 8,
  });

  async function caFetch(input, init = {}) {
    const url = new URL(input instanceof Request ? input.url : String(input));
    if (url.protocol !== 'https:') throw new TypeError(`caFetch only speaks https, not ${url.protocol}`);
    if (init.redirect !== undefined && init.redirect !== 'manual') {
      // Following redirects silently would hide exactly what the tests look at.
      throw new TypeError(`caFetch supports only redirect: 'manual' (got ${init.redirect})`);
    }
    const method = (init.method || 'GET').toUpperCase();
    const headers = new Headers(init.headers);
    let body = init.body;
    if (body instanceof URLSearchParams) {
      if (!headers.has('content-type')) headers.set('content-type', 'application/x-www-form-urlencoded;charset=UTF-8');
      body = body.toString();
    }
    if (body !== undefined && body !== null) {
      body = typeof body === 'string' ? Buffer.from(body) : Buffer.from(body);
      headers.set('content-length', String(body.length));
    }

    const res = await new Promise((resolve, reject) => {
      const req = https.request(url, {
        method,
        agent,
        headers: Object.fromEntries(headers),
        signal: init.signal ?? undefined,
      }, resolve);
      req.on('error', (err) => reject(new TypeError('fetch failed', { cause: err })));
      req.end(body ?? undefined);
    });

    const chunks = [];
    for await (const chunk of res) chunks.push(chunk);
    const responseHeaders = new Headers();
    for (let i = 0; i < res.rawHeaders.length; i += 2) responseHeaders.append(res.rawHeaders[i], res.rawHeaders[i + 1]);
    const hasBody = method !== 'HEAD' && !NULL_BODY_STATUS.has(res.statusCode);
    const response = new Response(hasBody ? Buffer.concat(chunks) : null, {
      status: res.statusCode,
      statusText: res.statusMessage,
      headers: responseHeaders,
    });
    Object.defineProperty(response, 'url', { value: url.href });
    return response;
  }

  caFetch.close = () => agent.destroy();
  return caFetch;
}
