// tsyringe, used inside @peculiar/x509, needs the Reflect metadata API; loaded only here.
import 'reflect-metadata';
import { randomBytes, webcrypto } from 'node:crypto';
import { isIP } from 'node:net';
import * as x509 from '@peculiar/x509';

/** A PEM certificate and its PEM (PKCS#8) private key. */
export interface PemPair {
  cert: string;
  key: string;
}

/** How long a generated certificate is valid: long, because clients pin its fingerprint. */
export const GENERATED_VALIDITY_DAYS = 3650;

const ALGORITHM = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const DAY_MS = 86_400_000;

function pem(label: string, der: ArrayBuffer): string {
  const b64 = Buffer.from(der).toString('base64');
  return `-----BEGIN ${label}-----\n${b64.replace(/(.{64})/g, '$1\n').replace(/\n$/, '')}\n-----END ${label}-----\n`;
}

/**
 * Generates a self-signed server certificate (ECDSA P-256, SHA-256) valid for `names`
 * (DNS names and IP addresses; the first is also the subject's common name) from an hour
 * ago for {@link GENERATED_VALIDITY_DAYS} days, with the key in PKCS#8 PEM.
 */
export async function generateSelfSignedCertificate(names: readonly string[], now = new Date()): Promise<PemPair> {
  if (names.length === 0) throw new TypeError('a certificate needs at least one name');
  const keys = await webcrypto.subtle.generateKey(ALGORITHM, true, ['sign', 'verify']);
  const serial = randomBytes(16);
  serial[0] = serial[0]! & 0x7f; // a positive INTEGER
  const dns = names.filter((n) => isIP(n) === 0);
  const cn = dns.find((n) => n !== 'localhost') ?? dns[0] ?? names[0]!;
  const cert = await x509.X509CertificateGenerator.createSelfSigned(
    {
      serialNumber: serial.toString('hex'),
      name: [{ CN: [cn] }, { O: ['DFOS self-signed'] }],
      notBefore: new Date(now.getTime() - 3_600_000),
      notAfter: new Date(now.getTime() + GENERATED_VALIDITY_DAYS * DAY_MS),
      keys,
      signingAlgorithm: ALGORITHM,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        // No keyUsage: with only digitalSignature, OpenSSL no longer sees the certificate as
        // its own issuer (X509_check_issued), which a pinned self-signed certificate must be.
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
        new x509.SubjectAlternativeNameExtension(names.map((n) => (isIP(n) === 0 ? { type: 'dns', value: n } : { type: 'ip', value: n }))),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey, false, webcrypto),
      ],
    },
    webcrypto,
  );
  const key = await webcrypto.subtle.exportKey('pkcs8', keys.privateKey);
  return { cert: cert.toString('pem') + '\n', key: pem('PRIVATE KEY', key) };
}
