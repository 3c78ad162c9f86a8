import { createHash, createHmac, randomBytes } from 'node:crypto';
import { watch as fsWatch, watchFile, unwatchFile, type FSWatcher, type Stats } from 'node:fs';
import path from 'node:path';
import { isLoopbackAddress } from '../util/address.js';
import { DEFAULT_SCRYPT_COST, verifyPassword } from './passwordHash.js';
import { UsersFileError } from './usersFileError.js';
import { missingUsersFile, readUsersFile, readUsersText } from './usersFileReader.js';
import { limitsOf, parseUsersText, type UserEntry } from './usersFormat.js';

/** A user as the server sees it (never the password hash). */
export interface UserRecord {
  readonly name: string;
  /** May download and list only. */
  readonly readOnly: boolean;
  /** May log in only from loopback addresses. */
  readonly localOnly: boolean;
  /** May log in only over TLS (the engine enforces it at USER/PASS). */
  readonly requireTls: boolean;
  /** Sessions at once (undefined: no per-user limit). */
  readonly maxSessions?: number;
  /** Bytes of stored files in total (undefined: no quota). */
  readonly quotaBytes?: number;
  /** Stored files (undefined: no limit). */
  readonly quotaFiles?: number;
  /** Largest file an upload may produce, bytes (undefined: no limit). */
  readonly maxFileSize?: number;
  /** Upload bytes/s over all this user's sessions (undefined: no limit). */
  readonly rateUp?: number;
  /** Download bytes/s (transfers, listings, previews) over all this user's sessions. */
  readonly rateDown?: number;
}

/**
 * Outcome of {@link UserStore.authenticate}. The reasons are for logs; tell the client the
 * same thing whatever the reason.
 */
export type AuthResult =
  | { ok: true; user: UserRecord }
  | { ok: false; reason: 'unknown-user' | 'bad-password' | 'not-local' };

/** Outcome of {@link UserStore.reload}; on failure the previous users stay in force. */
export type ReloadResult = { ok: true; count: number } | { ok: false; error: UsersFileError };

/** Tuning for {@link UserStore.load}; the defaults suit the server. */
export interface UserStoreOptions {
  /** How many successful verifications to remember (default 10 000; 0 disables the cache). */
  cacheSize?: number;
  /** Debounce for {@link UserStore.watch}, in milliseconds (default 100). */
  watchDebounceMs?: number;
  /** Polling interval of the stat-based fallback watcher, in milliseconds (default 2000). */
  watchPollMs?: number;
}


/** A hash in the default format whose key matches nothing; verifying it costs the same as a real one. */
const DUMMY_HASH = `$scrypt$ln=${DEFAULT_SCRYPT_COST.ln},r=${DEFAULT_SCRYPT_COST.r},p=${DEFAULT_SCRYPT_COST.p}$${randomBytes(16)
  .toString('base64')
  .replace(/=+$/, '')}$${randomBytes(32).toString('base64').replace(/=+$/, '')}`;

function toRecord(name: string, entry: UserEntry): UserRecord {
  return Object.freeze({
    name,
    readOnly: entry.readOnly,
    localOnly: entry.localOnly,
    requireTls: entry.requireTls,
    ...limitsOf(entry),
  });
}

function digest(text: string): string {
  return createHash('sha256').update(text).digest('base64');
}

/**
 * The users of a DFOS server, loaded from users.json.
 *
 * Successful verifications are remembered in a bounded in-memory cache (as SFTPGo does) so a
 * client that logs in repeatedly does not pay scrypt each time. The key is an HMAC-SHA256,
 * under a random per-process key, of (name, stored hash, password); neither passwords nor
 * anything usable offline is kept, and an entry stops matching as soon as the hash changes.
 */
export class UserStore {
  readonly #file: string;
  #users: Map<string, UserEntry>;
  #lastText: string;
  #reloading: Promise<unknown> = Promise.resolve();
  readonly #cacheKey = randomBytes(32);
  readonly #cache = new Map<string, true>();
  readonly #cacheSize: number;
  readonly #debounceMs: number;
  readonly #pollMs: number;

  private constructor(file: string, contents: { users: Map<string, UserEntry>; text: string }, options: UserStoreOptions) {
    this.#file = file;
    this.#users = contents.users;
    this.#lastText = digest(contents.text);
    this.#cacheSize = Math.max(0, options.cacheSize ?? 10_000);
    this.#debounceMs = options.watchDebounceMs ?? 100;
    this.#pollMs = options.watchPollMs ?? 2000;
  }

  /** Loads and validates a users file. Throws {@link UsersFileError} with a one-line message. */
  static async load(file: string, options: UserStoreOptions = {}): Promise<UserStore> {
    return new UserStore(file, await readUsersFile(file), options);
  }

  /** The users file, as given to {@link UserStore.load}. */
  get file(): string {
    return this.#file;
  }

  /** Number of users. */
  get size(): number {
    return this.#users.size;
  }

  /** All users, sorted by name. */
  list(): UserRecord[] {
    return [...this.#users.entries()]
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([name, entry]) => toRecord(name, entry));
  }

  /** One user by exact name, or undefined. */
  get(name: string): UserRecord | undefined {
    const entry = this.#users.get(name);
    return entry ? toRecord(name, entry) : undefined;
  }

  /**
   * Checks a login. The password is always verified first (an unknown user costs a dummy
   * scrypt run), so timing tells little about which names exist or are local-only; a
   * local-only user with the right password from a non-loopback address gets `not-local`.
   */
  async authenticate(name: string, password: string, remoteAddress: string | undefined): Promise<AuthResult> {
    const entry = typeof name === 'string' ? this.#users.get(name) : undefined;
    if (!entry) {
      await verifyPassword(String(password ?? ''), DUMMY_HASH);
      return { ok: false, reason: 'unknown-user' };
    }
    if (!(await this.#verify(name, entry.password, String(password ?? '')))) {
      return { ok: false, reason: 'bad-password' };
    }
    if (entry.localOnly && !isLoopbackAddress(remoteAddress)) return { ok: false, reason: 'not-local' };
    return { ok: true, user: toRecord(name, entry) };
  }

  async #verify(name: string, hash: string, password: string): Promise<boolean> {
    if (this.#cacheSize === 0) return verifyPassword(password, hash);
    const h = createHmac('sha256', this.#cacheKey);
    for (const part of [name, hash, password]) {
      const buf = Buffer.from(part, 'utf8');
      const len = Buffer.alloc(4);
      len.writeUInt32BE(buf.length);
      h.update(len).update(buf);
    }
    const key = h.digest('base64');
    if (this.#cache.has(key)) {
      // Refresh recency: Map iterates in insertion order, so the oldest is evicted first.
      this.#cache.delete(key);
      this.#cache.set(key, true);
      return true;
    }
    const ok = await verifyPassword(password, hash);
    if (ok) {
      this.#cache.set(key, true);
      while (this.#cache.size > this.#cacheSize) {
        const oldest = this.#cache.keys().next().value;
        if (oldest === undefined) break;
        this.#cache.delete(oldest);
      }
    }
    return ok;
  }

  /**
   * Re-reads the users file. If the new file is invalid the current users stay in force and
   * the error is returned (not thrown). Reloads are serialised.
   */
  reload(): Promise<ReloadResult> {
    const next = this.#reloading.then(() => this.#reloadNow(false));
    this.#reloading = next.catch(() => undefined);
    return next.then((r) => r ?? { ok: true, count: this.#users.size });
  }

  /**
   * Reloads; when `onlyIfChanged`, returns null without doing anything if the text is as
   * last seen. Reads through readUsersText, as startup does, so the same size limit and
   * checks apply to SIGHUP and the watcher.
   */
  async #reloadNow(onlyIfChanged: boolean): Promise<ReloadResult | null> {
    let text: string | null;
    try {
      text = await readUsersText(this.#file);
    } catch (e) {
      if (e instanceof UsersFileError) return { ok: false, error: e };
      throw e;
    }
    if (text === null) {
      // Mid-replacement (or deleted) while watching: keep the current users; a later event will tell.
      if (onlyIfChanged) return null;
      return { ok: false, error: missingUsersFile(this.#file) };
    }
    const d = digest(text);
    if (onlyIfChanged && d === this.#lastText) return null;
    this.#lastText = d;
    try {
      this.#users = parseUsersText(text, this.#file);
      return { ok: true, count: this.#users.size };
    } catch (e) {
      if (e instanceof UsersFileError) return { ok: false, error: e };
      throw e;
    }
  }

  /**
   * Watches the users file and reloads it when it changes, calling `onReload` with each
   * result (only when the content actually changed). Watches the directory, filtered by
   * file name, so editors and `dfos users` (which replace the file by rename) are seen;
   * a slow stat poll backs it up (e.g. for symlinked files swapped by Kubernetes).
   * Returns a function that stops watching.
   */
  watch(onReload: (result: ReloadResult) => void): () => void {
    const file = path.resolve(this.#file);
    const dir = path.dirname(file);
    const base = path.basename(file);
    let stopped = false;
    let timer: NodeJS.Timeout | undefined;
    let watcher: FSWatcher | undefined;

    const fire = () => {
      timer = undefined;
      if (stopped) return;
      const next = this.#reloading.then(() => (stopped ? null : this.#reloadNow(true)));
      this.#reloading = next.catch(() => undefined);
      next.then(
        (r) => {
          if (r && !stopped) onReload(r);
        },
        () => undefined,
      );
    };
    const schedule = () => {
      if (stopped) return;
      if (timer) clearTimeout(timer);
      timer = setTimeout(fire, this.#debounceMs);
    };

    try {
      watcher = fsWatch(dir, { persistent: false }, (_event, filename) => {
        if (filename === null || filename === undefined || filename.toString() === base) schedule();
      });
      watcher.on('error', () => {
        // The directory went away or cannot be watched; the stat poll below still works.
        watcher?.close();
        watcher = undefined;
      });
    } catch {
      watcher = undefined;
    }

    const onStat = (curr: Stats, prev: Stats) => {
      if (curr.mtimeMs !== prev.mtimeMs || curr.ino !== prev.ino || curr.size !== prev.size) schedule();
    };
    watchFile(file, { persistent: false, interval: this.#pollMs }, onStat);

    return () => {
      if (stopped) return;
      stopped = true;
      if (timer) clearTimeout(timer);
      watcher?.close();
      unwatchFile(file, onStat);
    };
  }
}
