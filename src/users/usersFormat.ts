import { z } from 'zod';
import { lineAndColumn, locateJsonError } from './jsonErrorLocation.js';
import { isPasswordHash } from './passwordHash.js';
import { shellQuote, UsersFileError } from './usersFileError.js';

/**
 * The users.json format: its schema, parsing with operator-facing messages, and serialising.
 *
 *     { "users": { "demo": { "password": "$scrypt$ln=14,...", "readOnly": false, "localOnly": true } } }
 *
 * `readOnly`, `localOnly` and `requireTls` are optional (default false). Unknown keys, at the top level and
 * inside entries, are kept as they are when the file is rewritten.
 *
 * Two views of a file exist: {@link parseUsersText} validates every entry (what the server
 * loads), while {@link parseRawUsersDocument} checks only the top level (what `dfos users`
 * edits, so that a broken entry can still be repaired).
 */

/** One user as stored in users.json, with defaults applied. */
export interface UserEntry {
  /** A DFOS scrypt hash (see passwordHash.ts). */
  password: string;
  /** May download and list, but not upload, delete, rename or create directories. */
  readOnly: boolean;
  /** May log in only from the loopback interface. */
  localOnly: boolean;
  /** May log in only over TLS (AUTH TLS or the implicit FTPS port), whatever `--tls` says. */
  requireTls: boolean;
  /** Sessions this user may have open at once (undefined: no per-user limit). */
  maxSessions?: number;
  /** Bytes this user's files may take in total (undefined: no quota). */
  quotaBytes?: number;
  /** Files this user may keep (undefined: no limit). */
  quotaFiles?: number;
  /** Largest single file this user may upload, in bytes (undefined: no limit). */
  maxFileSize?: number;
  /** Upload rate of all this user's sessions together, bytes/s (undefined: no limit). */
  rateUp?: number;
  /** Download rate (transfers, listings, previews) of all this user's sessions together, bytes/s. */
  rateDown?: number;
}

/** The optional numeric limits of a user (each a whole number of 1 or more when present). */
export const USER_LIMIT_KEYS = ['maxSessions', 'quotaBytes', 'quotaFiles', 'maxFileSize', 'rateUp', 'rateDown'] as const;
export type UserLimitKey = (typeof USER_LIMIT_KEYS)[number];

/** The parsed, unvalidated document that `dfos users` edits (see userEdits.ts). */
export interface RawUsersDocument {
  users: Record<string, unknown>;
  [key: string]: unknown;
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

/** Whether a JSON value is an object (not null, not an array). */
export function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

const passwdFix = (name: string, file: string) => `set it with: dfos users passwd ${name} --users ${shellQuote(file)}`;

const flag = (key: string) =>
  z
    .boolean({ error: (iss) => `has "${key}": ${JSON.stringify(iss.input)}, which must be true or false` })
    .optional();

/** An optional limit: a whole number of 1 or more (absent: no limit). */
const limit = (key: UserLimitKey, unit?: string) => {
  const message = `has a ${key} that is not a whole number of 1 or more${unit ? ` (${unit})` : ''}`;
  return z.number({ error: message }).int(message).min(1, message).max(Number.MAX_SAFE_INTEGER, message).optional();
};

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
    requireTls: flag('requireTls'),
    maxSessions: limit('maxSessions'),
    quotaBytes: limit('quotaBytes', 'bytes'),
    quotaFiles: limit('quotaFiles'),
    maxFileSize: limit('maxFileSize', 'bytes'),
    rateUp: limit('rateUp', 'bytes per second'),
    rateDown: limit('rateDown', 'bytes per second'),
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

/** Drops a leading byte order mark, which JSON.parse would refuse. */
function withoutBom(text: string): string {
  return text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
}

/** JSON.parse, failing with a UsersFileError that points at the line and column to correct. */
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
  text = withoutBom(text);
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
      requireTls: r.data.requireTls ?? false,
      ...limitsOf(r.data),
    });
  }
  if (problems.length > 0) {
    const more = problems.length - 1;
    const suffix = more > 0 ? ` (and ${more} more problem${more === 1 ? '' : 's'} in the file)` : '';
    throw new UsersFileError(problems[0]! + suffix, 'invalid', file);
  }
  return result;
}

/** The limits an entry sets (absent keys stay absent, so records compare exactly). */
export function limitsOf(entry: Partial<Record<UserLimitKey, number | undefined>>): Partial<Record<UserLimitKey, number>> {
  const limits: Partial<Record<UserLimitKey, number>> = {};
  for (const key of USER_LIMIT_KEYS) {
    const value = entry[key];
    if (value !== undefined) limits[key] = value;
  }
  return limits;
}

/**
 * Parses non-empty users.json text for editing: checks only the top level, so entries that
 * would not validate are kept exactly as they are. Throws {@link UsersFileError}.
 */
export function parseRawUsersDocument(text: string, file: string): RawUsersDocument {
  const parsed = parseJson(withoutBom(text), file);
  rawUsers(parsed, file);
  return parsed as RawUsersDocument;
}

/** The text written for a users document: two-space indented JSON and a final newline. */
export function serializeUsersDocument(doc: RawUsersDocument): string {
  return JSON.stringify(doc, null, 2) + '\n';
}
