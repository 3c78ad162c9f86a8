import { FTPError } from 'basic-ftp';
import {
  AuthError,
  ConnectionError,
  DfosError,
  LocalError,
  NotFoundError,
  PermissionError,
  ProtocolError,
  QuotaError,
  TlsVerificationError,
  type DfosErrorDetails,
} from './errors.js';
import { tlsVerificationReason } from './tls.js';

/** What a DfosClient call is doing, kept up to date so a failure can say exactly where it happened. */
export interface Operation {
  /** The call in words, as the message starts: `download`, `list`, `login as alice at host:21`. */
  action: string;
  /** The remote path the call is about (as the caller gave it). */
  path?: string | undefined;
  /** The FTP command in progress, as sent (`RETR a.txt`). */
  command: string;
  /** A failure of the local side (source, target, progress callback), recorded by our streams. */
  localError?: unknown;
  /** Appended to the message, e.g. what resume needs from the server. */
  hint?: string | undefined;
  /** Set once the call has failed: errors from cleaning up after it are not its cause. */
  settled?: boolean;
}

/** Records the first failure of the local side while the call is still running. */
export function recordLocalError(op: Operation, err: unknown): void {
  if (!op.settled) op.localError ??= err;
}

/**
 * 550 texts that say the path does not exist: DFOS, pyftpdlib and most servers ("No such file
 * or directory"), IIS ("The system cannot find the file specified"), others ("File not found").
 */
const NOT_FOUND = /no such (file|directory|path)|not found|does(n't| not) exist|cannot find the (file|path)|can't find/i;

/**
 * 550 texts that give a reason other than a missing path: DFOS's own refusals (permission,
 * read-only account, exists, is / is not a directory, not a regular file, not empty, the home
 * directory, symbolic-link loops) and the same reasons in other servers' words.
 */
const REFUSED =
  /denied|not permitted|not allowed|forbidden|read-only|(already|file) exists|is a directory|not a directory|not a (regular|plain) file|not empty|home directory|symbolic link/i;

/**
 * What a 550 reply's text says: the path is missing, the operation was refused for a named
 * reason, or neither (vsftpd: "Failed to open file.", "Delete operation failed."; pyftpdlib:
 * "/a is not retrievable."), which needs a look at the path to decide.
 */
export function classify550(text: string): 'not-found' | 'refused' | 'unknown' {
  if (NOT_FOUND.test(text)) return 'not-found';
  if (REFUSED.test(text)) return 'refused';
  return 'unknown';
}

/** Socket error codes and basic-ftp messages that mean the connection failed or is gone. */
const CONNECTION_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EADDRNOTAVAIL',
  'ERR_SOCKET_CLOSED',
  'ERR_STREAM_PREMATURE_CLOSE',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);
const CONNECTION_MESSAGE = /timeout|closed|FIN packet|socket|connection|ECONN|EPIPE|TLS|certificate/i;

function oneLine(text: string): string {
  return text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter(Boolean)
    .join(' ');
}

function describe(op: Operation, reason: string): string {
  const what = op.path === undefined ? op.action : `${op.action} ${op.path}`;
  const hint = op.hint ? `; ${op.hint}` : '';
  // "connect to host:port failed: connect ECONNREFUSED …" needs no "(connect)" after it.
  const command = op.command.startsWith('connect') ? '' : ` (${op.command})`;
  return `${what} failed: ${oneLine(reason)}${command}${hint}`;
}

/** The error class for an FTP reply code (and its text, which tells a missing path from a refusal). */
function classForReply(code: number, text: string): typeof DfosError {
  if (code === 530) return AuthError;
  // An unknown reason stays a PermissionError here; DfosClient then looks at the path (see classify550).
  if (code === 550) return classify550(text) === 'not-found' ? NotFoundError : PermissionError;
  // pyftpdlib answers MLSD of a missing directory with "501 No such directory.".
  if (code === 501 && NOT_FOUND.test(text)) return NotFoundError;
  if (code === 553) return PermissionError;
  if (code === 552 || code === 452) return QuotaError;
  if (code === 421 || code === 425 || code === 426) return ConnectionError;
  return ProtocolError;
}

/**
 * Turns anything a basic-ftp call (or our own stream handling) threw into the matching
 * DfosError: server replies by code, socket failures and timeouts into ConnectionError,
 * local stream/file failures into LocalError, the rest into ProtocolError.
 */
export function toDfosError(err: unknown, op: Operation): DfosError {
  if (err instanceof DfosError) return err;
  const details: DfosErrorDetails = { command: op.command, path: op.path, cause: err };
  if (op.localError !== undefined) {
    const local = op.localError;
    const reason = local instanceof Error ? local.message : String(local);
    return new LocalError(describe(op, `local side: ${reason}`), { ...details, cause: local });
  }
  const tls = tlsVerificationReason(err);
  if (tls !== undefined) {
    return new TlsVerificationError(describe(op, `TLS certificate verification failed: ${tls.reason}`), { ...details, ...tls });
  }
  if (err instanceof FTPError) {
    const Class = classForReply(err.code, err.message);
    return new Class(describe(op, err.message), { ...details, code: err.code, reply: err.message });
  }
  const message = err instanceof Error ? err.message : String(err);
  const errno = err instanceof Error ? (err as NodeJS.ErrnoException).code : undefined;
  if ((typeof errno === 'string' && CONNECTION_CODES.has(errno)) || CONNECTION_MESSAGE.test(message)) {
    return new ConnectionError(describe(op, message), details);
  }
  return new ProtocolError(describe(op, message), details);
}

/** A ConnectionError for a call made after close(). */
export function closedError(op: Operation): ConnectionError {
  return new ConnectionError(describe(op, 'the client is closed (close() was called)'), {
    command: op.command,
    path: op.path,
  });
}
