import { randomBytes } from 'node:crypto';
import { open, realpath, rename, stat, unlink } from 'node:fs/promises';
import path from 'node:path';
import lockfile from 'proper-lockfile';

/**
 * Safe rewrites of a small file that several processes may edit: an advisory edit lock
 * (proper-lockfile) so concurrent read-modify-write cycles cannot lose each other's change,
 * and an atomic write (temporary file, fsync, rename, directory fsync) so a reader never sees
 * a half-written file and a crash leaves either the old or the new content.
 *
 * Both follow symlinks: the lock and the write apply to the file the path points at.
 */

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

/** The edit lock of a file could not be taken; `cause` is proper-lockfile's error. */
export class FileLockError extends Error {
  override readonly name = 'FileLockError';
  constructor(
    /** The lock directory (`<resolved file>.lock`). */
    readonly lockPath: string,
    /** Another process holds the lock (as opposed to, say, a permission problem). */
    readonly busy: boolean,
    cause: unknown,
  ) {
    super(busy ? `${lockPath} is held by another process` : `cannot create ${lockPath}`, { cause });
  }
}

/**
 * Runs `fn` while holding the file's edit lock (a `<file>.lock` directory, via
 * proper-lockfile). Waits up to about 10 s for another editor; a lock left by a crashed
 * process is taken over after 10 s. Throws {@link FileLockError} when the lock cannot be
 * taken; a failure to release it afterwards is ignored.
 */
export async function withFileLock<T>(file: string, fn: () => Promise<T>): Promise<T> {
  const target = await resolveTarget(file);
  let release: () => Promise<void>;
  try {
    release = await lockfile.lock(target, {
      realpath: false,
      stale: 10_000,
      retries: { retries: 60, factor: 1.2, minTimeout: 20, maxTimeout: 500, randomize: true },
    });
  } catch (err) {
    throw new FileLockError(`${target}.lock`, (err as NodeJS.ErrnoException).code === 'ELOCKED', err);
  }
  try {
    return await fn();
  } finally {
    await release().catch(() => undefined);
  }
}
