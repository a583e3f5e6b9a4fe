// A throw-away client PKI for the RFC 8705 tests, made with the `openssl` command line (3.0 or
// later): one CA (self-signed, basicConstraints CA:true, keyUsage keyCertSign) and client
// certificates it issues (basicConstraints CA:false, keyUsage digitalSignature, extendedKeyUsage
// clientAuth), all P-256. The server is told to trust the CA with PORTCULLIS_TLS_CLIENT_CA_FILE.
//
// Everything lives in `dir`, which the caller creates and removes. Validity starts now (openssl
// 3.0 cannot backdate), which is fine for a server on the same clock.

import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

// Our own config, so that neither the system's openssl.cnf nor OPENSSL_CONF adds extensions.
const OPENSSL_CNF = `
[req]
distinguished_name = req_dn
prompt = no
[req_dn]
CN = replaced by -subj
[ca_ext]
basicConstraints = critical, CA:true
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[client_ext]
basicConstraints = critical, CA:false
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid, issuer
`;

async function openssl(args, cwd) {
  try {
    await run('openssl', args, { cwd, env: { ...process.env, OPENSSL_CONF: path.join(cwd, 'openssl.cnf') } });
  } catch (err) {
    throw new Error(`openssl ${args.join(' ')} failed: ${err.stderr || err.message}`, { cause: err });
  }
}

// Creates the CA in `dir`; returns { caFile, caPem, issue(name, subject) }. issue() makes a key
// and a certificate with the given openssl-style subject ('/O=.../CN=...') and returns
// { cert, key, certFile, keyFile } (cert and key as PEM strings).
export async function createClientPki(dir) {
  fs.writeFileSync(path.join(dir, 'openssl.cnf'), OPENSSL_CNF);
  const newKey = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  await openssl(['req', '-x509', '-config', 'openssl.cnf', '-extensions', 'ca_ext', ...newKey,
    '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-sha256', '-subj', '/O=Portcullis Interop/CN=Interop Client CA'], dir);
  const caFile = path.join(dir, 'ca.pem');

  async function issue(name, subject) {
    await openssl(['req', '-new', '-config', 'openssl.cnf', ...newKey,
      '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', subject], dir);
    await openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key',
      '-set_serial', `0x${randomBytes(16).toString('hex')}`, '-days', '1', '-sha256',
      '-extfile', 'openssl.cnf', '-extensions', 'client_ext', '-out', `${name}.pem`], dir);
    const certFile = path.join(dir, `${name}.pem`);
    const keyFile = path.join(dir, `${name}.key`);
    return { cert: fs.readFileSync(certFile, 'utf8'), key: fs.readFileSync(keyFile, 'utf8'), certFile, keyFile };
  }

  return { caFile, caPem: fs.readFileSync(caFile, 'utf8'), issue };
}
