// Starts a fresh Portcullis for one test file and tears it down again.
//
// Two modes:
// - spawn (default): a new data dir, two free loopback ports, `portcullis user add`, then
//   `portcullis serve`; ready when discovery answers 200 over TLS trusting DIR/tls/ca.pem;
//   then `portcullis registration-token create`. stop() sends SIGTERM and waits for the exit.
// - external: INTEROP_ISSUER names an issuer that is already running (the shared peer, or a
//   Portcullis started by hand); INTEROP_CA, INTEROP_IAT, INTEROP_USERNAME and INTEROP_PASSWORD
//   describe it. Nothing is started or stopped; `spawned` is false so that tests relying on what
//   only a fresh spawn guarantees (e.g. the user's claims) can skip.
//
// Environment: PORTCULLIS_BIN (default ../target/debug/portcullis, relative to interop/),
// INTEROP_START_TIMEOUT_MS (default 20000), INTEROP_KEEP_DATA=1 keeps the data dir.

import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';

import { createCaFetch } from './https-fetch.mjs';

export const INTEROP_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const REDIRECT_URI = 'https://client.example.org/cb';

// The user every test logs in as; the claims are what `user add --claim` stores.
export const USER = {
  username: 'alice',
  claims: { email: 'alice@example.com', name: 'Alice Liddell' },
};

export function portcullisBin() {
  return path.resolve(INTEROP_DIR, process.env.PORTCULLIS_BIN || '../target/debug/portcullis');
}

// `env`: extra environment for the spawned server (e.g. PORTCULLIS_TLS_CLIENT_CA_FILE). An
// external issuer cannot be configured from here, so asking for it there is an error; a test
// that needs it skips in external mode.
export async function startServer({ env = {} } = {}) {
  if (process.env.INTEROP_ISSUER) {
    if (Object.keys(env).length > 0) {
      throw new Error(`INTEROP_ISSUER is set: an external issuer cannot be started with ${Object.keys(env).join(', ')}`);
    }
    return useExternal();
  }
  return spawnPortcullis(env);
}

function useExternal() {
  const issuer = process.env.INTEROP_ISSUER;
  const caFile = process.env.INTEROP_CA;
  if (!caFile) throw new Error('INTEROP_ISSUER is set but INTEROP_CA (the PEM CA to trust) is not');
  const caPem = fs.readFileSync(caFile, 'utf8');
  return {
    spawned: false,
    issuer,
    caFile: path.resolve(caFile),
    caPem,
    fetch: createCaFetch(caPem),
    initialAccessToken: process.env.INTEROP_IAT,
    username: process.env.INTEROP_USERNAME || USER.username,
    password: process.env.INTEROP_PASSWORD,
    output: () => '',
    async stop() { this.fetch.close(); },
  };
}

async function freePort() {
  const srv = net.createServer();
  await new Promise((resolve, reject) => srv.listen(0, '127.0.0.1', resolve).on('error', reject));
  const { port } = srv.address();
  await new Promise((resolve) => srv.close(resolve));
  return port;
}

// Runs a portcullis sub-command to completion; rejects with its output on a non-zero exit.
function runCli(bin, args, { env, input } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(bin, args, { env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => { stdout += d; });
    child.stderr.on('data', (d) => { stderr += d; });
    child.on('error', reject);
    child.on('close', (code, signal) => {
      if (code === 0) resolve(stdout);
      else reject(new Error(`portcullis ${args.join(' ')} exited with ${code ?? signal}\nstdout: ${stdout}\nstderr: ${stderr}`));
    });
    child.stdin.end(input ?? '');
  });
}

async function spawnPortcullis(extraEnv) {
  const bin = portcullisBin();
  if (!fs.existsSync(bin)) {
    throw new Error(`Portcullis binary not found at ${bin} (build it, set PORTCULLIS_BIN, or point INTEROP_ISSUER at a running issuer)`);
  }
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'portcullis-interop-'));
  const [port, mtlsPort] = [await freePort(), await freePort()];
  const issuer = `https://localhost:${port}`;
  const env = {
    ...process.env,
    PORTCULLIS_SERVER_ISSUER: issuer,
    PORTCULLIS_SERVER_LISTEN: `127.0.0.1:${port}`,
    PORTCULLIS_SERVER_MTLS_LISTEN: `127.0.0.1:${mtlsPort}`,
    // any free port: these tests do not scrape it
    PORTCULLIS_SERVER_MANAGEMENT_LISTEN: '127.0.0.1:0',
    ...extraEnv,
  };
  const dd = ['--data-dir', dataDir];
  const password = randomBytes(12).toString('base64url');

  const claims = Object.entries(USER.claims).flatMap(([k, v]) => ['--claim', `${k}=${v}`]);
  await runCli(bin, ['user', 'add', USER.username, '--password-stdin', ...claims, ...dd], { env, input: `${password}\n` });

  const child = spawn(bin, ['serve', ...dd], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (d) => { output += d; });
  child.stderr.on('data', (d) => { output += d; });
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve(code ?? signal)));
  let exitStatus;
  exited.then((s) => { exitStatus = s; });

  const server = {
    spawned: true,
    issuer,
    dataDir,
    mtlsPort,
    caFile: path.join(dataDir, 'tls', 'ca.pem'),
    caPem: undefined,
    fetch: undefined,
    initialAccessToken: undefined,
    username: USER.username,
    password,
    output: () => output,
    async stop() {
      this.fetch?.close();
      if (exitStatus === undefined) {
        child.kill('SIGTERM');
        const timer = new AbortController(); // cancelled, so that no pending timer keeps the test process alive
        const timedOut = await Promise.race([
          exited.then(() => false),
          sleep(10_000, true, { signal: timer.signal }).catch(() => false),
        ]);
        timer.abort();
        if (timedOut) {
          child.kill('SIGKILL');
          await exited;
          throw new Error(`portcullis serve did not exit within 10 s of SIGTERM\n${output}`);
        }
      }
      if (!process.env.INTEROP_KEEP_DATA) fs.rmSync(dataDir, { recursive: true, force: true });
    },
  };

  try {
    await waitUntilReady(server, () => exitStatus);
    server.initialAccessToken = (await runCli(bin, ['registration-token', 'create', ...dd], { env })).trim().split('\n').pop().trim();
    if (!server.initialAccessToken) throw new Error('registration-token create printed nothing');
  } catch (err) {
    await server.stop().catch(() => {});
    err.message += `\n--- portcullis serve output ---\n${output}`;
    throw err;
  }
  return server;
}

// Polls discovery until it answers 200; the CA file appears during the first start.
async function waitUntilReady(server, exitStatus) {
  const timeoutMs = Number(process.env.INTEROP_START_TIMEOUT_MS || 20_000);
  const deadline = Date.now() + timeoutMs;
  const discovery = `${server.issuer}/.well-known/openid-configuration`;
  let last = 'CA file not written yet';
  while (Date.now() < deadline) {
    if (exitStatus() !== undefined) throw new Error(`portcullis serve exited early with ${exitStatus()}`);
    if (!server.fetch && fs.existsSync(server.caFile)) {
      const pem = fs.readFileSync(server.caFile, 'utf8');
      if (pem.includes('END CERTIFICATE')) {
        server.caPem = pem;
        server.fetch = createCaFetch(pem);
      }
    }
    if (server.fetch) {
      try {
        const res = await server.fetch(discovery, { redirect: 'manual', signal: AbortSignal.timeout(2_000) });
        await res.arrayBuffer();
        if (res.status === 200) return;
        last = `HTTP ${res.status}`;
      } catch (err) {
        last = err.cause?.message || err.message;
      }
    }
    await sleep(200);
  }
  throw new Error(`portcullis serve not ready within ${timeoutMs} ms (${discovery}: ${last})`);
}
