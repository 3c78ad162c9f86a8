import { randomUUID } from 'node:crypto';
import type { Stats } from 'node:fs';
import { chmod, mkdir, open, readdir, rename, rmdir, stat, unlink, type FileHandle } from 'node:fs/promises';
import { posix } from 'node:path';
import { AtomicUpload, type UploadMode } from './AtomicUpload.js';
import { FsError, toFsError } from './FsError.js';
import { isTempName } from './hiddenTemp.js';
import { mapConcurrent } from '../util/mapConcurrent.js';
import type { PathJail } from './pathJail.js';

/** Entries stat'ed at once while listing a directory. */
const LIST_CONCURRENCY = 32;

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
 * PathJail, every change honours the read-only policy (enforced here, so no command alias
 * can bypass it), uploads are atomic, upload temporaries are invisible, and every error
 * is an FsError whose message names only client paths.
 */
export class JailedFileSystem {
  private cwd = '/';

  constructor(
    private readonly jail: PathJail,
    private readonly policy: FileSystemPolicy,
  ) {}

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
    const entry = await this.jail.existing(clientPath);
    return named(await this.statOf(entry.realPath, clientPath), posix.basename(clientPath) || '/');
  }

  /** Entries of a directory, without upload temporaries or links that leave the jail. */
  async list(dir: string | null | undefined): Promise<NamedStats[]> {
    const clientPath = this.resolveClientPath(dir ?? '.');
    const entry = await this.jail.existing(clientPath);
    let names: string[];
    try {
      names = await readdir(entry.realPath);
    } catch (err) {
      throw toFsError(err, clientPath);
    }
    const visible = names.filter((name) => !isTempName(name)).sort();
    const listed = await mapConcurrent(visible, LIST_CONCURRENCY, async (name) => {
      try {
        const child = await this.jail.child(entry.realPath, posix.join(clientPath, name), name);
        if (!child.lstats || !child.realPath) return undefined; // vanished meanwhile
        return named(child.lstats.isSymbolicLink() ? await stat(child.realPath) : child.lstats, name);
      } catch {
        return undefined; // a symlink leading out of the jail (or dangling): not shown
      }
    });
    return listed.filter((e): e is NamedStats => e !== undefined);
  }

  /** Changes the current directory; returns the new client path. */
  async chdir(dir: string | null | undefined): Promise<string> {
    const clientPath = this.resolveClientPath(dir ?? '/');
    const entry = await this.jail.existing(clientPath);
    const stats = await this.statOf(entry.realPath, clientPath);
    if (!stats.isDirectory()) throw new FsError(550, `${clientPath}: Not a directory`);
    this.cwd = clientPath;
    return clientPath;
  }

  /**
   * Opens an atomic upload to `name` (STOR, APPE, REST+STOR). The returned stream renames
   * the temporary over the target when it finishes, and discards it when destroyed.
   */
  async openUpload(name: string | null | undefined, mode: UploadMode = {}): Promise<{ stream: AtomicUpload; clientPath: string }> {
    const clientPath = this.resolveClientPath(name);
    this.assertWritable(clientPath);
    if (clientPath === '/') throw new FsError(553, '/: Is a directory');
    const entry = await this.jail.entry(clientPath);
    let existingSize: number | undefined;
    if (entry.realPath) {
      const stats = await this.statOf(entry.realPath, clientPath);
      if (stats.isDirectory()) throw new FsError(553, `${clientPath}: Is a directory`);
      existingSize = stats.size;
    }
    try {
      return { stream: await AtomicUpload.open(entry.fsPath, existingSize, mode), clientPath };
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
    const entry = await this.jail.existing(clientPath);
    const stats = await this.statOf(entry.realPath, clientPath);
    if (!stats.isFile()) throw new FsError(550, `${clientPath}: Not a regular file`);
    if (start !== undefined && start > stats.size) {
      throw new FsError(554, `Restart offset ${start} is beyond the end of the file (${stats.size} bytes)`);
    }
    const file = await open(entry.realPath, 'r').catch((err: unknown) => {
      throw toFsError(err, clientPath);
    });
    return { file, clientPath, size: stats.size - (start ?? 0) };
  }

  /** Reads at most `limit` bytes from the start of a regular file. */
  async readHead(name: string | null | undefined, limit: number): Promise<FileHead> {
    const clientPath = this.resolveClientPath(name);
    const entry = await this.jail.existing(clientPath);
    const stats = await this.statOf(entry.realPath, clientPath);
    if (stats.isDirectory()) throw new FsError(550, `${clientPath}: Is a directory`);
    if (!stats.isFile()) throw new FsError(550, `${clientPath}: Not a regular file`);
    try {
      const handle = await open(entry.realPath, 'r');
      try {
        const size = (await handle.stat()).size;
        const buffer = Buffer.alloc(Math.min(limit, size));
        let filled = 0;
        while (filled < buffer.length) {
          const { bytesRead } = await handle.read(buffer, filled, buffer.length - filled, filled);
          if (bytesRead === 0) break;
          filled += bytesRead;
        }
        return { clientPath, head: buffer.subarray(0, filled), size };
      } finally {
        await handle.close();
      }
    } catch (err) {
      throw toFsError(err, clientPath);
    }
  }

  /** Deletes a file (DELE). Directories are refused: use RMD. */
  async delete(name: string | null | undefined): Promise<string> {
    const clientPath = this.resolveClientPath(name);
    this.assertWritable(clientPath);
    const entry = await this.jail.existing(clientPath);
    if (entry.lstats.isDirectory()) throw new FsError(550, `${clientPath}: Is a directory (use RMD)`);
    await unlink(entry.fsPath).catch((err: unknown) => {
      throw toFsError(err, clientPath);
    });
    return clientPath;
  }

  /** Removes an empty directory (RMD/XRMD). */
  async removeDirectory(name: string | null | undefined): Promise<string> {
    const clientPath = this.resolveClientPath(name);
    this.assertWritable(clientPath);
    if (clientPath === '/') throw new FsError(550, '/: Cannot remove the home directory');
    const entry = await this.jail.existing(clientPath);
    if (!entry.lstats.isDirectory()) throw new FsError(550, `${clientPath}: Not a directory`);
    const visible = (await readdir(entry.fsPath)).filter((n) => !isTempName(n));
    if (visible.length > 0) throw new FsError(550, `${clientPath}: Directory not empty`);
    await rmdir(entry.fsPath).catch((err: unknown) => {
      throw toFsError(err, clientPath);
    });
    return clientPath;
  }

  /** Creates one directory; returns its client path (for the 257 reply). */
  async mkdir(name: string | null | undefined): Promise<string> {
    const clientPath = this.resolveClientPath(name);
    this.assertWritable(clientPath);
    const entry = await this.jail.entry(clientPath);
    if (entry.lstats) throw new FsError(550, `${clientPath}: Already exists`);
    await mkdir(entry.fsPath, { mode: 0o750 }).catch((err: unknown) => {
      throw toFsError(err, clientPath);
    });
    return clientPath;
  }

  /** Renames a file or directory (RNFR/RNTO); replaces an existing target file. */
  async rename(from: string, to: string): Promise<string> {
    const fromPath = this.resolveClientPath(from);
    const toPath = this.resolveClientPath(to);
    this.assertWritable(fromPath);
    if (fromPath === '/') throw new FsError(550, '/: Cannot rename the home directory');
    const source = await this.jail.existing(fromPath);
    const target = await this.jail.entry(toPath);
    if (target.lstats?.isDirectory() && !source.lstats.isDirectory()) throw new FsError(553, `${toPath}: Is a directory`);
    if (source.lstats.isDirectory() && (toPath === fromPath || toPath.startsWith(fromPath + '/'))) {
      throw new FsError(553, `${toPath}: Cannot move a directory into itself`);
    }
    await rename(source.fsPath, target.fsPath).catch((err: unknown) => {
      throw toFsError(err, toPath);
    });
    return toPath;
  }

  /** SITE CHMOD: permission bits only (no setuid, setgid or sticky). */
  async chmod(name: string | null | undefined, mode: number): Promise<string> {
    const clientPath = this.resolveClientPath(name);
    this.assertWritable(clientPath);
    if (!Number.isInteger(mode) || mode < 0 || mode > 0o777) throw new FsError(501, 'Mode must be octal permission bits from 000 to 777');
    const entry = await this.jail.existing(clientPath);
    await chmod(entry.realPath, mode).catch((err: unknown) => {
      throw toFsError(err, clientPath);
    });
    return clientPath;
  }

  /** A unique file name for STOU. */
  getUniqueName(): string {
    return `stou-${randomUUID()}`;
  }

  private assertWritable(clientPath: string): void {
    if (this.policy.readOnly) throw new FsError(550, `${clientPath}: Permission denied (read-only account)`);
  }

  private async statOf(realPath: string, clientPath: string): Promise<Stats> {
    try {
      return await stat(realPath);
    } catch (err) {
      throw toFsError(err, clientPath);
    }
  }
}

function named(stats: Stats, name: string): NamedStats {
  return Object.assign(stats, { name });
}
