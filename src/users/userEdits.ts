import { FileLockError, withFileLock, writeFileAtomic } from './lockedFileWrite.js';
import { isPasswordHash } from './passwordHash.js';
import { ioReason, shellQuote, UsersFileError } from './usersFileError.js';
import { missingUsersFile, readUsersText } from './usersFileReader.js';
import {
  isPlainObject,
  parseRawUsersDocument,
  serializeUsersDocument,
  USER_LIMIT_KEYS,
  userNameProblem,
  type RawUsersDocument,
  type UserLimitKey,
} from './usersFormat.js';

/** A user's on/off settings as `dfos users add|set` change them. */
export interface UserFlags {
  readOnly?: boolean;
  localOnly?: boolean;
  requireTls?: boolean;
}

/** Limits to set: a number sets the key, null removes it (no limit). */
export type UserLimitChanges = Partial<Record<UserLimitKey, number | null>>;

/**
 * The edits behind `dfos users`: add a user, change a password, remove a user, and the
 * existence check the CLI does before asking for a password. Each edit is a locked
 * read-modify-write of the raw document, so entries it does not touch (unknown keys, and
 * entries that would not validate) are written back exactly as they were. Listing users
 * is just a validated read (readUsersFile in usersFileReader.ts).
 */

/**
 * Reads users.json, lets `update` change the raw document, and writes it back atomically.
 * Only the top level is checked, and entries the callback does not touch are written back
 * exactly as they were (including unknown keys and entries that would not validate, so a
 * broken entry can be repaired with `dfos users passwd`). With `create`, a missing or empty
 * file starts as `{"users": {}}`. Two commands run at once cannot lose each other's change:
 * the file's edit lock is held throughout (see {@link withFileLock}).
 */
export async function updateUsersFile<T>(
  file: string,
  update: (doc: RawUsersDocument) => T,
  options: { create?: boolean } = {},
): Promise<T> {
  try {
    return await withFileLock(file, () => updateLocked(file, update, options));
  } catch (err) {
    if (err instanceof FileLockError) throw lockFailed(file, err);
    throw err;
  }
}

function lockFailed(file: string, err: FileLockError): UsersFileError {
  return new UsersFileError(
    err.busy
      ? `${file}: another \`dfos users\` command is editing it (lock ${err.lockPath}); try again, or remove that directory if no such command runs`
      : `${file}: cannot lock it for editing (${ioReason(err.cause)}); check the permissions of its directory`,
    err.busy ? 'locked' : 'write-failed',
    file,
  );
}

async function updateLocked<T>(file: string, update: (doc: RawUsersDocument) => T, options: { create?: boolean }): Promise<T> {
  const text = await readUsersText(file);
  let doc: RawUsersDocument;
  if (text === null || text.trim() === '') {
    if (text === null && !options.create) throw missingUsersFile(file);
    doc = { users: {} };
  } else {
    doc = parseRawUsersDocument(text, file);
  }
  const result = update(doc);
  try {
    await writeFileAtomic(file, serializeUsersDocument(doc));
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
  return Object.hasOwn(parseRawUsersDocument(text, file).users, name);
}

/**
 * Adds a user with an already hashed password; creates the file if needed. Fails if the name
 * is taken (also by a name differing only in case).
 */
export async function addUser(
  file: string,
  name: string,
  passwordHash: string,
  flags: UserFlags & Partial<Record<UserLimitKey, number>> = {},
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
      doc.users[name] = {
        password: passwordHash,
        readOnly: flags.readOnly ?? false,
        localOnly: flags.localOnly ?? false,
        ...(flags.requireTls ? { requireTls: true } : {}),
      };
      for (const key of USER_LIMIT_KEYS) {
        const value = flags[key];
        if (value !== undefined) (doc.users[name] as Record<string, unknown>)[key] = value;
      }
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

/**
 * Changes an existing user's settings and limits, keeping every other key of the entry
 * (password included). Fails if the user is missing or the entry is not an object.
 */
export async function setUserSettings(file: string, name: string, flags: UserFlags, limits: UserLimitChanges): Promise<void> {
  checkName(name, file);
  await updateUsersFile(file, (doc) => {
    if (!Object.hasOwn(doc.users, name)) throw noSuchUser(name, file);
    const entry = doc.users[name];
    if (!isPlainObject(entry)) {
      throw new UsersFileError(`${file}: user "${name}" is not an object; set a password first with: dfos users passwd ${name} --users ${shellQuote(file)}`, 'invalid', file);
    }
    for (const [key, value] of Object.entries(flags)) {
      if (value !== undefined) entry[key] = value;
    }
    for (const key of USER_LIMIT_KEYS) {
      const value = limits[key];
      if (value === null) delete entry[key];
      else if (value !== undefined) entry[key] = value;
    }
  });
}

/** Removes a user (their files in storage are not touched). Fails if the user is missing. */
export async function removeUser(file: string, name: string): Promise<void> {
  await updateUsersFile(file, (doc) => {
    if (!Object.hasOwn(doc.users, name)) throw noSuchUser(name, file);
    delete doc.users[name];
  });
}
