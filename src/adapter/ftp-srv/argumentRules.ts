import type { FtpCommand } from './internals.js';

/** Verbs that take no argument: a stray one is refused (501) instead of ignored. */
const NO_ARGUMENT = new Set(['ABOR', 'CDUP', 'FEAT', 'NOOP', 'PASV', 'PWD', 'QUIT', 'SYST', 'XCUP', 'XPWD']);
/** Verbs whose argument is required (RFC 959 gives them no default). */
const ARGUMENT_REQUIRED: Record<string, string> = {
  MODE: 'MODE needs a mode: MODE S',
  STRU: 'STRU needs a structure: STRU F',
  ALLO: 'ALLO needs a byte count',
};

/**
 * The argument rules checked before any handler runs, so that every verb answers a
 * malformed call the same way (501) instead of executing it: ftp-srv ran `NOOP x`,
 * `QUIT now` or `PWD /` as if the argument were not there, and answered `MODE` without an
 * argument with 504 and `ALLO` without one with 202. Returns the 501 text, or undefined.
 */
export function argumentProblem(command: FtpCommand): string | undefined {
  if (NO_ARGUMENT.has(command.directive) && command.arg !== null && command.arg.trim() !== '') {
    return `${command.directive} takes no argument`;
  }
  if (command.directive in ARGUMENT_REQUIRED && (command.arg === null || command.arg.trim() === '')) {
    return ARGUMENT_REQUIRED[command.directive];
  }
  return undefined;
}

/** A REST offset: decimal digits only (`REST 10.1`, `10abc`, `1e3` are refused), at most 2^53 − 1. */
export function parseRestOffset(arg: string | null): number | undefined {
  if (arg === null || !/^\s*\d{1,16}\s*$/.test(arg)) return undefined;
  const value = Number(arg.trim());
  return Number.isSafeInteger(value) ? value : undefined;
}
