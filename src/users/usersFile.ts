import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { open, realpath, rename, stat, unlink, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import lockfile from 'proper-lockfile';
import { isPasswordHash } from './passwordHash.js';

/**
 * The users.json format:
 *
 *     { "users": { "demo": { "password": "$scrypt$ln=14,...", "readOnly": false, "localOnly": true } } }
 *
 * `readOnly` and `localOnly` are optional (default false). Unknown keys, at the top level and
 * inside entries, are kept as they are when the file is rewritten.
 */

/** One user as stored in users.json, with defaults applied. */
export interface UserEntry {
  /** A DFOS scrypt hash (see passwordHash.ts). */
  password: string;
  /** May download and list, but not upload, delete, rename or create directories. */
  readOnly: boolean;
  /** May log in only from the loopback interface. */
  localOnly: boolean;
}

/** What {@link readUsersFile} returns: the validated users and the text they came from. */
export interface UsersFileContents {
  users: Map<string, UserEntry>;
  text: string;
}

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

/** Valid user names: they become directory names, so no leading dot and no separators. */
export const USER_NAME_RE = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,63}$/;
/** How valid names look, for messages. */
export const USER_NAME_RULE = '1-64 letters, digits, "_", "." or "-", not starting with "." or "-"';

/** Returns null for a valid user name, otherwise why it is not one. */
export function userNameProblem(name: string): string | null {
  if (!USER_NAME_RE.test(name)) return `must be ${USER_NAME_RULE}`;
  if (name === '__proto__') return 'is reserved';
  return null;
}

/** Largest users file accepted (startup, reloads and `dfos users` alike). */
const MAX_FILE_BYTES = 16 * 1024 * 1024;

/** Quotes a path for the shell commands suggested in messages, only when needed. */
export function shellQuote(s: string): string {
  return /^[A-Za-z0-9_/.,:@%+=-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

const passwdFix = (name: string, file: string) => `set it with: dfos users passwd ${name} --users ${shellQuote(file)}`;

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

const flag = (key: string) =>
  z
    .boolean({ error: (iss) => `has "${key}": ${JSON.stringify(iss.input)}, which must be true or false` })
    .optional();

/** Schema of one user entry. Messages are fragments that follow `user "NAME" `. */
const userEntrySchema = z.looseObject(
  {
    password: z
      .string({
        error: (iss) => (iss.input === undefined ? 'has no password' : 'has a password that is not a DFOS hash'),
      })
      .refine(isPasswordHash, 'has a password that is not a DFOS hash'),
    readOnly: flag('readOnly'),
    localOnly: flag('localOnly'),
  },
  { error: 'must be an object like {"password": "$scrypt$...", "readOnly": false, "localOnly": false}' },
);

/** Schema of the whole file; entries are checked one by one so messages can name the user. */
const usersFileSchema = z.looseObject(
  {
    users: z.custom<Record<string, unknown>>(isPlainObject),
  },
  { error: 'must be a JSON object' },
);

const shapeHint = '{"users": {"NAME": {"password": "$scrypt$..."}}}';

/** Finds where a JSON text stops being valid, for messages: offset and a short reason. */
export function locateJsonError(text: string): { offset: number; reason: string } {
  let i = 0;
  class Stop extends Error {
    constructor(readonly at: number, readonly reason: string) {
      super(reason);
    }
  }
  const fail = (reason?: string): never => {
    if (i >= text.length) throw new Stop(i, 'unexpected end of file');
    throw new Stop(i, reason ?? `unexpected ${JSON.stringify(text[i])}`);
  };
  const ws = () => {
    while (i < text.length && ' \t\n\r'.includes(text[i]!)) i++;
  };
  const lit = (word: string) => {
    for (const ch of word) {
      if (text[i] !== ch) fail();
      i++;
    }
  };
  const str = () => {
    i++; // opening quote
    for (;;) {
      if (i >= text.length) fail();
      const c = text.charCodeAt(i);
      if (c === 0x22) return void i++;
      if (c < 0x20) fail('control character inside a string (a missing closing quote?)');
      if (c === 0x5c) {
        i++;
        const e = text[i];
        if (e === 'u') {
          if (!/^[0-9a-fA-F]{4}$/.test(text.slice(i + 1, i + 5))) fail('bad \\u escape');
          i += 5;
        } else if (e !== undefined && '"\\/bfnrt'.includes(e)) i++;
        else fail('bad escape in a string');
      } else i++;
    }
  };
  const num = () => {
    const m = /^-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/.exec(text.slice(i));
    if (!m || m[0] === '-' || m[0] === '') fail();
    i += m![0].length;
  };
  const value = (): void => {
    ws();
    const c = text[i];
    if (c === '{') {
      i++;
      ws();
      if (text[i] === '}') return void i++;
      for (;;) {
        ws();
        if (text[i] !== '"') {
          fail(
            text[i] === '}'
              ? 'trailing comma before "}"'
              : text[i] === "'"
                ? 'single quotes; JSON needs double quotes'
                : 'expected a double-quoted property name',
          );
        }
        str();
        ws();
        if (text[i] !== ':') fail('expected ":" after a property name');
        i++;
        value();
        ws();
        if (text[i] === ',') {
          i++;
          continue;
        }
        if (text[i] === '}') return void i++;
        fail('expected "," or "}" (a missing comma?)');
      }
    } else if (c === '[') {
      i++;
      ws();
      if (text[i] === ']') return void i++;
      for (;;) {
        value();
        ws();
        if (text[i] === ',') {
          i++;
          ws();
          if (text[i] === ']') fail('trailing comma before "]"');
          continue;
        }
        if (text[i] === ']') return void i++;
        fail('expected "," or "]" (a missing comma?)');
      }
    } else if (c === '"') str();
    else if (c === 't') lit('true');
    else if (c === 'f') lit('false');
    else if (c === 'n') lit('null');
    else if (c === '-' || (c !== undefined && c >= '0' && c <= '9')) num();
    else fail(c === "'" ? 'single quotes; JSON needs double quotes' : undefined);
  };
  try {
    value();
    ws();
    if (i < text.length) fail('unexpected text after the end of the JSON value');
    return { offset: text.length, reason: 'invalid JSON' };
  } catch (e) {
    if (e instanceof Stop) return { offset: e.at, reason: e.reason };
    throw e;
  }
}

function lineAndColumn(text: string, offset: number): { line: number; column: number } {
  const before = text.slice(0, offset);
  const line = before.split('\n').length;
  const column = offset - (before.lastIndexOf('\n') + 1) + 1;
  return { line, column };
}

function parseJson(text: string, file: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    const { offset, reason } = locateJsonError(text);
    const { line, column } = lineAndColumn(text, offset);
    throw new UsersFileError(
      `${file}: not valid JSON at line ${line}, column ${column} (${reason}); correct it there — the file should look like ${shapeHint}`,
      'syntax',
      file,
    );
  }
}

/** Checks the top level and returns the raw `users` object (entries not yet validated). */
function rawUsers(doc: unknown, file: string): Record<string, unknown> {
  const r = usersFileSchema.safeParse(doc);
  if (!r.success) {
    throw new UsersFileError(
      `${file}: expected ${shapeHint} at the top level; fix the file, or move it aside and start again with: dfos users add NAME --users ${shellQuote(file)}`,
      'invalid',
      file,
    );
  }
  return r.data.users;
}

/**
 * Parses and validates users.json text. `file` is used in messages (as the caller named it).
 * Throws {@link UsersFileError} naming the first bad user and how to fix it.
 */
export function parseUsersText(text: string, file: string): Map<string, UserEntry> {
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  if (text.trim() === '') {
    throw new UsersFileError(
      `${file}: the file is empty; add a user with: dfos users add NAME --users ${shellQuote(file)}`,
      'invalid',
      file,
    );
  }
  const users = rawUsers(parseJson(text, file), file);
  const problems: string[] = [];
  const result = new Map<string, UserEntry>();
  const lowerSeen = new Map<string, string>();
  for (const name of Object.keys(users)) {
    const nameProblem = userNameProblem(name);
    if (nameProblem) {
      problems.push(
        `${file}: user name ${JSON.stringify(name)} is not allowed (it ${nameProblem}); rename it in ${shellQuote(file)}`,
      );
      continue;
    }
    const clash = lowerSeen.get(name.toLowerCase());
    if (clash !== undefined) {
      problems.push(
        `${file}: users "${clash}" and "${name}" differ only in case, so their storage folders could clash; remove one with: dfos users remove ${name} --users ${shellQuote(file)}`,
      );
      continue;
    }
    lowerSeen.set(name.toLowerCase(), name);
    const r = userEntrySchema.safeParse(users[name]);
    if (!r.success) {
      const issue = r.error.issues[0]!;
      const field = issue.path[0];
      const fix =
        field === undefined || field === 'password' ? passwdFix(name, file) : `fix it in ${shellQuote(file)}`;
      problems.push(`${file}: user "${name}" ${issue.message}; ${fix}`);
      continue;
    }
    result.set(name, {
      password: r.data.password,
      readOnly: r.data.readOnly ?? false,
      localOnly: r.data.localOnly ?? false,
    });
  }
  if (problems.length > 0) {
    const more = problems.length - 1;
    const suffix = more > 0 ? ` (and ${more} more problem${more === 1 ? '' : 's'} in the file)` : '';
    throw new UsersFileError(problems[0]! + suffix, 'invalid', file);
  }
  return result;
}

function ioReason(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  if (e?.code === 'EACCES' || e?.code === 'EPERM') return 'permission denied';
  return e?.code ? `${e.code}: ${e.message}` : String(err);
}

/**
 * Reads the users file's text, or null when it does not exist; throws UsersFileError
 * otherwise. The one read path for startup, reloads (SIGHUP and the watcher) and
 * `dfos users`, so every one enforces the same limits: the size is checked with fstat on
 * the opened handle (the file checked is the file read), and never more than the limit
 * plus one byte is read, so a file that grows after the check is refused too.
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

/** The file a path names, following symlinks; the absolute path when it does not exist yet. */
async function resolveTarget(file: string): Promise<string> {
  try {
    return await realpath(file);
  } catch {
    return path.resolve(file);
  }
}

/**
 * Writes `data` to `file` atomically: a temporary file in the same directory, fsync, rename,
 * then fsync of the directory. A new file gets mode 0o600; an existing one keeps its mode
 * (and, when permitted, its owner). A symlink is followed, so the link itself stays.
 */
export async function writeFileAtomic(file: string, data: string): Promise<void> {
  const target = await resolveTarget(file);
  const existing = await stat(target).catch(() => null);
  const dir = path.dirname(target);
  const tmp = path.join(dir, `.${path.basename(target)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  let created = false;
  try {
    const fh = await open(tmp, 'wx', 0o600);
    created = true;
    try {
      await fh.writeFile(data, 'utf8');
      if (existing) {
        await fh.chmod(existing.mode & 0o7777);
        if (existing.uid !== process.getuid?.() || existing.gid !== process.getgid?.()) {
          await fh.chown(existing.uid, existing.gid).catch(() => undefined);
        }
      }
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, target);
    created = false;
  } finally {
    if (created) await unlink(tmp).catch(() => undefined);
  }
  // Make the rename itself durable; not every platform can fsync a directory.
  try {
    const dh = await open(dir, 'r');
    try {
      await dh.sync();
    } finally {
      await dh.close();
    }
  } catch {
    /* best effort */
  }
}

/** The parsed, unvalidated document that {@link updateUsersFile} hands to its callback. */
export interface RawUsersDocument {
  users: Record<string, unknown>;
  [key: string]: unknown;
}

/**
 * Reads users.json, lets `update` change the raw document, and writes it back atomically.
 * Only the top level is checked, and entries the callback does not touch are written back
 * exactly as they were (including unknown keys and entries that would not validate, so a
 * broken entry can be repaired with `dfos users passwd`). With `create`, a missing or empty
 * file starts as `{"users": {}}`.
 */
export async function updateUsersFile<T>(
  file: string,
  update: (doc: RawUsersDocument) => T,
  options: { create?: boolean } = {},
): Promise<T> {
  const release = await lockUsersFile(file);
  try {
    return await updateLocked(file, update, options);
  } finally {
    await release().catch(() => undefined);
  }
}

/**
 * Takes the users file's edit lock (a `<file>.lock` directory, via proper-lockfile), so
 * two `dfos users` commands run at once cannot lose each other's change. Waits up to
 * about 10 s for another editor; a lock left by a crashed process is taken over after 10 s.
 */
async function lockUsersFile(file: string): Promise<() => Promise<void>> {
  const target = await resolveTarget(file);
  try {
    return await lockfile.lock(target, {
      realpath: false,
      stale: 10_000,
      retries: { retries: 60, factor: 1.2, minTimeout: 20, maxTimeout: 500, randomize: true },
    });
  } catch (err) {
    const busy = (err as NodeJS.ErrnoException).code === 'ELOCKED';
    throw new UsersFileError(
      busy
        ? `${file}: another \`dfos users\` command is editing it (lock ${target}.lock); try again, or remove that directory if no such command runs`
        : `${file}: cannot lock it for editing (${ioReason(err)}); check the permissions of its directory`,
      busy ? 'locked' : 'write-failed',
      file,
    );
  }
}

async function updateLocked<T>(file: string, update: (doc: RawUsersDocument) => T, options: { create?: boolean }): Promise<T> {
  const text = await readUsersText(file);
  let doc: RawUsersDocument;
  if (text === null || text.trim() === '') {
    if (text === null && !options.create) throw missingUsersFile(file);
    doc = { users: {} };
  } else {
    const parsed = parseJson(text.charCodeAt(0) === 0xfeff ? text.slice(1) : text, file);
    rawUsers(parsed, file);
    doc = parsed as RawUsersDocument;
  }
  const result = update(doc);
  try {
    await writeFileAtomic(file, JSON.stringify(doc, null, 2) + '\n');
  } catch (err) {
    throw new UsersFileError(
      `${file}: cannot write it (${ioReason(err)}); check the permissions of the file and its directory`,
      'write-failed',
      file,
    );
  }
  return result;
}

function checkName(name: string, file: string): void {
  const problem = userNameProblem(name);
  if (problem) {
    throw new UsersFileError(`user name ${JSON.stringify(name)} is not allowed: it ${problem}`, 'bad-name', file);
  }
}

function noSuchUser(name: string, file: string): UsersFileError {
  return new UsersFileError(
    `${file}: there is no user "${name}"; see the users with: dfos users list --users ${shellQuote(file)}`,
    'no-such-user',
    file,
  );
}

/** Whether a user exists in the file (by exact name), without validating anything else. */
export async function userExists(file: string, name: string): Promise<boolean> {
  const text = await readUsersText(file);
  if (text === null || text.trim() === '') return false;
  const users = rawUsers(parseJson(text.charCodeAt(0) === 0xfeff ? text.slice(1) : text, file), file);
  return Object.hasOwn(users, name);
}

/**
 * Adds a user with an already hashed password; creates the file if needed. Fails if the name
 * is taken (also by a name differing only in case).
 */
export async function addUser(
  file: string,
  name: string,
  passwordHash: string,
  flags: { readOnly?: boolean; localOnly?: boolean } = {},
): Promise<void> {
  checkName(name, file);
  if (!isPasswordHash(passwordHash)) throw new TypeError('addUser needs a hashed password');
  await updateUsersFile(
    file,
    (doc) => {
      const taken = Object.keys(doc.users).find((k) => k.toLowerCase() === name.toLowerCase());
      if (taken !== undefined) {
        throw new UsersFileError(
          taken === name
            ? `${file}: user "${name}" already exists; change the password with: dfos users passwd ${name} --users ${shellQuote(file)}`
            : `${file}: user "${taken}" already exists and differs from "${name}" only in case; pick another name`,
          'exists',
          file,
        );
      }
      doc.users[name] = { password: passwordHash, readOnly: flags.readOnly ?? false, localOnly: flags.localOnly ?? false };
    },
    { create: true },
  );
}

/** Replaces a user's password hash, keeping the entry's other keys. Fails if the user is missing. */
export async function setUserPassword(file: string, name: string, passwordHash: string): Promise<void> {
  checkName(name, file);
  if (!isPasswordHash(passwordHash)) throw new TypeError('setUserPassword needs a hashed password');
  await updateUsersFile(file, (doc) => {
    if (!Object.hasOwn(doc.users, name)) throw noSuchUser(name, file);
    const entry = doc.users[name];
    if (isPlainObject(entry)) entry.password = passwordHash;
    else doc.users[name] = { password: passwordHash };
  });
}

/** Removes a user (their files in storage are not touched). Fails if the user is missing. */
export async function removeUser(file: string, name: string): Promise<void> {
  await updateUsersFile(file, (doc) => {
    if (!Object.hasOwn(doc.users, name)) throw noSuchUser(name, file);
    delete doc.users[name];
  });
}
