import { readFile } from 'node:fs/promises';
import { TLSSocket, type ConnectionOptions as TLSConnectionOptions } from 'node:tls';
import type { FTPContext } from 'basic-ftp';

/**
 * FTPS for DfosClient: how the server's certificate is checked, and turning a failed check
 * into a one-line reason.
 *
 * - default: Node's normal verification against the system CAs, name included;
 * - `ca`: the same against the given CA certificate(s) only;
 * - `fingerprint`: the server's leaf certificate must have this SHA-256 fingerprint, whatever
 *   its chain or names (pinning, for self-signed servers). Node cannot pin by itself, so the
 *   chain check is off and every TLS socket (control and data) is checked as soon as its
 *   handshake completes, before anything is sent on it;
 * - `insecure`: no verification at all.
 */
export type TlsVerification =
  | { kind: 'system' }
  | { kind: 'ca'; ca: string | Buffer }
  | { kind: 'fingerprint'; fingerprint: string }
  | { kind: 'insecure' };

/** `AA:BB:…` (64 hex digits, upper case, colon-separated) from any spelling of a SHA-256 fingerprint; undefined if it is not one. */
export function normalizeFingerprint(text: string): string | undefined {
  const hex = text
    .trim()
    .replace(/^sha-?256\s*[:=]?\s*/i, '')
    .replace(/[:\s]/g, '')
    .toUpperCase();
  if (!/^[0-9A-F]{64}$/.test(hex)) return undefined;
  return hex.match(/../g)!.join(':');
}

/** PEM text as given, or the contents of the file it names. */
export async function loadCa(ca: string | Buffer): Promise<string | Buffer> {
  if (typeof ca !== 'string' || ca.includes('-----BEGIN')) return ca;
  return readFile(ca);
}

/** The tls.connect options for the control and data connections. */
export function tlsOptionsFor(host: string, verification: TlsVerification, extra: TLSConnectionOptions | undefined): TLSConnectionOptions {
  const options: TLSConnectionOptions = { ...extra, host: extra?.host ?? host };
  switch (verification.kind) {
    case 'ca':
      options.ca = verification.ca;
      options.rejectUnauthorized = true;
      break;
    case 'fingerprint':
    case 'insecure':
      options.rejectUnauthorized = false;
      break;
    case 'system':
      break;
  }
  return options;
}

/** A failed certificate check of ours (fingerprint pinning), carried through basic-ftp to toDfosError. */
export class PeerCertificateError extends Error {
  readonly code = 'DFOS_TLS_CERTIFICATE';
  constructor(
    readonly reason: string,
    readonly fingerprint?: string,
  ) {
    super(`TLS certificate verification failed: ${reason}`);
  }
}

/**
 * The peer's certificate fingerprint, or undefined when it sent none. getPeerX509Certificate
 * also knows it on a resumed session (a data connection), where getPeerCertificate is empty.
 */
export function peerFingerprint(socket: TLSSocket): string | undefined {
  const x509 = socket.getPeerX509Certificate();
  if (x509 !== undefined) return x509.fingerprint256;
  const cert = socket.getPeerCertificate();
  return cert && typeof cert.fingerprint256 === 'string' && cert.fingerprint256 !== '' ? cert.fingerprint256 : undefined;
}

/** Checks a TLS socket whose handshake has completed; an error if it must not be used. */
export function checkPeer(socket: TLSSocket, verification: TlsVerification): PeerCertificateError | undefined {
  if (verification.kind !== 'fingerprint') return undefined;
  const got = peerFingerprint(socket);
  if (got === undefined) return new PeerCertificateError('the server sent no certificate');
  if (got !== verification.fingerprint) return new PeerCertificateError(`fingerprint mismatch: got ${got}, expected ${verification.fingerprint}`, got);
  return undefined;
}

/**
 * Checks every TLS data connection basic-ftp opens (it creates them itself, from the control
 * connection's options and session): when the handshake completes, a socket that did not
 * resume the control connection's session and fails checkPeer is destroyed with the reason
 * before any data is read or written on it.
 */
export function checkDataSockets(context: FTPContext, verification: TlsVerification): void {
  if (verification.kind !== 'fingerprint') return;
  const accessor = Object.getOwnPropertyDescriptor(Object.getPrototypeOf(context) as object, 'dataSocket');
  if (!accessor?.get || !accessor.set) throw new Error('basic-ftp changed: FTPContext has no dataSocket accessor');
  const { get, set } = accessor;
  Object.defineProperty(context, 'dataSocket', {
    configurable: true,
    enumerable: accessor.enumerable ?? false,
    get() {
      return get.call(context) as unknown;
    },
    set(socket: unknown) {
      set.call(context, socket);
      if (socket instanceof TLSSocket) {
        socket.once('secureConnect', () => {
          // A resumed session is the control connection's, whose certificate was checked before
          // logging in: only that server has its keys (and Node shows no certificate for it).
          if (socket.isSessionReused()) return;
          const problem = checkPeer(socket, verification);
          if (problem) socket.destroy(problem);
        });
      }
    },
  });
}

/** OpenSSL's verification results (the `code` of Node's error) as reasons. */
const NOT_TRUSTED: Readonly<Record<string, string>> = {
  DEPTH_ZERO_SELF_SIGNED_CERT: 'certificate not trusted (self-signed)',
  SELF_SIGNED_CERT_IN_CHAIN: 'certificate not trusted (self-signed certificate in the chain)',
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: 'certificate not trusted (unknown issuer)',
  UNABLE_TO_GET_ISSUER_CERT: 'certificate not trusted (unknown issuer)',
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: 'certificate not trusted (unknown issuer)',
  CERT_UNTRUSTED: 'certificate not trusted',
  CERT_REJECTED: 'certificate not trusted (rejected)',
  INVALID_CA: 'certificate not trusted (invalid CA certificate in the chain)',
  INVALID_PURPOSE: 'certificate not trusted (not for TLS servers)',
  PATH_LENGTH_EXCEEDED: 'certificate not trusted (chain too long)',
  CERT_CHAIN_TOO_LONG: 'certificate not trusted (chain too long)',
  CERT_SIGNATURE_FAILURE: 'certificate not trusted (bad signature)',
  UNABLE_TO_DECRYPT_CERT_SIGNATURE: 'certificate not trusted (bad signature)',
  UNABLE_TO_DECODE_ISSUER_PUBLIC_KEY: 'certificate not trusted (unreadable issuer key)',
  CERT_REVOKED: 'certificate revoked',
  CERT_HAS_EXPIRED: 'certificate expired',
  CERT_NOT_YET_VALID: 'certificate not yet valid',
  ERROR_IN_CERT_NOT_BEFORE_FIELD: 'certificate not trusted (malformed validity dates)',
  ERROR_IN_CERT_NOT_AFTER_FIELD: 'certificate not trusted (malformed validity dates)',
  HOSTNAME_MISMATCH: 'name mismatch',
};

/** The one-line reason when `err` is a failed certificate check, else undefined. */
export function tlsVerificationReason(err: unknown): { reason: string; fingerprint?: string | undefined } | undefined {
  if (err instanceof PeerCertificateError) return { reason: err.reason, fingerprint: err.fingerprint };
  if (!(err instanceof Error)) return undefined;
  const { code, reason, cert } = err as Error & { code?: unknown; reason?: unknown; cert?: { fingerprint256?: string } };
  if (code === 'DFOS_TLS_CERTIFICATE') {
    // Our PeerCertificateError, copied by basic-ftp into "Client is closed because …".
    const m = /TLS certificate verification failed: (.*?)(?: \((?:control|data) socket\))?$/.exec(err.message);
    return { reason: m?.[1] ?? err.message };
  }
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') {
    return { reason: `name mismatch: ${typeof reason === 'string' ? reason : err.message}`, fingerprint: cert?.fingerprint256 };
  }
  if (typeof code === 'string' && Object.hasOwn(NOT_TRUSTED, code)) return { reason: NOT_TRUSTED[code]! };
  return undefined;
}
