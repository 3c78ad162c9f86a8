/**
 * The one error type of the users file (reading, validating and editing users.json), and the
 * helpers its messages share. Every message is a single operator-facing line that says what
 * to do next, often with a ready-to-paste `dfos users` command.
 */

/** What went wrong, for callers that react differently (the CLI maps all of them to exit 1). */
export type UsersFileErrorCode =
  | 'missing'
  | 'unreadable'
  | 'syntax'
  | 'invalid'
  | 'exists'
  | 'no-such-user'
  | 'bad-name'
  | 'locked'
  | 'write-failed';

/** A users.json problem. Its message is one operator-facing line that says what to do. */
export class UsersFileError extends Error {
  override readonly name = 'UsersFileError';
  constructor(
    message: string,
    readonly code: UsersFileErrorCode,
    /** The users file as the caller named it. */
    readonly file: string,
  ) {
    super(message.replace(/\s*\n\s*/g, ' '));
  }
}

/** Quotes a path for the shell commands suggested in messages, only when needed. */
export function shellQuote(s: string): string {
  return /^[A-Za-z0-9_/.,:@%+=-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

/** A short reason for a failed file system call, for messages ("permission denied" or "CODE: message"). */
export function ioReason(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  if (e?.code === 'EACCES' || e?.code === 'EPERM') return 'permission denied';
  return e?.code ? `${e.code}: ${e.message}` : String(err);
}
