import { randomUUID } from 'node:crypto';
import { constants, type Stats } from 'node:fs';
import { chmod, lstat, mkdir, open, readdir, rename, rmdir, unlink, type FileHandle } from 'node:fs/promises';
import { posix } from 'node:path';
import { AtomicUpload, type UploadMode } from './AtomicUpload.js';
import { FsError, toFsError } from './FsError.js';
import { isReservedName } from './hiddenTemp.js';
import { O_PATH, type HeldDirectory, type JailResolver, type Located } from './JailResolver.js';
import { mapConcurrent } from '../util/mapConcurrent.js';
import type { PathJail } from './pathJail.js';

/** Entries stat'ed at once while listing a directory. */
const LIST_CONCURRENCY = 32;
/** Opening a file to read: never follow a link, never block (a FIFO would hold a thread). */
const READ_FLAGS = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK;
/** C0 control characters and DEL, shown as `?` in listings (never sent raw). */
const CONTROL_CHARACTERS = /[\x00-\x1f\x7f]/g;

/** A directory entry or file as ftp-srv expects it: fs.Stats plus the name to show. */
export type NamedStats = Stats & { name: string };

/** What one login may do. */
export interface FileSystemPolicy {
  /** Refuse every change (upload, append, delete, mkdir, rmdir, rename, chmod). */
  readOnly: boolean;
}

/** The first bytes of a file, for SITE VIEW. */
export interface FileHead {
  clientPath: string;
  head: Buffer;
  size: number;
}

/**
 * The per-login filesystem handed to ftp-srv: every client path is confined by a
 * PathJail and reached race-free through its JailResolver, every change honours the
 * read-only policy (enforced here, so no command alias can bypass it), uploads are atomic,
 * upload temporaries are invisible, only regular files and directories are ever opened
 * (a FIFO, socket or device is refused without blocking), and every error is an FsError
 * whose message names only client paths.
 */
export class JailedFileSystem {
  private cwd = '/';
  private readonly resolver: JailResolver;

  constructor(
    private readonly jail: PathJail,
    private readonly policy: FileSystemPolicy,
  ) {
    this.resolver = jail.resolver;
  }

  /** Current directory as the client sees it. */
  currentDirectory(): string {
    return this.cwd;
  }

  /** Resolves client input against the current directory (no filesystem access). */
  resolveClientPath(input: string | null | undefined): string {
    return this.jail.clientPath(this.cwd, input);
  }

  /** Stats of a file or directory (following in-jail symlinks). */
  async get(name: string | null | undefined): Promise<NamedStats> {
    const clientPath = this.resolveClientPath(name ?? '.');
    const stats = await this.using(clientPath, true, async (at) => existing(at, clientPath));
    return named(stats, posix.basename(clientPath) || '/');
  }

  /** Entries of a directory, without reserved names or links that leave the jail. */
  async list(dir: string | null | undefined): Promise<NamedStats[]> {
    const clientPath = this.resolveClientPath(dir ?? '.');
    const held = await this.resolver.openDirectory(clientPath);
    try {
      let names: string[];
      try {
        names = await readdir(held.self());
      } catch (err) {
        throw toFsError(err, clientPath);
      }
      const visible = names.filter((name) => !isReservedName(name)).sort();
      const listed = await mapConcurrent(visible, LIST_CONCURRENCY, (name) => this.listEntry(held, name));
      return listed.filter((e): e is NamedStats => e !== undefined);
    } finally {
      await held.close();
    }
  }

  /** Changes the current directory; returns the new client path. */
  async chdir(dir: string | null | undefined): Promise<string> {
    const clientPath = this.resolveClientPath(dir ?? '/');
    await (await this.resolver.openDirectory(clientPath)).close();
    this.cwd = clientPath;
    return clientPath;
  }

  /**
   * Opens an atomic upload to `name` (STOR, APPE, REST+STOR). The returned stream commits
   * when it finishes and leaves the target as it was when destroyed.
   */
  async openUpload(name: string | null | undefined, mode: UploadMode = {}): Promise<{ stream: AtomicUpload; clientPath: string }> {
    const clientPath = this.resolveClientPath(name);
    this.assertWritable(clientPath);
    if (clientPath === '/') throw new FsError(553, '/: Is a directory');
    const at = await this.resolver.locate(clientPath, { followFinal: true });
    try {
      if (at.lstats?.isDirectory()) throw new FsError(553, `${clientPath}: Is a directory`);
      if (at.lstats && !at.lstats.isFile()) throw notRegular(clientPath);
    } catch (err) {
      await at.dir.close();
      throw err;
    }
    try {
      return { stream: await AtomicUpload.open(at.dir, at.name, clientPath, at.lstats, mode), clientPath };
    } catch (err) {
      throw toFsError(err, clientPath);
    }
  }

  /**
   * Opens a regular file for download, optionally from a byte offset (REST). The caller
   * closes `file`; `size` is the number of bytes from the offset to the end.
   */
  async openForDownload(name: string | null | undefined, { start }: { start?: number } = {}): Promise<{ file: FileHandle; clientPath: string; size: number }> {
    const clientPath = this.resolveClientPath(name);
    const { file, stats } = await this.openRegular(clientPath);
    if (start !== undefined && start > stats.size) {
      await file.close();
      throw new FsError(554, `Restart offset ${start} is beyond the end of the file (${stats.size} bytes)`);
    }
    return { file, clientPath, size: stats.size - (start ?? 0) };
  }

  /** Reads at most `limit` bytes from the start of a regular file. */
  async readHead(name: string | null | undefined, limit: number): Promise<FileHead> {
    const clientPath = this.resolveClientPath(name);
    const { file, stats } = await this.openRegular(clientPath);
    try {
      const buffer = Buffer.alloc(Math.min(limit, stats.size));
      let filled = 0;
      while (filled < buffer.length) {
        const { bytesRead } = await file.read(buffer, filled, buffer.length - filled, filled);
        if (bytesRead === 0) break;
        filled += bytesRead;
      }
      return { clientPath, head: buffer.subarray(0, filled), size: stats.size };
    } catch (err) {
      throw toFsError(err, clientPath);
    } finally {
      await file.close();
    }
  }

  /** Deletes a file (DELE); a link is removed itself. Directories are refused: use RMD. */
  async delete(name: string | null | undefined): Promise<string> {
    const clientPath = this.resolveClientPath(name);
    this.assertWritable(clientPath);
    await this.using(clientPath, false, async (at) => {
      const stats = existing(at, clientPath);
      if (stats.isDirectory()) throw new FsError(550, `${clientPath}: Is a directory (use RMD)`);
      await this.resolver.assertLinkInside(at, clientPath);
      await unlink(at.dir.at(at.name));
    });
    return clientPath;
  }

  /**
   * Removes a directory (RMD/XRMD) that is empty for the client: reserved entries (upload
   * temporaries, journals, reserved names) do not count and are removed with it.
   */
  async removeDirectory(name: string | null | undefined): Promise<string> {
    const clientPath = this.resolveClientPath(name);
    this.assertWritable(clientPath);
    if (clientPath === '/') throw new FsError(550, '/: Cannot remove the home directory');
    await this.using(clientPath, false, async (at) => {
      if (!existing(at, clientPath).isDirectory()) throw new FsError(550, `${clientPath}: Not a directory`);
      const handle = await open(at.dir.at(at.name), constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW);
      try {
        const inside = `/proc/self/fd/${handle.fd}`;
        const names = await readdir(inside);
        if (names.some((n) => !isReservedName(n))) throw new FsError(550, `${clientPath}: Directory not empty`);
        for (const n of names) {
          if ((await lstat(`${inside}/${n}`)).isDirectory()) throw new FsError(550, `${clientPath}: Directory not empty`);
          await unlink(`${inside}/${n}`).catch(() => undefined);
        }
      } finally {
        await handle.close();
      }
      await rmdir(at.dir.at(at.name));
    });
    return clientPath;
  }

  /** Creates one directory; returns its client path (for the 257 reply). */
  async mkdir(name: string | null | undefined): Promise<string> {
    const clientPath = this.resolveClientPath(name);
    this.assertWritable(clientPath);
    await this.using(clientPath, false, async (at) => {
      if (at.lstats) throw new FsError(550, `${clientPath}: Already exists`);
      await mkdir(at.dir.at(at.name), { mode: 0o750 });
    });
    return clientPath;
  }

  /** Renames a file or directory (RNFR/RNTO); replaces an existing target file. */
  async rename(from: string, to: string): Promise<string> {
    const fromPath = this.resolveClientPath(from);
    const toPath = this.resolveClientPath(to);
    this.assertWritable(fromPath);
    if (fromPath === '/') throw new FsError(550, '/: Cannot rename the home directory');
    await this.using(fromPath, false, async (source) => {
      const sourceStats = existing(source, fromPath);
      await this.resolver.assertLinkInside(source, fromPath);
      await this.using(toPath, false, async (target) => {
        await this.resolver.assertLinkInside(target, toPath);
        if (target.lstats?.isDirectory() && !sourceStats.isDirectory()) throw new FsError(553, `${toPath}: Is a directory`);
        const sourceReal = posix.join(source.dir.clientPath, source.name);
        const targetReal = posix.join(target.dir.clientPath, target.name);
        if (sourceStats.isDirectory() && (targetReal === sourceReal || targetReal.startsWith(`${sourceReal}/`))) {
          throw new FsError(553, `${toPath}: Cannot move a directory into itself`);
        }
        await rename(source.dir.at(source.name), target.dir.at(target.name)).catch((err: unknown) => {
          throw toFsError(err, toPath);
        });
      });
    });
    return toPath;
  }

  /** SITE CHMOD: permission bits only (no setuid, setgid or sticky). */
  async chmod(name: string | null | undefined, mode: number): Promise<string> {
    const clientPath = this.resolveClientPath(name);
    this.assertWritable(clientPath);
    if (!Number.isInteger(mode) || mode < 0 || mode > 0o777) throw new FsError(501, 'Mode must be octal permission bits from 000 to 777');
    await this.using(clientPath, true, async (at) => {
      existing(at, clientPath);
      // O_PATH + O_NOFOLLOW pins the entry itself; chmod through its descriptor cannot be
      // redirected by a link swapped in meanwhile (a link there is refused by the kernel).
      const handle = await open(at.dir.at(at.name), O_PATH | constants.O_NOFOLLOW);
      try {
        if ((await handle.stat()).isSymbolicLink()) throw new FsError(550, `${clientPath}: Permission denied`);
        await chmod(`/proc/self/fd/${handle.fd}`, mode);
      } finally {
        await handle.close();
      }
    });
    return clientPath;
  }

  /** A unique file name for STOU. */
  getUniqueName(): string {
    return `stou-${randomUUID()}`;
  }

  /** One listing entry: plain entries in one lstat, links shown only when they stay inside. */
  private async listEntry(dir: HeldDirectory, name: string): Promise<NamedStats | undefined> {
    try {
      const stats = await lstat(dir.at(name));
      const shown = name.replace(CONTROL_CHARACTERS, '?');
      if (!stats.isSymbolicLink()) return named(stats, shown);
      const target = await this.resolver.locate(posix.join(dir.clientPath, name), { followFinal: true });
      await target.dir.close();
      return target.lstats ? named(target.lstats, shown) : undefined;
    } catch {
      return undefined; // vanished meanwhile, or a link leading out of the jail: not shown
    }
  }

  /** Opens a regular file for reading, refusing anything else without blocking on it. */
  private async openRegular(clientPath: string): Promise<{ file: FileHandle; stats: Stats }> {
    return this.using(clientPath, true, async (at) => {
      const found = existing(at, clientPath);
      if (found.isDirectory()) throw new FsError(550, `${clientPath}: Is a directory`);
      if (!found.isFile()) throw notRegular(clientPath);
      const file = await open(at.dir.at(at.name), READ_FLAGS);
      const stats = await file.stat();
      if (!stats.isFile()) {
        await file.close();
        throw notRegular(clientPath);
      }
      return { file, stats };
    });
  }

  /**
   * Locates `clientPath`, runs `action` with its parent held open, closes the parent, and
   * turns any error into a client-safe FsError about `clientPath`.
   */
  private async using<T>(clientPath: string, followFinal: boolean, action: (at: Located) => Promise<T>): Promise<T> {
    const at = await this.resolver.locate(clientPath, { followFinal });
    try {
      return await action(at);
    } catch (err) {
      throw toFsError(err, clientPath);
    } finally {
      await at.dir.close();
    }
  }

  private assertWritable(clientPath: string): void {
    if (this.policy.readOnly) throw new FsError(550, `${clientPath}: Permission denied (read-only account)`);
  }
}

/** The entry's stats (of the link's target when followed); 550 when it does not exist. */
function existing(at: Located, clientPath: string): Stats {
  if (!at.lstats) throw new FsError(550, `${clientPath}: No such file or directory`);
  return at.lstats;
}

function notRegular(clientPath: string): FsError {
  return new FsError(550, `${clientPath}: Not a regular file (only files and directories can be transferred)`);
}

function named(stats: Stats, name: string): NamedStats {
  return Object.assign(stats, { name });
}

