// The shared reference driver (peer/flow.mjs: oauth4webapi, dynamic registration, PAR, DPoP,
// form login + consent, token, id_token signature, userinfo, refresh, introspection, and with
// --negative the misuse checks: DPoP-bound token as Bearer, proof from another key, code replay
// (AS-SP-64, AS-SP-72, RS-SP-*)) run unchanged against a fresh Portcullis. It is the same script
// the peer baseline was measured with, so a pass here means "behaves like the reference server".
//
// The driver is copied into interop/.peer-run/ so that its `jose` / `oauth4webapi` imports
// resolve to interop/node_modules (the versions pinned here are the peer's).
// PEER_DIR (default ../../shared/peer, relative to interop/) says where the driver lives;
// PEER_FLOW_ARGS adds options (e.g. "--no-introspection").

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, test } from 'node:test';

import { INTEROP_DIR, startServer } from './lib/server.mjs';

const PEER_DIR = path.resolve(INTEROP_DIR, process.env.PEER_DIR || '../../shared/peer');
const RUN_DIR = path.join(INTEROP_DIR, '.peer-run');

let server;

before(async () => {
  fs.mkdirSync(RUN_DIR, { recursive: true });
  for (const file of ['flow.mjs', 'login-form.mjs']) {
    fs.copyFileSync(path.join(PEER_DIR, file), path.join(RUN_DIR, file));
    fs.chmodSync(path.join(RUN_DIR, file), 0o644); // the shared copy is read-only
  }
  server = await startServer();
});

after(async () => {
  await server?.stop();
});

function run(args, timeoutMs) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { cwd: INTEROP_DIR, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d) => { output += d; });
    child.stderr.on('data', (d) => { output += d; });
    const timer = setTimeout(() => child.kill('SIGTERM'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ status: code ?? signal, output });
    });
  });
}

test('peer/flow.mjs --negative passes against the server under test', async (t) => {
  assert.ok(server.password, 'the user password is known (set INTEROP_PASSWORD for an external issuer)');
  const args = [
    path.join('.peer-run', 'flow.mjs'), '--negative',
    '--issuer', server.issuer,
    '--ca', server.caFile,
    // `--name=value`: a value may start with '-' (random tokens and passwords do)
    `--initial-access-token=${server.initialAccessToken ?? 'none'}`,
    `--username=${server.username}`,
    `--password=${server.password}`,
    ...(process.env.PEER_FLOW_ARGS?.split(/\s+/).filter(Boolean) ?? []),
  ];
  const { status, output } = await run(args, 120_000);
  assert.equal(status, 0, `node ${args.join(' ')} exited with ${status}:\n${output}`);
  for (const line of output.trim().split('\n')) t.diagnostic(line);
});

// AS-SP-95: the same driver with every FAPI algorithm for the client assertion and the DPoP
// proof (oauth4webapi names Ed25519 keys `Ed25519`; PS256 is the conformance suite's default
// DPoP algorithm).
for (const [clientAlg, dpopAlg] of [['PS256', 'PS256'], ['Ed25519', 'Ed25519'], ['ES256', 'PS256']]) {
  test(`peer/flow.mjs with --client-alg ${clientAlg} --dpop-alg ${dpopAlg}`, async () => {
    const args = [
      path.join('.peer-run', 'flow.mjs'),
      '--client-alg', clientAlg, '--dpop-alg', dpopAlg,
      '--issuer', server.issuer,
      '--ca', server.caFile,
      `--initial-access-token=${server.initialAccessToken ?? 'none'}`,
      `--username=${server.username}`,
      `--password=${server.password}`,
      ...(process.env.PEER_FLOW_ARGS?.split(/\s+/).filter(Boolean) ?? []),
    ];
    const { status, output } = await run(args, 120_000);
    assert.equal(status, 0, `node ${args.join(' ')} exited with ${status}:\n${output}`);
  });
}

// FAPI 2.0 Message Signing with the same driver: a signed request object at PAR (JAR), a
// signed authorization response (JARM) and a signed introspection response (RFC 9701), for
// ES256, PS256 and Ed25519 clients (issue 16).
for (const clientAlg of ['ES256', 'PS256', 'Ed25519']) {
  test(`peer/flow.mjs with --jar --jarm --jwt-introspection --client-alg ${clientAlg}`, async () => {
    const args = [
      path.join('.peer-run', 'flow.mjs'),
      '--jar', '--jarm', '--jwt-introspection',
      '--client-alg', clientAlg, '--dpop-alg', clientAlg,
      '--issuer', server.issuer,
      '--ca', server.caFile,
      `--initial-access-token=${server.initialAccessToken ?? 'none'}`,
      `--username=${server.username}`,
      `--password=${server.password}`,
    ];
    const { status, output } = await run(args, 120_000);
    assert.equal(status, 0, `node ${args.join(' ')} exited with ${status}:\n${output}`);
  });
}
