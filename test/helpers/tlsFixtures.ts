import { X509Certificate } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { missingPackage, runProgram } from './peerServers.js';

/** A self-signed test certificate: files, PEM text and SHA-256 fingerprint (`AA:BB:…`). */
export interface TestCertificate {
  cert: string;
  key: string;
  pem: string;
  fingerprint: string;
}

const OPENSSL = '/usr/bin/openssl';

/**
 * Makes a self-signed P-256 certificate in `dir` with openssl (Debian package "openssl"),
 * by default for `localhost` and 127.0.0.1.
 */
export async function makeCertificate(
  dir: string,
  options: { name?: string; subjectAltName?: string } = {},
): Promise<TestCertificate> {
  if (!existsSync(OPENSSL)) throw missingPackage(OPENSSL, 'openssl', 'not found');
  const name = options.name ?? 'localhost';
  const cert = join(dir, `${name}.crt`);
  const key = join(dir, `${name}.key`);
  const san = options.subjectAltName ?? 'DNS:localhost,IP:127.0.0.1';
  const args = ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2'];
  args.push('-subj', `/CN=${name}`, '-addext', `subjectAltName=${san}`, '-keyout', key, '-out', cert);
  const made = await runProgram(OPENSSL, args);
  if (made.code !== 0) throw new Error(`openssl req failed (${made.code}): ${made.stderr.trim()}`);
  const pem = await readFile(cert, 'utf8');
  return { cert, key, pem, fingerprint: new X509Certificate(pem).fingerprint256 };
}
