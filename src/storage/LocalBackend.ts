import { accessSync, constants, fstatSync, openSync, read, type Stats } from 'node:fs';
import { chmod, lstat, mkdir, open, readdir, rename, rmdir, unlink, utimes } from 'node:fs/promises';
import type { Socket } from 'node:net';
import { join, posix } from 'node:path';
import { Readable } from 'node:stream';
import { mapConcurrent } from '../util/mapConcurrent.js';
import { AtomicUpload } from './local/AtomicUpload.js';
import { fromErrno } from './local/errnoErrors.js';
import { removeStaleTemps } from './local/hiddenTemp.js';
import { closeQuietly, O_PATH, type HeldDirectory, type JailResolver, type Located } from './local/JailResolver.js';
import { PathJail } from './local/pathJail.js';
import { sendFile } from './local/sendFile.js';
import { measureJailedUsage } from './local/usageWalk.js';
import { prepareStorageRoot } from './local/storageRoot.js';
import { isReservedName } from './reservedNames.js';
import {
  StorageError,
  type ReadHandle,
  type StorageBackend,
  type StorageCapabilities,
  type StorageEntry,
  type StorageUsage,
  type UserStorage,
  type WriteMode,
  type WriteSink,
} from './StorageBackend.js';

/** Entries stat'ed at once while listing a directory. */
const LIST_CONCURRENCY = 32;
/** Opening a file to read: never follow a link, never block (a FIFO would hold a thread). */
const READ_FLAGS = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK;

/** Settings of the local-disk backend. */
export interface LocalBackendOptions {
  /** The storage root: each user's folder is `<root>/<username>`. */
  root: string;
  /** Follow symbolic links that stay inside a user's folder (refuse every link when false). */
  followLinks?: boolean;
  /** fsync each upload (and an append's undo journal) before publishing it; default true. */
  fsync?: boolean;
}

/**
 * Storage on a local disk folder. Each user's folder is jailed: every path is reached
 * race-free through a JailResolver (directory descriptors, O_NOFOLLOW, links followed only
 * inside), only regular files and directories are ever opened (a FIFO, socket or device is
 * refused without blocking), uploads are atomic (temporary + fsync unless --fsync never + rename) and appends
 * happen in place with an undo journal, and every error is a StorageError whose message
 * names only client paths.
 */
export class LocalBackend implements StorageBackend {
  readonly capabilities: StorageCapabilities = { atomicReplace: true, resume: true, append: true, chmod: true, renameDirectory: true, setModificationTime: true };
  private root = '';

  constructor(private readonly options: LocalBackendOptions) {}

  get description(): string {
    return `local disk ${this.root || this.options.root}`;
  }

  /** Creates the storage root if needed, then removes temporaries and undoes appends a crash left. */
  async start(log?: (message: string, fields: Record<string, unknown>) => void): Promise<void> {
    this.root = await prepareStorageRoot(this.options.root);
    const stale = await removeStaleTemps(this.root);
    if (stale.removed > 0) log?.('Removed stale upload temporaries', { count: stale.removed, appendsUndone: stale.undone });
  }

  homeLocation(user: string): string {
    return join(this.root || this.options.root, user);
  }

  async openHome(user: string): Promise<UserStorage> {
    const home = this.homeLocation(user);
    try {
      // The storage root is a real path (see start()) and a user name one path segment.
      const jail = await PathJail.open(home, { followLinks: this.options.followLinks ?? true, parentIsReal: this.root !== '' });
      // Synchronous like the jail's walk (see JailResolver): microseconds, at every login.
      accessSync(jail.root, constants.R_OK | constants.X_OK);
      return new LocalUserStorage(jail, { fsync: this.options.fsync ?? true });
    } catch (err) {
      const errno = (err as NodeJS.ErrnoException).code ?? 'unknown';
      throw new StorageError('unavailable', `Home folder unavailable (${errno})`, { cause: err });
    }
  }

  async close(): Promise<void> {}
}

/** One user's folder on local disk. */
export class LocalUserStorage implements UserStorage {
  private readonly resolver: JailResolver;

  constructor(
    jail: PathJail,
    private readonly uploads: { fsync: boolean } = { fsync: true },
  ) {
    this.resolver = jail.resolver;
  }

  async stat(path: string): Promise<StorageEntry> {
    const stats = await this.using(path, true, async (at) => existing(at, path));
    return entryOf(stats, posix.basename(path) || '/');
  }

  async list(path: string): Promise<StorageEntry[]> {
    const held = await this.resolver.openDirectory(path);
    try {
      let names: string[];
      try {
        names = await readdir(held.self());
      } catch (err) {
        throw fromErrno(err, path);
      }
      const visible = names.filter((name) => !isReservedName(name)).sort();
      const listed = await mapConcurrent(visible, LIST_CONCURRENCY, (name) => this.listEntry(held, name));
      return listed.filter((e): e is StorageEntry => e !== undefined);
    } finally {
      await held.close();
    }
  }

  async openWrite(path: string, mode: WriteMode = {}): Promise<WriteSink> {
    if (path === '/') throw new StorageError('invalid-target', '/: Is a directory');
    const at = await this.resolver.locate(path, { followFinal: true });
    try {
      if (at.lstats?.isDirectory()) throw new StorageError('invalid-target', `${path}: Is a directory`);
      if (at.lstats && !at.lstats.isFile()) throw notRegular(path);
    } catch (err) {
      await at.dir.close();
      throw err;
    }
    try {
      return await AtomicUpload.open(at.dir, at.name, path, at.lstats, { ...mode, fsync: this.uploads.fsync });
    } catch (err) {
      throw fromErrno(err, path);
    }
  }

  async openRead(path: string, { offset = 0, length }: { offset?: number; length?: number } = {}): Promise<ReadHandle> {
    const { file, stats } = await this.openRegular(path);
    if (offset > stats.size) {
      closeQuietly(file);
      throw new StorageError('bad-offset', `Restart offset ${offset} is beyond the end of the file (${stats.size} bytes)`);
    }
    const size = Math.min(stats.size - offset, length ?? Infinity);
    return new LocalReadHandle(file, offset, size, stats.size);
  }

  async delete(path: string): Promise<void> {
    await this.using(path, false, async (at) => {
      const stats = existing(at, path);
      if (stats.isDirectory()) throw new StorageError('is-a-directory', `${path}: Is a directory (use RMD)`);
      await this.resolver.assertLinkInside(at, path);
      await unlink(at.dir.at(at.name));
    });
  }

  /**
   * Removes a directory that is empty for the client: reserved entries (upload
   * temporaries, journals, reserved names) do not count and are removed with it.
   */
  async rmdir(path: string): Promise<void> {
    if (path === '/') throw new StorageError('denied', '/: Cannot remove the home directory');
    await this.using(path, false, async (at) => {
      if (!existing(at, path).isDirectory()) throw new StorageError('not-a-directory', `${path}: Not a directory`);
      const handle = await open(at.dir.at(at.name), constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW);
      try {
        const inside = `/proc/self/fd/${handle.fd}`;
        const names = await readdir(inside);
        if (names.some((n) => !isReservedName(n))) throw new StorageError('not-empty', `${path}: Directory not empty`);
        for (const n of names) {
          if ((await lstat(`${inside}/${n}`)).isDirectory()) throw new StorageError('not-empty', `${path}: Directory not empty`);
          await unlink(`${inside}/${n}`).catch(() => undefined);
        }
      } finally {
        await handle.close();
      }
      await rmdir(at.dir.at(at.name));
    });
  }

  async mkdir(path: string): Promise<void> {
    await this.using(path, false, async (at) => {
      if (at.lstats) throw new StorageError('exists', `${path}: Already exists`);
      await mkdir(at.dir.at(at.name), { mode: 0o750 });
    });
  }

  async rename(fromPath: string, toPath: string): Promise<void> {
    if (fromPath === '/') throw new StorageError('denied', '/: Cannot rename the home directory');
    await this.using(fromPath, false, async (source) => {
      const sourceStats = existing(source, fromPath);
      await this.resolver.assertLinkInside(source, fromPath);
      await this.using(toPath, false, async (target) => {
        await this.resolver.assertLinkInside(target, toPath);
        if (target.lstats?.isDirectory() && !sourceStats.isDirectory()) throw new StorageError('invalid-target', `${toPath}: Is a directory`);
        const sourceReal = posix.join(source.dir.clientPath, source.name);
        const targetReal = posix.join(target.dir.clientPath, target.name);
        if (sourceStats.isDirectory() && (targetReal === sourceReal || targetReal.startsWith(`${sourceReal}/`))) {
          throw new StorageError('invalid-target', `${toPath}: Cannot move a directory into itself`);
        }
        await rename(source.dir.at(source.name), target.dir.at(target.name)).catch((err: unknown) => {
          throw fromErrno(err, toPath);
        });
      });
    });
  }

  async chmod(path: string, mode: number): Promise<void> {
    if (!Number.isInteger(mode) || mode < 0 || mode > 0o777) throw new StorageError('invalid-argument', 'Mode must be octal permission bits from 000 to 777');
    await this.using(path, true, async (at) => {
      existing(at, path);
      // O_PATH + O_NOFOLLOW pins the entry itself; chmod through its descriptor cannot be
      // redirected by a link swapped in meanwhile (a link there is refused).
      const handle = await open(at.dir.at(at.name), O_PATH | constants.O_NOFOLLOW);
      try {
        if ((await handle.stat()).isSymbolicLink()) throw new StorageError('denied', `${path}: Permission denied`);
        await chmod(`/proc/self/fd/${handle.fd}`, mode);
      } finally {
        await handle.close();
      }
    });
  }

  async setModificationTime(path: string, mtime: Date): Promise<void> {
    await this.using(path, true, async (at) => {
      if (!existing(at, path).isFile()) throw notRegular(path);
      // As for chmod: through an O_PATH descriptor of the entry itself, never by name.
      const handle = await open(at.dir.at(at.name), O_PATH | constants.O_NOFOLLOW);
      try {
        const stats = await handle.stat();
        if (!stats.isFile()) throw notRegular(path);
        await utimes(`/proc/self/fd/${handle.fd}`, stats.atime, mtime);
      } finally {
        await handle.close();
      }
    });
  }

  measureUsage(): Promise<StorageUsage> {
    return measureJailedUsage(this.resolver);
  }

  /** One listing entry: plain entries in one lstat, links shown only when they stay inside. */
  private async listEntry(dir: HeldDirectory, name: string): Promise<StorageEntry | undefined> {
    try {
      const stats = await lstat(dir.at(name));
      if (!stats.isSymbolicLink()) return entryOf(stats, name);
      const target = await this.resolver.locate(posix.join(dir.clientPath, name), { followFinal: true });
      await target.dir.close();
      return target.lstats ? entryOf(target.lstats, name) : undefined;
    } catch {
      return undefined; // vanished meanwhile, or a link leading out of the jail: not shown
    }
  }

  /**
   * Opens a regular file for reading (a descriptor), refusing anything else without
   * blocking on it. The open and fstat run on the event loop like the jail's walk (see
   * JailResolver); the file's data is read on the thread pool.
   */
  private async openRegular(path: string): Promise<{ file: number; stats: Stats }> {
    return this.using(path, true, async (at) => {
      const found = existing(at, path);
      if (found.isDirectory()) throw new StorageError('is-a-directory', `${path}: Is a directory`);
      if (!found.isFile()) throw notRegular(path);
      const file = openSync(at.dir.at(at.name), READ_FLAGS);
      try {
        const stats = fstatSync(file);
        if (!stats.isFile()) throw notRegular(path);
        return { file, stats };
      } catch (err) {
        closeQuietly(file);
        throw err;
      }
    });
  }

  /**
   * Locates `path`, runs `action` with its parent held open, closes the parent, and turns
   * any error into a client-safe StorageError about `path`.
   */
  private async using<T>(path: string, followFinal: boolean, action: (at: Located) => Promise<T>): Promise<T> {
    const at = await this.resolver.locate(path, { followFinal });
    try {
      return await action(at);
    } catch (err) {
      throw fromErrno(err, path);
    } finally {
      await at.dir.close();
    }
  }
}

/**
 * An open regular file. Binary downloads use sendTo (two reused buffers, the next read
 * overlapping the socket write); ASCII mode and other consumers use stream().
 */
class LocalReadHandle implements ReadHandle {
  private closed = false;
  /** Streams made by stream(): close() waits for their reads to end before closing the descriptor. */
  private readonly streams = new Set<Readable>();

  constructor(
    /** The open file's descriptor (closed by close()). */
    private readonly file: number,
    private readonly offset: number,
    readonly size: number,
    readonly fileSize: number,
  ) {}

  stream(): Readable {
    if (this.size === 0) return Readable.from([]);
    const stream = descriptorStream(this.file, this.offset, this.offset + this.size);
    this.streams.add(stream);
    stream.once('close', () => this.streams.delete(stream));
    return stream;
  }

  sendTo(socket: Socket): Promise<void> {
    return sendFile(this.file, socket, this.offset, this.size);
  }

  /**
   * Closes the descriptor, after any stream's read in flight has ended: a descriptor closed
   * under a pending read could be reused by the next open (descriptorStream reports
   * 'close' only once its read is done).
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all(
      [...this.streams].map(
        (stream) =>
          new Promise<void>((resolve) => {
            stream.once('close', () => resolve());
            stream.destroy();
          }),
      ),
    );
    closeQuietly(this.file);
  }
}

/**
 * Reads bytes [start, end) of an open descriptor as a stream, without ever closing it.
 * Node's fs read stream closes the descriptor when destroyed (even with autoClose: false),
 * so a consumer stopping early (SITE VIEW reads only the head) would close it under the
 * handle, which closes it again later: possibly another file's, reused meanwhile. Destroying
 * this stream waits for its read in flight, so 'close' means the descriptor is idle.
 */
function descriptorStream(fd: number, start: number, end: number): Readable {
  const CHUNK = 1 << 19;
  let position = start;
  let inFlight: Promise<void> | undefined;
  return new Readable({
    highWaterMark: CHUNK,
    read() {
      const length = Math.min(CHUNK, end - position);
      if (length <= 0) {
        this.push(null);
        return;
      }
      const buffer = Buffer.allocUnsafe(length);
      inFlight = new Promise<void>((done) => {
        read(fd, buffer, 0, length, position, (err, bytesRead) => {
          inFlight = undefined;
          done();
          if (this.destroyed) return;
          if (err) return void this.destroy(err);
          if (bytesRead === 0) return void this.push(null); // the file shrank: end here
          position += bytesRead;
          this.push(bytesRead === length ? buffer : buffer.subarray(0, bytesRead));
        });
      });
    },
    destroy(err, callback) {
      if (inFlight) void inFlight.then(() => callback(err));
      else callback(err);
    },
  });
}

/** The entry's stats (of the link's target when followed); not-found when it does not exist. */
function existing(at: Located, path: string): Stats {
  if (!at.lstats) throw new StorageError('not-found', `${path}: No such file or directory`);
  return at.lstats;
}

function notRegular(path: string): StorageError {
  return new StorageError('not-a-file', `${path}: Not a regular file (only files and directories can be transferred)`);
}

function entryOf(stats: Stats, name: string): StorageEntry {
  return { name, type: stats.isDirectory() ? 'directory' : stats.isFile() ? 'file' : 'other', size: stats.isDirectory() ? 0 : stats.size, mtime: stats.mtime, mode: stats.mode & 0o777 };
}
