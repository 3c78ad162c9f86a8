import { createHash, timingSafeEqual } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';

/** Shortest token accepted: anything shorter can be guessed by a patient scraper. */
export const MIN_TOKEN_LENGTH = 16;

/** Largest token file read (a token is one line; a bigger file is a wrong path). */
const MAX_FILE_BYTES = 4096;

/**
 * Reads the admin bearer token from `file` (`--admin-token-file`): its content without
 * surrounding whitespace (so the trailing newline of `echo … > FILE` is not part of it).
 * Refuses, with a one-line error naming the flag and the fix: a missing or unreadable
 * file, one every local user can read (the token is a password), an empty one, a token
 * shorter than 16 characters, or one with characters a header cannot carry.
 */
export async function readAdminToken(file: string): Promise<string> {
  const problem = (what: string) => new Error(`admin token file ${file}: ${what} (--admin-token-file)`);
  let info;
  let text: string;
  try {
    info = await stat(file);
    text = info.isFile() && info.size <= MAX_FILE_BYTES ? await readFile(file, 'utf8') : '';
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    throw problem(`cannot be read (${code}); create it, e.g. openssl rand -hex 32 > ${file}`);
  }
  if (!info.isFile()) throw problem('not a regular file; give the path of a file holding the token');
  if ((info.mode & 0o004) !== 0) throw problem(`readable by every local user; restrict it with chmod 600 ${file}`);
  if (info.size > MAX_FILE_BYTES) throw problem(`larger than ${MAX_FILE_BYTES} bytes; it must hold only the token`);
  const token = text.trim();
  if (token === '') throw problem(`empty; put a token in it, e.g. openssl rand -hex 32 > ${file}`);
  if (!/^[\x21-\x7e]+$/.test(token)) throw problem('the token must be one line of printable ASCII without spaces');
  if (token.length < MIN_TOKEN_LENGTH) throw problem(`the token must be at least ${MIN_TOKEN_LENGTH} characters, e.g. openssl rand -hex 32 > ${file}`);
  return token;
}

/**
 * True when an `Authorization` header carries `Bearer <token>`. The comparison takes the
 * same time whatever the header holds (both sides are hashed to the same length first), so
 * timing tells an attacker nothing about the token.
 */
export function bearerMatches(header: string | undefined, token: string): boolean {
  const m = /^Bearer +(\S+) *$/i.exec(header ?? '');
  const given = createHash('sha256').update(m?.[1] ?? '').digest();
  const expected = createHash('sha256').update(token).digest();
  return timingSafeEqual(given, expected) && m !== null;
}
