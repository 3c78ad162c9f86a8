/**
 * The errors of `dfos/client`. Every failure of a DfosClient call is one of these (never a
 * bare basic-ftp or socket error): catch `DfosError` for all of them, or a subclass for one
 * kind. Each carries the FTP reply `code` (when the server sent one), the `command` that
 * failed, the remote `path` it concerned, and a message naming both plus the server's reason.
 */

/** What a DfosError knows about the failure. */
export interface DfosErrorDetails {
  /** The FTP reply code, when the failure is a server reply (e.g. 550). */
  code?: number | undefined;
  /** The FTP command that failed, as sent (`RETR /a.txt`); `PASS` is never shown. */
  command: string;
  /** The remote path the operation was about, if any. */
  path?: string | undefined;
  /** The server's reply text (all lines, joined with LF), when there is one. */
  reply?: string | undefined;
  /** The underlying error (basic-ftp, socket or local file system). */
  cause?: unknown;
}

/** Base class of every error thrown by DfosClient. */
export class DfosError extends Error {
  override name = 'DfosError';
  /** The FTP reply code, or undefined when no reply was involved (network, local file). */
  readonly code: number | undefined;
  /** The FTP command that failed (`STOR /reports/q1.csv`). */
  readonly command: string;
  /** The remote path concerned, if the operation had one. */
  readonly path: string | undefined;
  /** The server's reply text, if there was one. */
  readonly reply: string | undefined;

  constructor(message: string, details: DfosErrorDetails) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.code = details.code;
    this.command = details.command;
    this.path = details.path;
    this.reply = details.reply;
  }
}

/** The server refused the login (530): wrong user or password, or not allowed from here. */
export class AuthError extends DfosError {
  override name = 'AuthError';
}

/**
 * The remote path does not exist: a 550 whose text says so ("No such file or directory"),
 * or a 550 without a recognisable reason (vsftpd's "Failed to open file.") for a path that
 * a follow-up MLST/SIZE/MDTM/STAT shows is not there.
 */
export class NotFoundError extends DfosError {
  override name = 'NotFoundError';
}

/**
 * The server refused the operation on an existing path (550/553): permission denied, a
 * read-only account, a directory where a file was expected, a name that already exists.
 */
export class PermissionError extends DfosError {
  override name = 'PermissionError';
}

/** The server is out of space or over a quota (552, or 452 "insufficient storage"). */
export class QuotaError extends DfosError {
  override name = 'QuotaError';
}

/**
 * The connection failed or is gone: cannot connect, lost connection, timeout, the server
 * closing the session (421/425/426), or a call after close().
 */
export class ConnectionError extends DfosError {
  override name = 'ConnectionError';
}

/** The local side failed: a source file that cannot be read, a target that cannot be written, a stream error. */
export class LocalError extends DfosError {
  override name = 'LocalError';
}

/** Anything unexpected: an unknown reply code, a malformed reply, a refused resume, an unusable path. */
export class ProtocolError extends DfosError {
  override name = 'ProtocolError';
}

/**
 * The server does not implement what the call needs: `view()`/`preview()` (SITE VIEW, a DFOS
 * extension) against another FTP server, which answers 500/502/504 ("Unknown SITE command").
 * A ProtocolError, so code catching that keeps working; catch this class to tell "this
 * server cannot do it" from a malformed exchange.
 */
export class UnsupportedError extends ProtocolError {
  override name = 'UnsupportedError';
}

/**
 * The server's TLS certificate failed verification (FTPS): not trusted (self-signed, unknown
 * issuer, expired), issued for another name, or not the pinned `fingerprint`. Nothing was
 * sent after the handshake, not even the user name. An AuthError: the server could not
 * prove who it is, as a login refusal means we could not.
 */
export class TlsVerificationError extends AuthError {
  override name = 'TlsVerificationError';
  /** What failed, in one line: `certificate not trusted (self-signed)`, `fingerprint mismatch: got …, expected …`. */
  readonly reason: string;
  /** The SHA-256 fingerprint of the server's certificate (`AA:BB:…`), when it is known. */
  readonly fingerprint: string | undefined;

  constructor(message: string, details: DfosErrorDetails & { reason: string; fingerprint?: string | undefined }) {
    super(message, details);
    this.reason = details.reason;
    this.fingerprint = details.fingerprint;
  }
}
