import { createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { TlsCredentialsError } from './TlsCredentialsError.js';

/** Where a certificate and its key are, and what to tell the operator to fix a problem. */
export interface KeyPairFiles {
  certFile: string;
  keyFile: string;
  /** Appended to a problem with the certificate file, e.g. `check --tls-cert`. */
  certFix?: string;
  /** Appended to a problem with the key file. */
  keyFix?: string;
}

/** A certificate (with any chain after it) and its private key, read and checked. */
export interface KeyPair {
  readonly certFile: string;
  readonly keyFile: string;
  /** The certificate file's PEM certificates (leaf first), as `cert` for tls.createSecureContext. */
  readonly cert: string;
  /** The private key's PEM block, as `key` for tls.createSecureContext. */
  readonly key: string;
  /** The leaf certificate. */
  readonly leaf: X509Certificate;
  /** Number of certificates in the certificate file (1 without a chain). */
  readonly chainLength: number;
  /** SHA-256 fingerprint of the leaf certificate, `AA:BB:...`. */
  readonly fingerprint: string;
}

const CERT_BLOCK = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g;
const KEY_BLOCK = /-----BEGIN ((?:RSA |EC |ENCRYPTED )?PRIVATE KEY)-----[\s\S]*?-----END \1-----/;
/** Certificates and keys are a few kilobytes; a chain a few more. */
const MAX_PEM_BYTES = 1024 * 1024;

function errnoText(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  if (e.code === 'EACCES' || e.code === 'EPERM') return 'permission denied';
  if (e.code === 'EISDIR') return 'it is a directory';
  return e.code ?? (err instanceof Error ? err.message : String(err));
}

function withFix(text: string, fix: string | undefined): string {
  return fix ? `${text}; ${fix}` : text;
}

async function readPem(label: string, file: string, fix: string | undefined): Promise<{ text: string; bytes: Buffer }> {
  let bytes: Buffer;
  try {
    bytes = await readFile(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new TlsCredentialsError(withFix(`${label} ${file}: no such file`, fix), 'missing', file);
    }
    throw new TlsCredentialsError(withFix(`${label} ${file}: cannot read it (${errnoText(err)})`, fix), 'unreadable', file);
  }
  if (bytes.length > MAX_PEM_BYTES) {
    throw new TlsCredentialsError(withFix(`${label} ${file}: too large to be a PEM file (${bytes.length} bytes)`, fix), 'not-pem', file);
  }
  return { text: bytes.toString('latin1'), bytes };
}

function notPem(label: string, file: string, bytes: Buffer, block: string, fix: string | undefined, der: string): TlsCredentialsError {
  const looksDer = bytes.length > 2 && bytes[0] === 0x30 && (bytes[1]! & 0x80) !== 0;
  const text = looksDer
    ? `${label} ${file}: is DER (binary), not PEM; convert it with: ${der}`
    : `${label} ${file}: not PEM (no "-----BEGIN ${block}-----" block)`;
  return new TlsCredentialsError(withFix(text, fix), 'not-pem', file);
}

/** Reads the certificate file: one or more PEM certificates, the server's own first. */
async function readCertificates(files: KeyPairFiles): Promise<{ blocks: string[]; leaf: X509Certificate }> {
  const file = files.certFile;
  const label = 'TLS certificate';
  const { text, bytes } = await readPem(label, file, files.certFix);
  const blocks = text.match(CERT_BLOCK) ?? [];
  if (blocks.length === 0) {
    if (KEY_BLOCK.test(text)) {
      throw new TlsCredentialsError(
        withFix(`${label} ${file}: holds a private key, not a certificate (are the certificate and key files swapped?)`, files.certFix),
        'not-pem',
        file,
      );
    }
    throw notPem(label, file, bytes, 'CERTIFICATE', files.certFix, `openssl x509 -inform der -in ${file} -out ${file}.pem`);
  }
  const parsed = blocks.map((block, i) => {
    try {
      return new X509Certificate(block);
    } catch (err) {
      const which = blocks.length === 1 ? 'the certificate' : `certificate ${i + 1} of ${blocks.length}`;
      throw new TlsCredentialsError(
        withFix(`${label} ${file}: ${which} cannot be parsed (${err instanceof Error ? err.message : String(err)})`, files.certFix),
        'invalid',
        file,
      );
    }
  });
  return { blocks, leaf: parsed[0]! };
}

/** Reads the key file: one unencrypted PEM private key (PKCS#8, or traditional RSA / EC). */
async function readKey(files: KeyPairFiles): Promise<{ block: string; key: KeyObject }> {
  const file = files.keyFile;
  const label = 'TLS key';
  const { text, bytes } = await readPem(label, file, files.keyFix);
  const m = KEY_BLOCK.exec(text);
  if (!m) {
    if (text.includes('-----BEGIN CERTIFICATE-----')) {
      throw new TlsCredentialsError(
        withFix(`${label} ${file}: holds a certificate, not a private key (are the certificate and key files swapped?)`, files.keyFix),
        'not-pem',
        file,
      );
    }
    throw notPem(label, file, bytes, 'PRIVATE KEY', files.keyFix, `openssl pkey -inform der -in ${file} -out ${file}.pem`);
  }
  const block = m[0];
  if (m[1] === 'ENCRYPTED PRIVATE KEY' || /Proc-Type:\s*4,ENCRYPTED/.test(block)) {
    throw new TlsCredentialsError(
      withFix(`${label} ${file}: is encrypted (protected by a passphrase); give an unencrypted key, e.g. from: openssl pkey -in ${file} -out KEY.pem`, files.keyFix),
      'encrypted',
      file,
    );
  }
  try {
    return { block, key: createPrivateKey(block) };
  } catch (err) {
    throw new TlsCredentialsError(
      withFix(`${label} ${file}: the private key cannot be parsed (${err instanceof Error ? err.message : String(err)})`, files.keyFix),
      'invalid',
      file,
    );
  }
}

/**
 * Reads a PEM certificate file (the server's certificate, then any intermediates) and a PEM
 * private key file, and checks that the key belongs to the certificate. Throws
 * {@link TlsCredentialsError} with a one-line message naming the file and the problem.
 */
export async function readKeyPair(files: KeyPairFiles): Promise<KeyPair> {
  const { blocks, leaf } = await readCertificates(files);
  const { block, key } = await readKey(files);
  if (!leaf.checkPrivateKey(key)) {
    throw new TlsCredentialsError(
      withFix(`TLS key ${files.keyFile}: does not match the certificate ${files.certFile}`, files.keyFix),
      'mismatch',
      files.keyFile,
    );
  }
  return {
    certFile: files.certFile,
    keyFile: files.keyFile,
    cert: blocks.join('\n') + '\n',
    key: block + '\n',
    leaf,
    chainLength: blocks.length,
    fingerprint: leaf.fingerprint256,
  };
}
