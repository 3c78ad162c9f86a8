import { constants } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { ioReason, shellQuote, UsersFileError } from './usersFileError.js';
import { parseUsersText, type UserEntry } from './usersFormat.js';

/**
 * Reading users.json from disk. There is one read path for startup, reloads (SIGHUP and the
 * watcher) and `dfos users`, so every one of them enforces the same limits and gives the
 * same messages.
 */

/** Largest users file accepted (startup, reloads and `dfos users` alike). */
const MAX_FILE_BYTES = 16 * 1024 * 1024;

/** What {@link readUsersFile} returns: the validated users and the text they came from. */
export interface UsersFileContents {
  users: Map<string, UserEntry>;
  text: string;
}

/**
 * Reads the users file's text, or null when it does not exist; throws UsersFileError
 * otherwise. The size is checked with fstat on the opened handle (the file checked is the
 * file read), and never more than the limit plus one byte is read, so a file that grows
 * after the check is refused too.
 */
export async function readUsersText(file: string): Promise<string | null> {
  let handle: FileHandle;
  try {
    // O_NONBLOCK: a FIFO put in the file's place must not hang the open.
    handle = await open(file, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw unreadable(file, err);
  }
  try {
    const st = await handle.stat();
    if (st.isDirectory()) {
      throw new UsersFileError(`${file} is a directory; point --users at a JSON file`, 'unreadable', file);
    }
    if (!st.isFile()) throw new UsersFileError(`${file} is not a regular file; point --users at a JSON file`, 'unreadable', file);
    if (st.size > MAX_FILE_BYTES) throw tooLarge(file);
    const limit = MAX_FILE_BYTES + 1; // one byte past the limit tells a file that grew
    let buffer = Buffer.alloc(Math.min(st.size + 1, limit));
    let length = 0;
    for (;;) {
      if (length === buffer.length) {
        if (length >= limit) throw tooLarge(file);
        const bigger = Buffer.alloc(Math.min(buffer.length * 2, limit));
        buffer.copy(bigger, 0, 0, length);
        buffer = bigger;
      }
      const { bytesRead } = await handle.read(buffer, length, buffer.length - length, length);
      if (bytesRead === 0) break;
      length += bytesRead;
    }
    return buffer.toString('utf8', 0, length);
  } catch (err) {
    if (err instanceof UsersFileError) throw err;
    throw unreadable(file, err);
  } finally {
    await handle.close().catch(() => undefined);
  }
}

function tooLarge(file: string): UsersFileError {
  return new UsersFileError(
    `${file}: the file is larger than the 16 MiB limit for a users file; point --users at the right file or remove what does not belong in it`,
    'unreadable',
    file,
  );
}

function unreadable(file: string, err: unknown): UsersFileError {
  return new UsersFileError(
    `${file}: cannot read it (${ioReason(err)}); check its permissions and the user DFOS runs as`,
    'unreadable',
    file,
  );
}

/** The error for a users file that does not exist, with the command that creates it. */
export function missingUsersFile(file: string): UsersFileError {
  return new UsersFileError(
    `${file} does not exist; create it with: dfos users add NAME --users ${shellQuote(file)}`,
    'missing',
    file,
  );
}

/** Reads and validates a users file. Throws {@link UsersFileError}. */
export async function readUsersFile(file: string): Promise<UsersFileContents> {
  const text = await readUsersText(file);
  if (text === null) throw missingUsersFile(file);
  return { users: parseUsersText(text, file), text };
}
