import type { AuditAction } from '../../logging/AuditLog.js';
import { StorageError, type StorageErrorKind } from '../../storage/StorageBackend.js';

/**
 * A refusal decided by the FTP layer itself (command sequence, data connection, argument
 * syntax), with its reply code. Client-safe text only.
 */
export class ReplyError extends Error {
  /** Lets the core pass it through unchanged. */
  readonly protocolError = true;

  constructor(
    readonly code: number,
    message: string,
  ) {
    super(message);
    this.name = 'ReplyError';
  }
}

/** The reply code for each kind of storage failure (RFC 959 §4.2; 553 for names, 452 for space, 552 for a quota). */
const KIND_CODES: Record<StorageErrorKind, number> = {
  'not-found': 550,
  denied: 550,
  exists: 550,
  'not-a-directory': 550,
  'is-a-directory': 550,
  'not-a-file': 550,
  'not-empty': 550,
  'invalid-name': 553,
  'invalid-target': 553,
  'invalid-argument': 501,
  'bad-offset': 554,
  'no-space': 452,
  'quota-exceeded': 552,
  busy: 450,
  unsupported: 502,
  unavailable: 451,
  io: 451,
};

/** Reply code and client-safe text for a failure; never exposes server paths. */
export function describeFailure(err: unknown, fallbackCode = 451): { code: number; message: string } {
  if (err instanceof ReplyError) return { code: err.code, message: err.message };
  if (err instanceof StorageError) return { code: KIND_CODES[err.kind], message: err.message };
  return { code: fallbackCode, message: 'Requested action aborted: local error in processing' };
}

/** The success code of each audited action. */
const SUCCESS_CODES: Record<AuditAction, number> = {
  login: 230,
  logout: 221,
  upload: 226,
  download: 226,
  delete: 250,
  rmdir: 250,
  mkdir: 257,
  rename: 250,
  view: 200,
  chmod: 200,
  mtime: 213,
  // Not session actions: what a connection from the address then gets (refused, greeted).
  ban: 421,
  unban: 220,
};

/**
 * How the FTP layer describes an outcome for the audit record: the reply code and text
 * the client got. `transferFailure` describes a failure the data connection caused.
 */
export function describeOutcome(action: AuditAction, error: unknown, transferFailure?: (err: unknown) => { code: number; message: string }): { code?: number; reason?: string } {
  if (error === undefined) return { code: SUCCESS_CODES[action] };
  if (action === 'login') return { code: error instanceof StorageError && error.kind === 'unavailable' ? 421 : 530, reason: error instanceof Error ? error.message : String(error) };
  const failure = transferFailure && !(error instanceof StorageError) && !(error instanceof ReplyError) ? transferFailure(error) : describeFailure(error, action === 'upload' || action === 'download' ? 451 : 550);
  return { code: failure.code, reason: failure.message };
}
