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
  type DfosErrorDetails,
} from './errors.js';

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

/** DFOS (and most servers) answer 550 with this text for a path that does not exist. */
const NOT_FOUND = /no such file or directory|not found|does not exist/i;

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
  if (code === 550) return NOT_FOUND.test(text) ? NotFoundError : PermissionError;
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
