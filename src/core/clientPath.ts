import { posix } from 'node:path';
import { isReservedName } from '../storage/reservedNames.js';
import { StorageError } from '../storage/StorageBackend.js';

/** C0 control characters and DEL: never part of a name a client may create or address. */
const CONTROL_CHARACTER = /[\x00-\x1f\x7f]/;

/**
 * Turns client input into a normalised absolute client path, relative to `cwd`: `..`
 * clamps at `/`, backslashes are separators. These rules are the same for every protocol
 * and backend, so a backend only ever sees paths like `/docs/a.txt`. Refuses a missing
 * argument (invalid-argument), and NUL or other control characters or a reserved name in
 * any component (invalid-name), so no reply or listing can carry a raw CR or LF.
 */
export function resolveClientPath(cwd: string, input: string | null | undefined): string {
  if (input === undefined || input === null || input === '') throw new StorageError('invalid-argument', 'A path argument is required');
  if (input.includes('\0')) throw new StorageError('invalid-name', 'File name not allowed: contains a NUL byte');
  if (CONTROL_CHARACTER.test(input)) throw new StorageError('invalid-name', 'File name not allowed: contains a control character');
  const path = posix.resolve('/', cwd, input.replace(/\\/g, '/'));
  if (path.split('/').some(isReservedName)) throw new StorageError('invalid-name', 'File name not allowed: reserved name');
  return path;
}
