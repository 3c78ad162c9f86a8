import { closeSync, constants, fstatSync, lstatSync, openSync, readlinkSync, type Stats } from 'node:fs';
import { posix } from 'node:path';
import { StorageError } from '../StorageBackend.js';
import { denied, fromErrno } from './errnoErrors.js';

/** Linux's O_PATH: a handle that names a directory without opening it for reading. */
export const O_PATH = 0o10000000;
/** Flags for each directory of a walk: never follow a link, only accept a directory. */
const DIR_FLAGS = O_PATH | constants.O_DIRECTORY | constants.O_NOFOLLOW;
/** Links followed while resolving one path, as the kernel's own limit (ELOOP). */
const MAX_LINK_HOPS = 40;

/**
 * A directory beneath the jail's root, held open by a file descriptor (O_PATH). Children
 * are named through `/proc/self/fd/<fd>/<name>`: the kernel resolves that through the
 * descriptor, so no rename, link swap or directory exchange above it can redirect the
 * operation.
 */
export class HeldDirectory {
  private open = true;

  constructor(
    readonly fd: number,
    /** The directory's client path (after following in-jail links). */
    readonly clientPath: string,
  ) {}

  /** A path to `name` inside this directory that cannot be redirected by changes above it. */
  at(name: string): string {
    return `/proc/self/fd/${this.fd}/${name}`;
  }

  /** A path to the directory itself, through its descriptor. */
  self(): string {
    return `/proc/self/fd/${this.fd}`;
  }

  /** Closes the descriptor once (never throws). */
  async close(): Promise<void> {
    if (!this.open) return;
    this.open = false;
    closeQuietly(this.fd);
  }
}

/** Closes a descriptor, ignoring one already closed (cleanup paths must not throw). */
export function closeQuietly(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    // already closed: nothing to release
  }
}

/** A resolved path: its parent held open, the final name, and what the name is now. */
export interface Located {
  /** The parent directory (for the root: the root itself, with name '.'). */
  dir: HeldDirectory;
  name: string;
  /** Client path after following in-jail links (for messages, use the caller's path). */
  clientPath: string;
  /** lstat of the final name (not following it), or undefined when it does not exist. */
  lstats: Stats | undefined;
}

/**
 * Resolves client paths beneath a root directory without a time-of-check/time-of-use gap.
 * The walk's calls (open with O_PATH, lstat, readlink, close) run synchronously on the
 * event loop: on a local disk each takes microseconds, while a thread-pool round trip
 * costs ~100 µs on a 2-core machine and more when downloads keep the pool busy, and every
 * RETR, STOR, LIST and login walks at least once (see the README's performance section).
 * Every component is opened with O_NOFOLLOW relative to the descriptor of the directory
 * before it (Node has no openat, so through `/proc/self/fd/N/name`), starting from the
 * root's descriptor. A symbolic link is never followed by the kernel: DFOS reads it and,
 * when links are allowed, resolves its target lexically against the real directories
 * walked so far, refusing any target outside the root, then walks again. So a local
 * process that swaps a directory for a link mid-operation gets the operation refused or
 * applied inside the jail, never outside.
 */
export class JailResolver {
  constructor(
    /** Real (symlink-free) absolute path of the jail's root. */
    readonly root: string,
    /** Follow links whose target stays inside the root (refuse every link when false). */
    readonly followLinks = true,
  ) {}

  /**
   * Opens the directory at `path` (following in-jail links at every step). Errors name
   * `clientPath` (the path the client asked for, when `path` is only its parent).
   */
  async openDirectory(path: string, clientPath = path): Promise<HeldDirectory> {
    let pending = segments(path);
    let done: string[] = [];
    let hops = 0;
    let fd = this.openRoot(clientPath);
    try {
      while (pending.length > 0) {
        const name = pending.shift()!;
        const child = `/proc/self/fd/${fd}/${name}`;
        let next: number;
        try {
          next = openSync(child, DIR_FLAGS);
        } catch (err) {
          const code = (err as NodeJS.ErrnoException).code;
          if (code !== 'ENOTDIR' && code !== 'ELOOP') throw fromErrno(err, clientPath);
          let stats: Stats;
          try {
            stats = lstatSync(child);
          } catch (e) {
            throw fromErrno(e, clientPath);
          }
          if (!stats.isSymbolicLink()) throw new StorageError('not-a-directory', `${clientPath}: Not a directory`);
          if (++hops > MAX_LINK_HOPS) throw denied(clientPath);
          const target = readLinkOrDeny(child, clientPath);
          pending = [...this.linkTarget(done, target, clientPath), ...pending];
          done = [];
          closeQuietly(fd);
          fd = -1;
          fd = this.openRoot(clientPath);
          continue;
        }
        closeQuietly(fd);
        fd = next;
        done.push(name);
      }
      return new HeldDirectory(fd, `/${done.join('/')}`);
    } catch (err) {
      if (fd >= 0) closeQuietly(fd);
      throw err;
    }
  }

  /**
   * Opens the parent of `clientPath` and lstats its final name. With `followFinal`, a
   * final link inside the jail is followed (a link leading out is refused); without it,
   * the link itself is the result. The caller closes `dir`.
   */
  async locate(clientPath: string, { followFinal }: { followFinal: boolean }): Promise<Located> {
    let path = clientPath;
    for (let hops = 0; ; hops++) {
      if (path === '/') {
        const dir = await this.openDirectory('/', clientPath);
        return { dir, name: '.', clientPath: '/', lstats: fstatSync(dir.fd) };
      }
      const dir = await this.openDirectory(posix.dirname(path), clientPath);
      const name = posix.basename(path);
      try {
        let stats: Stats | undefined;
        try {
          stats = lstatSync(dir.at(name));
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw fromErrno(err, clientPath);
        }
        const resolved = posix.join(dir.clientPath, name);
        if (!stats?.isSymbolicLink() || !followFinal) return { dir, name, clientPath: resolved, lstats: stats };
        if (!this.followLinks || hops >= MAX_LINK_HOPS) throw denied(clientPath);
        const target = readLinkOrDeny(dir.at(name), clientPath);
        path = `/${this.linkTarget(segments(dir.clientPath), target, clientPath).join('/')}`;
      } catch (err) {
        await dir.close();
        throw err;
      }
      await dir.close();
    }
  }

  /** Checks that a link found at `located` leads inside the jail (refuses it otherwise). */
  async assertLinkInside(located: Located, clientPath: string): Promise<void> {
    if (!located.lstats?.isSymbolicLink()) return;
    const followed = await this.locate(located.clientPath, { followFinal: true }).catch((err: unknown) => {
      throw err instanceof StorageError && err.kind !== 'unavailable' && err.kind !== 'io' ? denied(clientPath) : err;
    });
    await followed.dir.close();
  }

  /**
   * Where a link in the directory `base` (real segments below the root) leads, as segments
   * below the root; refuses targets outside. Resolved lexically: every directory walked
   * is real, so `..` is its real parent, and the root's own path is symlink-free.
   */
  private linkTarget(base: string[], target: string, clientPath: string): string[] {
    const absolute = target.startsWith('/') ? posix.normalize(target) : posix.join(this.root, ...base, target);
    if (absolute === this.root) return [];
    const prefix = this.root.endsWith('/') ? this.root : `${this.root}/`;
    if (!this.followLinks || !absolute.startsWith(prefix)) throw denied(clientPath);
    return segments(absolute.slice(prefix.length - 1));
  }

  private openRoot(clientPath: string): number {
    try {
      return openSync(this.root, DIR_FLAGS);
    } catch (err) {
      throw new StorageError('unavailable', `${clientPath}: Home folder unavailable (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
    }
  }
}

/** A link's target; a link that cannot be read is refused like one leading out. */
function readLinkOrDeny(path: string, clientPath: string): string {
  try {
    return readlinkSync(path);
  } catch {
    throw denied(clientPath);
  }
}

/** The non-empty components of an absolute client path. */
function segments(path: string): string[] {
  return path.split('/').filter((s) => s !== '' && s !== '.');
}

/** The refusal for anything that leads outside the jail (same text whatever is outside). */
