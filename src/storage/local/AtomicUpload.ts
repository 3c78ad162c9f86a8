import { constants, type Stats } from 'node:fs';
import { open, rename, unlink, type FileHandle } from 'node:fs/promises';
import { Writable } from 'node:stream';
import { COPY_IN_MAX, StorageError, type WriteSink } from '../StorageBackend.js';
import { newJournalName, newTempName, type AppendJournal } from './hiddenTemp.js';
import type { HeldDirectory } from './JailResolver.js';
import { StagedFileWriter } from './StagedFileWriter.js';

/** How an upload relates to the existing target. */
export interface UploadMode {
  /** APPE: start from the target's current content (if any) and add to its end. */
  append?: boolean;
  /** REST n + STOR: keep the target's first n bytes, replace the rest with the upload. */
  resumeAt?: number;
  /**
   * Make the upload durable before publishing it (fdatasync of the file; for an append, of
   * its undo journal and the directory too). Default true; false keeps every atomicity
   * guarantee against other readers and against errors, but a crash may lose an upload the
   * client was told had succeeded.
   */
  fsync?: boolean;
}

/** Opening an existing file to read or write: never follow a link, never block on a FIFO. */
const EXISTING_FILE = constants.O_NOFOLLOW | constants.O_NONBLOCK;
/** Bytes copied at a time when a resumed upload keeps the first part of a file. */
const COPY_CHUNK = 1 << 20;
/**
 * With fsync, a durable upload starts flushing to disk each time this much more was written,
 * while it goes on receiving (one flush at a time). Without it the kernel starts writing only
 * once the page cache's dirty threshold is reached (gigabytes on a large machine), and the
 * fsync at the end waits for the whole file: a 1 GiB upload took receive time + flush time.
 * A/B, 1 GiB with curl, ten alternating rounds: median 2.43 s before, 1.31 s with this
 * (`dd conv=fsync` of the same file: median 0.74 s).
 */
export const EARLY_FLUSH_BYTES = 32 << 20;

/** Files (by device and inode) with an append in place running in this process. */
const appending = new Set<string>();

/** Where the bytes go and how the upload ends, for one of the three upload kinds. */
interface UploadTarget {
  handle: FileHandle;
  /** Makes the upload durable and visible. */
  commit(): Promise<void>;
  /** Leaves the target exactly as it was before the upload. */
  discard(): Promise<void>;
}

/**
 * The local-disk WriteSink: a writable stream that uploads atomically. New content goes to a hidden temporary in the
 * target's directory, fsynced (unless mode.fsync is false) and renamed over the target only when the stream finishes;
 * an append (APPE, or REST at the current end + STOR) writes in place after journalling the
 * old size, so its cost is the appended bytes, not the file's size. Destroying the stream
 * (error, abort, shutdown) removes the temporary or truncates the append back, leaving the
 * target as it was. The directory is held by descriptor for the whole upload, so renaming
 * or removing it meanwhile never leaves a temporary behind. 'finish' fires only after the
 * commit, which the caller requests with commit() after the stream has finished; abort()
 * (or destroying the stream) discards.
 */
export class AtomicUpload extends Writable implements WriteSink {
  private committed = false;
  /** Bytes received from the client (not counting content kept from the old file). */
  bytesReceived = 0;
  /** Early flushes started so far (see EARLY_FLUSH_BYTES). */
  earlyFlushes = 0;
  /** Bytes written since the last early flush started. */
  private unflushed = 0;
  /** The early flush running, if any. */
  private flushing: Promise<void> | undefined;
  /** What an early flush failed with: the upload fails with it. */
  private flushError: unknown;
  /** Copies the received chunks and writes them to the file in large writes. */
  private readonly writer: StagedFileWriter;

  private constructor(
    private readonly target: UploadTarget,
    private readonly dir: HeldDirectory,
    startPosition: number,
    /** Durable upload: flush early as it grows (see EARLY_FLUSH_BYTES). */
    private readonly sync: boolean,
  ) {
    // No autoDestroy: finishing the stream must not discard it before commit() is called.
    // The writer stages what arrives; the stream itself queues at most one more socket read.
    super({ highWaterMark: 64 << 10, decodeStrings: true, autoDestroy: false });
    this.writer = new StagedFileWriter(target.handle, startPosition, (bytes) => this.written(bytes));
  }

  /**
   * Opens an upload to `name` in `dir` (the upload takes ownership of `dir` and closes it).
   * `existing` is the lstat of the target (a regular file) or undefined when it does not
   * exist.
   */
  static async open(dir: HeldDirectory, name: string, clientPath: string, existing: Stats | undefined, mode: UploadMode = {}): Promise<AtomicUpload> {
    try {
      const resumeAt = mode.resumeAt ?? 0;
      if (resumeAt > 0 && (existing === undefined || resumeAt > existing.size)) {
        throw new StorageError('bad-offset', `Restart offset ${resumeAt} is beyond the end of the file (${existing?.size ?? 0} bytes)`);
      }
      const sync = mode.fsync ?? true;
      if (existing && (mode.append || (resumeAt > 0 && resumeAt === existing.size))) {
        const target = await appendInPlace(dir, name, clientPath, existing, sync);
        return new AtomicUpload(target, dir, existing.size, sync);
      }
      const target = await replaceViaTemp(dir, name, clientPath, existing && resumeAt > 0 ? resumeAt : 0, sync);
      return new AtomicUpload(target, dir, existing && resumeAt > 0 ? resumeAt : 0, sync);
    } catch (err) {
      await dir.close();
      throw err;
    }
  }

  /** Copies bytes in at once (WriteSink.copyIn): see StagedFileWriter. */
  copyIn(bytes: Buffer): boolean {
    if (this.flushError !== undefined) throw this.flushError;
    this.bytesReceived += bytes.length;
    return this.writer.copyIn(bytes);
  }

  /** WriteSink.room: see StagedFileWriter. */
  room(): Promise<void> {
    return this.writer.room();
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.writeChunk(chunk).then(() => callback(), callback);
  }

  /** A chunk from the stream, copied in COPY_IN_MAX pieces as room allows. */
  private async writeChunk(chunk: Buffer): Promise<void> {
    for (let at = 0; at < chunk.length; at += COPY_IN_MAX) {
      if (!this.writer.hasRoom) await this.writer.room();
      this.copyIn(chunk.subarray(at, at + COPY_IN_MAX));
    }
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.writer
      .flush()
      .then(() => this.writer.release())
      .then(() => callback(), callback);
  }

  /** After each write to the file: starts an early flush when enough was written since the last. */
  private written(bytes: number): void {
    this.unflushed += bytes;
    if (this.sync && this.unflushed >= EARLY_FLUSH_BYTES && this.flushing === undefined) this.startEarlyFlush();
  }

  /** Starts writing what was received so far to disk, without waiting for it. */
  private startEarlyFlush(): void {
    this.unflushed = 0;
    this.earlyFlushes++;
    this.flushing = this.target.handle.datasync().then(
      () => {
        this.flushing = undefined;
      },
      (err: unknown) => {
        this.flushError ??= err;
        this.flushing = undefined;
      },
    );
  }

  /** Waits for a running early flush; throws what an early flush failed with. */
  private async settleEarlyFlush(): Promise<void> {
    await this.flushing;
    if (this.flushError !== undefined) throw this.flushError;
  }

  /** The stream the upload's bytes are written into (this object). */
  get stream(): Writable {
    return this;
  }

  /** Bytes written so far (WriteSink). */
  get bytesWritten(): number {
    return this.bytesReceived;
  }

  /** Publishes the upload, durably; the stream must have finished. */
  async commit(): Promise<void> {
    if (!this.writableFinished) throw new StorageError('io', 'The upload was not finished before its commit');
    if (this.destroyed) throw new StorageError('io', 'The upload was discarded before its commit');
    try {
      await this.settleEarlyFlush();
      await this.target.commit();
      this.committed = true;
    } finally {
      if (!this.committed) await this.abort();
    }
    this.destroy(); // releases the stream; _destroy keeps a committed upload
  }

  /** Discards the upload and waits until the temporary is gone (or the append undone). */
  async abort(): Promise<void> {
    if (this.committed) return;
    if (!this.destroyed) this.destroy();
    if (!this.closed) await new Promise<void>((resolve) => this.once('close', () => resolve()));
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    if (this.committed) {
      this.dir.close().then(() => callback(error), () => callback(error));
      return;
    }
    this.writer
      .release()
      .then(() => this.settleEarlyFlush())
      .catch(() => undefined)
      .then(() => this.target.discard())
      .catch(() => undefined)
      .then(() => this.dir.close())
      .then(
        () => callback(error),
        () => callback(error),
      );
  }
}

/** New content: a hidden temporary renamed over the target at the end. */
async function replaceViaTemp(dir: HeldDirectory, name: string, clientPath: string, keepBytes: number, sync: boolean): Promise<UploadTarget> {
  const temp = newTempName();
  const handle = await open(dir.at(temp), constants.O_RDWR | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o640);
  const discard = async () => {
    await handle.close().catch(() => undefined);
    await unlink(dir.at(temp)).catch(() => undefined); // gone already if the directory was removed
  };
  try {
    if (keepBytes > 0) await copyHead(dir, name, clientPath, handle, keepBytes);
  } catch (err) {
    await discard();
    throw err;
  }
  return {
    handle,
    async commit() {
      if (sync) await handle.datasync();
      await handle.close();
      await rename(dir.at(temp), dir.at(name));
      // The rename is a change of the directory: durable only once the directory is synced
      // (else a crash right after the 226 could leave the old version, or nothing, there).
      if (sync) await syncDirectory(dir);
    },
    discard,
  };
}

/** REST n < size + STOR: copies the target's first `bytes` bytes into the temporary. */
async function copyHead(dir: HeldDirectory, name: string, clientPath: string, into: FileHandle, bytes: number): Promise<void> {
  const source = await open(dir.at(name), constants.O_RDONLY | EXISTING_FILE);
  try {
    if (!(await source.stat()).isFile()) throw new StorageError('not-a-file', `${clientPath}: Not a regular file`);
    const buffer = Buffer.allocUnsafe(Math.min(COPY_CHUNK, bytes));
    for (let done = 0; done < bytes; ) {
      const { bytesRead } = await source.read(buffer, 0, Math.min(buffer.length, bytes - done), done);
      if (bytesRead === 0) throw new StorageError('bad-offset', 'The file shrank while resuming; start the upload again');
      await into.write(buffer, 0, bytesRead, done);
      done += bytesRead;
    }
  } finally {
    await source.close();
  }
}

/**
 * An append in place: the old size is journalled (and the journal made durable) before
 * the first byte is written; an aborted append truncates back, and the startup sweep
 * truncates back an append a crash interrupted. Readers may see the file grow meanwhile,
 * as with any server that appends in place.
 */
async function appendInPlace(dir: HeldDirectory, name: string, clientPath: string, existing: Stats, sync: boolean): Promise<UploadTarget> {
  const handle = await open(dir.at(name), constants.O_WRONLY | EXISTING_FILE);
  let key: string | undefined;
  let journal: string | undefined;
  try {
    const stats = await handle.stat();
    if (!stats.isFile() || stats.ino !== existing.ino) throw new StorageError('not-a-file', `${clientPath}: Not a regular file`);
    key = `${stats.dev}:${stats.ino}`;
    if (appending.has(key)) {
      key = undefined;
      throw new StorageError('busy', `${clientPath}: Another upload is appending to this file; try again when it has finished`);
    }
    appending.add(key);
    journal = newJournalName();
    const record: AppendJournal = { target: name, size: stats.size, ino: stats.ino };
    const j = await open(dir.at(journal), constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
    try {
      await j.writeFile(JSON.stringify(record));
      if (sync) await j.datasync();
    } finally {
      await j.close();
    }
    if (sync) await syncDirectory(dir);
  } catch (err) {
    if (key) appending.delete(key);
    if (journal) await unlink(dir.at(journal)).catch(() => undefined);
    await handle.close().catch(() => undefined);
    throw err;
  }
  const release = async () => {
    appending.delete(key);
    await unlink(dir.at(journal)).catch(() => undefined);
  };
  return {
    handle,
    async commit() {
      if (sync) await handle.datasync();
      await handle.close();
      await release();
    },
    async discard() {
      try {
        await handle.truncate(existing.size);
        if (sync) await handle.datasync();
      } finally {
        await handle.close().catch(() => undefined);
        await release();
      }
    },
  };
}

/** Makes a new directory entry (the journal) durable. */
async function syncDirectory(dir: HeldDirectory): Promise<void> {
  const handle = await open(dir.self(), constants.O_RDONLY | constants.O_DIRECTORY);
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
