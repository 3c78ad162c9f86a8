import { lstat, mkdir, realpath } from 'node:fs/promises';
import type { Stats } from 'node:fs';
import { basename, dirname, join, posix, resolve, sep } from 'node:path';
import { FsError, toFsError } from './FsError.js';
import { isTempName } from './hiddenTemp.js';

/** A client path checked against the jail, with the server path to operate on. */
export interface JailedEntry {
  /** Normalised absolute path as the client sees it ("/docs/a.txt"). */
  clientPath: string;
  /** Server path to use: the real parent directory joined with the final name. */
  fsPath: string;
  /** lstat of the entry itself, or undefined when it does not exist. */
  lstats: Stats | undefined;
  /** Real path the entry resolves to (differs from fsPath only for a symlink). */
  realPath: string | undefined;
}

/**
 * Confines client paths to one directory. Lexical rules first (`..` clamps at `/`,
 * backslashes are separators, NUL is refused), then realpath containment on
 * path-separator boundaries, so a symlink inside the tree that points outside (to a
 * file, a directory, or nowhere) is refused for every operation, and `/srv/alice`
 * never accepts `/srv/alice2`.
 */
export class PathJail {
  private constructor(
    /** Real (symlink-free) absolute path of the jail's root directory. */
    readonly root: string,
  ) {}

  /** Creates the root directory if needed and returns a jail for it. */
  static async open(root: string): Promise<PathJail> {
    await mkdir(root, { recursive: true, mode: 0o750 });
    return new PathJail(await realpath(root));
  }

  /** True when `real` is the root or lies below it (separator-boundary check). */
  contains(real: string): boolean {
    return real === this.root || real.startsWith(this.root.endsWith(sep) ? this.root : this.root + sep);
  }

  /**
   * Turns client input into a normalised absolute client path, relative to `cwd`.
   * Throws 501 for a missing argument and 553 for NUL bytes or a reserved temporary name.
   */
  clientPath(cwd: string, input: string | null | undefined): string {
    if (input === undefined || input === null || input === '') throw new FsError(501, 'A path argument is required');
    if (input.includes('\0')) throw new FsError(553, 'File name not allowed: contains a NUL byte');
    const path = posix.resolve('/', cwd, input.replace(/\\/g, '/'));
    if (path.split('/').some(isTempName)) throw new FsError(553, 'File name not allowed: reserved name');
    return path;
  }

  /**
   * Resolves a client path to a checked entry. The parent directory must exist and
   * resolve inside the jail; a final symlink must resolve inside the jail too (a dangling
   * one is refused, since writing through it would create a file wherever it points).
   */
  async entry(clientPath: string): Promise<JailedEntry> {
    if (clientPath === '/') {
      return { clientPath, fsPath: this.root, lstats: await lstat(this.root), realPath: this.root };
    }
    const lexical = join(this.root, clientPath);
    let parentReal: string;
    try {
      parentReal = await realpath(dirname(lexical));
    } catch (err) {
      // Tell "missing" from "behind a link that leaves the jail" by the nearest existing
      // ancestor, so a refusal never reveals what exists outside.
      throw (await this.escapesViaAncestor(dirname(lexical))) ? denied(clientPath) : toFsError(err, clientPath);
    }
    if (!this.contains(parentReal)) throw denied(clientPath);
    return this.inspect(join(parentReal, basename(lexical)), clientPath);
  }

  /**
   * Resolves `name` inside `dirReal`, the real path of a directory already checked by
   * entry()/existing() (so it is inside the jail): one lstat, plus a realpath containment
   * check only when the child is a symlink. Listings use it instead of entry() per name.
   */
  async child(dirReal: string, clientPath: string, name: string): Promise<JailedEntry> {
    return this.inspect(join(dirReal, name), clientPath);
  }

  /** The entry at `fsPath`, whose parent is a real directory inside the jail. */
  private async inspect(fsPath: string, clientPath: string): Promise<JailedEntry> {
    let lstats: Stats;
    try {
      lstats = await lstat(fsPath);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { clientPath, fsPath, lstats: undefined, realPath: undefined };
      throw toFsError(err, clientPath);
    }
    if (!lstats.isSymbolicLink()) return { clientPath, fsPath, lstats, realPath: fsPath };
    let target: string;
    try {
      target = await realpath(fsPath);
    } catch {
      throw denied(clientPath); // dangling or looping link
    }
    if (!this.contains(target)) throw denied(clientPath);
    return { clientPath, fsPath, lstats, realPath: target };
  }

  /** Like entry() but the entry must exist; returns its real path. */
  async existing(clientPath: string): Promise<JailedEntry & { realPath: string; lstats: Stats }> {
    const e = await this.entry(clientPath);
    if (!e.lstats || !e.realPath) throw new FsError(550, `${clientPath}: No such file or directory`);
    return e as JailedEntry & { realPath: string; lstats: Stats };
  }

  /** True when the nearest existing ancestor of `path` is a dangling link or lies outside the jail. */
  private async escapesViaAncestor(path: string): Promise<boolean> {
    for (let dir = path; this.contains(dir) && dir !== this.root; dir = dirname(dir)) {
      try {
        await lstat(dir);
      } catch {
        continue;
      }
      try {
        return !this.contains(await realpath(dir));
      } catch {
        return true;
      }
    }
    return false;
  }

  /** Server path for a client path without any checks (for messages never sent to clients). */
  lexicalPath(clientPath: string): string {
    return resolve(join(this.root, clientPath));
  }
}

function denied(clientPath: string): FsError {
  return new FsError(550, `${clientPath}: Permission denied`);
}
