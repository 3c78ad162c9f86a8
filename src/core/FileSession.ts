import { randomUUID } from 'node:crypto';
import type winston from 'winston';
import type { AuditAction, AuditEvent } from '../logging/AuditLog.js';
import { StorageError, type ReadHandle, type StorageCapabilities, type StorageEntry, type UserStorage, type WriteSink } from '../storage/StorageBackend.js';
import { UNSHAPED, type SessionBandwidth } from './Bandwidth.js';
import { resolveClientPath } from './clientPath.js';
import { limitedSink, QuotaPolicy, type QuotaStatus, type UploadTarget } from './QuotaPolicy.js';
import type { SessionAudit } from './SessionAudit.js';

/**
 * How the protocol describes an outcome in its own terms (reply code and client-safe
 * text), so the one audit record of each operation carries what the client was told.
 */
export type DescribeOutcome = (action: AuditAction, error?: unknown) => { code?: number; reason?: string };

/** TYPE A (`ascii`) or TYPE I (`binary`), as the audit record says it. */
export type TransferType = NonNullable<AuditEvent['transferType']>;

/** Everything a logged-in session needs. */
export interface FileSessionOptions {
  user: string;
  /** The login may not change anything. */
  readOnly: boolean;
  storage: UserStorage;
  capabilities: StorageCapabilities;
  audit: SessionAudit;
  log: winston.Logger;
  describe: DescribeOutcome;
  /** The user's quota and file-size limits (default: none). */
  quota?: QuotaPolicy;
  /** The user's rate shapers (default: none). */
  bandwidth?: SessionBandwidth;
}

/** A download in progress: send `handle`'s bytes, then call finish() exactly once. */
export interface Download {
  readonly path: string;
  readonly handle: ReadHandle;
  /** Closes the handle and records the outcome. */
  finish(outcome: { bytes: number; error?: unknown; aborted?: boolean }): Promise<void>;
}

/** An upload in progress: write into `sink.stream`, then complete() or fail(). */
export interface Upload {
  readonly path: string;
  readonly sink: WriteSink;
  /** Publishes the upload and records it; throws (after recording) if publishing failed. */
  complete(): Promise<void>;
  /** Discards the upload and records why. */
  fail(error: unknown, aborted?: boolean): Promise<void>;
}

/**
 * One logged-in session, independent of the protocol (SFTPGo's BaseConnection is the
 * model): it owns the user, the current directory, the policy (read-only), the storage
 * and the audit trail. Every operation goes through it: resolve the path (one set of
 * rules for every backend) → check the policy and the backend's capabilities → call the
 * storage → write one audit record (changes, previews and transfers; also on failure) →
 * return a typed result or throw a StorageError whose kind the protocol maps to a reply.
 * An unexpected error is logged once with its stack and the session id, and becomes an
 * 'io' StorageError (the client is told "local error", never the details).
 */
export class FileSession {
  private cwd = '/';
  readonly user: string;
  readonly readOnly: boolean;
  readonly capabilities: StorageCapabilities;
  /**
   * The shapers the protocol sends this session's bytes through: `up` for uploads, `down`
   * for downloads, listings and previews (shared with the user's other sessions).
   */
  readonly bandwidth: SessionBandwidth;
  private readonly quota: QuotaPolicy;

  constructor(private readonly options: FileSessionOptions) {
    this.user = options.user;
    this.readOnly = options.readOnly;
    this.capabilities = options.capabilities;
    this.bandwidth = options.bandwidth ?? UNSHAPED;
    this.quota = options.quota ?? new QuotaPolicy({});
  }

  /** The user's limits and, when they have a quota, what they use (SITE QUOTA, STAT). */
  async quotaStatus(): Promise<QuotaStatus> {
    try {
      return await this.quota.status();
    } catch (err) {
      throw this.unexpected(err, '/');
    }
  }

  /** Current directory as the client sees it. */
  currentDirectory(): string {
    return this.cwd;
  }

  /** Resolves client input against the current directory (no storage access). */
  resolve(input: string | null | undefined): string {
    return resolveClientPath(this.cwd, input);
  }

  /** The entry at `input` (default: the current directory). */
  async stat(input?: string | null): Promise<{ path: string; entry: StorageEntry }> {
    return this.query(input ?? '.', async (path) => ({ path, entry: await this.options.storage.stat(path) }));
  }

  /** A directory's entries, or the one entry when `input` is a file. */
  async list(input?: string | null): Promise<{ path: string; entry: StorageEntry; entries: StorageEntry[] }> {
    return this.query(input ?? '.', async (path) => {
      const entry = await this.options.storage.stat(path);
      const entries = entry.type === 'directory' ? await this.options.storage.list(path) : [entry];
      return { path, entry, entries };
    });
  }

  /**
   * The whole content of a file of at most `maxBytes` bytes (for answers computed from the
   * content, such as SIZE in TYPE A); a larger file is refused. No audit record: nothing
   * leaves the server.
   */
  async content(input: string | null | undefined, maxBytes: number): Promise<{ path: string; bytes: Buffer }> {
    return this.query(input, async (path) => {
      const handle = await this.options.storage.openRead(path, { offset: 0, length: maxBytes + 1 });
      try {
        if (handle.fileSize > maxBytes) throw new StorageError('unsupported', `${path}: Too large to compute (over ${maxBytes} bytes)`);
        return { path, bytes: await readAll(handle, maxBytes) };
      } finally {
        await handle.close();
      }
    });
  }

  /** Changes the current directory; returns the new path. */
  async chdir(input: string | null | undefined): Promise<string> {
    return this.query(input, async (path) => {
      const entry = await this.options.storage.stat(path);
      if (entry.type !== 'directory') throw new StorageError('not-a-directory', `${path}: Not a directory`);
      this.cwd = path;
      return path;
    });
  }

  /** Creates a directory; returns its path. */
  mkdir(input: string | null | undefined): Promise<string> {
    return this.change('mkdir', input, (path) => this.options.storage.mkdir(path));
  }

  /** Removes an empty directory; returns its path. */
  rmdir(input: string | null | undefined): Promise<string> {
    return this.change('rmdir', input, (path) => this.options.storage.rmdir(path));
  }

  /** Deletes a file; returns its path. Its bytes are given back to the quota. */
  delete(input: string | null | undefined): Promise<string> {
    return this.change('delete', input, async (path) => {
      const size = await this.trackedFileSize(path);
      await this.options.storage.delete(path);
      if (size !== undefined) await this.quota.removed(size);
    });
  }

  /** Sets permission bits; returns the path. */
  chmod(input: string | null | undefined, mode: number): Promise<string> {
    return this.change('chmod', input, (path) => {
      if (!this.capabilities.chmod) throw new StorageError('unsupported', 'Permission bits are not supported by this storage');
      return this.options.storage.chmod(path, mode);
    });
  }

  /** Sets a file's modification time (MFMT); returns the path. */
  setModificationTime(input: string | null | undefined, mtime: Date): Promise<string> {
    return this.change('mtime', input, (path) => {
      if (!this.capabilities.setModificationTime) throw new StorageError('unsupported', 'Setting modification times is not supported by this storage');
      return this.options.storage.setModificationTime(path, mtime);
    });
  }

  /** Renames `fromPath` (already resolved, e.g. by RNFR) to `toInput`; returns the new path. */
  async rename(fromPath: string, toInput: string | null | undefined): Promise<string> {
    const started = Date.now();
    let to = toInput ?? '';
    try {
      to = this.resolve(toInput);
      this.assertWritable(fromPath);
      const replaced = to === fromPath ? undefined : await this.trackedFileSize(to);
      await this.options.storage.rename(fromPath, to);
      if (replaced !== undefined) await this.quota.removed(replaced);
      this.record('rename', { path: fromPath, to, durationMs: Date.now() - started });
      return to;
    } catch (err) {
      const failure = this.unexpected(err, to || fromPath);
      this.record('rename', { path: fromPath, to, durationMs: Date.now() - started }, failure);
      throw failure;
    }
  }

  /** The first `limit` bytes of a file (SITE VIEW), read with one bounded request. */
  async preview(input: string | null | undefined, limit: number): Promise<{ path: string; head: Buffer; size: number }> {
    const started = Date.now();
    let path = input ?? '';
    try {
      path = this.resolve(input);
      const handle = await this.options.storage.openRead(path, { offset: 0, length: limit });
      try {
        const head = await readAll(handle, limit);
        this.record('view', { path, bytes: head.length, durationMs: Date.now() - started });
        return { path, head, size: handle.fileSize };
      } finally {
        await handle.close();
      }
    } catch (err) {
      const failure = this.unexpected(err, path);
      this.record('view', { path, durationMs: Date.now() - started }, failure);
      throw failure;
    }
  }

  /** Opens a download of `input` from `offset`; `transferType` (TYPE A or I) goes into its audit record. */
  async download(input: string | null | undefined, offset = 0, transferType?: TransferType): Promise<Download> {
    const started = Date.now();
    let path = input ?? '';
    let handle: ReadHandle;
    try {
      path = this.resolve(input);
      handle = await this.options.storage.openRead(path, { offset });
    } catch (err) {
      const failure = this.unexpected(err, path);
      this.record('download', { path, durationMs: Date.now() - started, transferType }, failure);
      throw failure;
    }
    let finished = false;
    return {
      path,
      handle,
      finish: async ({ bytes, error, aborted }) => {
        if (finished) return;
        finished = true;
        await handle.close();
        this.record('download', { path, bytes, durationMs: Date.now() - started, transferType }, error, aborted);
      },
    };
  }

  /**
   * Opens an upload to `input`: a plain store, an append, or a resume at `resumeAt`;
   * `transferType` (TYPE A or I) goes into its audit record.
   */
  async upload(input: string | null | undefined, mode: { append?: boolean; resumeAt?: number; transferType?: TransferType } = {}): Promise<Upload> {
    const { transferType } = mode;
    const started = Date.now();
    let path = input ?? '';
    let sink: WriteSink;
    try {
      path = this.resolve(input);
      this.assertWritable(path);
      if (mode.append && !this.capabilities.append) throw new StorageError('unsupported', 'Appending to files is not supported by this storage');
      if (mode.resumeAt && !this.capabilities.resume) throw new StorageError('unsupported', 'Resuming uploads at an offset is not supported by this storage');
      if (this.quota.limitsUploads) {
        await this.quota.ready();
        const target = await this.uploadTarget(path);
        sink = await this.options.storage.openWrite(path, mode);
        try {
          const kept = mode.append ? target.size : (mode.resumeAt ?? 0);
          sink = limitedSink(sink, await this.quota.beginUpload(path, target, kept));
        } catch (err) {
          await sink.abort().catch(() => undefined);
          throw err;
        }
      } else {
        sink = await this.options.storage.openWrite(path, mode);
      }
    } catch (err) {
      const failure = this.unexpected(err, path);
      this.record('upload', { path, durationMs: Date.now() - started, transferType }, failure);
      throw failure;
    }
    let finished = false;
    const end = () => {
      if (finished) throw new Error('upload already finished');
      finished = true;
    };
    return {
      path,
      sink,
      complete: async () => {
        end();
        try {
          await sink.commit();
        } catch (err) {
          const failure = this.unexpected(err, path);
          this.record('upload', { path, bytes: sink.bytesWritten, durationMs: Date.now() - started, transferType }, failure);
          throw failure;
        }
        this.record('upload', { path, bytes: sink.bytesWritten, durationMs: Date.now() - started, transferType });
      },
      fail: async (error, aborted) => {
        end();
        await sink.abort().catch((err: unknown) => this.unexpected(err, path));
        this.record('upload', { path, bytes: sink.bytesWritten, durationMs: Date.now() - started, transferType }, error ?? new StorageError('io', 'upload failed'), aborted);
      },
    };
  }

  /** A fresh unique file name (STOU), optionally after `prefix`. */
  uniqueName(prefix?: string | null): string {
    return `${prefix ? `${prefix}.` : ''}stou-${randomUUID()}`;
  }

  /** What an upload would replace: the existing file's size, or nothing. */
  private async uploadTarget(path: string): Promise<UploadTarget> {
    try {
      const entry = await this.options.storage.stat(path);
      return entry.type === 'file' ? { existed: true, size: entry.size } : { existed: false, size: 0 };
    } catch (err) {
      if (err instanceof StorageError && err.kind === 'not-found') return { existed: false, size: 0 };
      throw err;
    }
  }

  /** The size of the file at `path` when usage is tracked and it is a file (otherwise undefined). */
  private async trackedFileSize(path: string): Promise<number | undefined> {
    if (!this.quota.tracksUsage) return undefined;
    await this.quota.ready();
    const target = await this.uploadTarget(path);
    return target.existed ? target.size : undefined;
  }

  /** A read-only operation: no audit record, errors normalised. */
  private async query<T>(input: string | null | undefined, run: (path: string) => Promise<T>): Promise<T> {
    let path = input ?? '';
    try {
      path = this.resolve(input);
      return await run(path);
    } catch (err) {
      throw this.unexpected(err, path);
    }
  }

  /** A change: policy check, storage call, one audit record either way. */
  private async change(action: AuditAction, input: string | null | undefined, run: (path: string) => Promise<void>): Promise<string> {
    const started = Date.now();
    let path = input ?? '';
    try {
      path = this.resolve(input);
      this.assertWritable(path);
      await run(path);
      this.record(action, { path, durationMs: Date.now() - started });
      return path;
    } catch (err) {
      const failure = this.unexpected(err, path);
      this.record(action, { path, durationMs: Date.now() - started }, failure);
      throw failure;
    }
  }

  private assertWritable(path: string): void {
    if (this.readOnly) throw new StorageError('denied', `${path}: Permission denied (read-only account)`);
  }

  /** Writes the one audit record of an operation. */
  private record(action: AuditAction, fields: { path: string; to?: string; bytes?: number; durationMs: number; transferType?: TransferType }, error?: unknown, aborted = false): void {
    const { code, reason } = this.options.describe(action, error);
    this.options.audit.record(this.user, { action, ...fields, result: error === undefined ? 'ok' : aborted ? 'aborted' : 'failed', code, reason: error === undefined ? undefined : reason });
  }

  /** A StorageError as it is; anything else is logged once (with its stack) and becomes 'io'. */
  private unexpected(err: unknown, path: string): StorageError | unknown {
    if (err instanceof StorageError) return err;
    if (isProtocolError(err)) return err;
    this.options.log.error('Unexpected error in a storage operation', {
      session: this.options.audit.identity.id,
      user: this.user,
      path,
      err: err instanceof Error ? err.stack ?? err.message : String(err),
    });
    return new StorageError('io', `${path || '/'}: Local error in processing`, { cause: err });
  }
}

/** Errors the protocol layer throws on purpose pass through unchanged (they carry their reply). */
function isProtocolError(err: unknown): boolean {
  return typeof err === 'object' && err !== null && (err as { protocolError?: unknown }).protocolError === true;
}

/** Reads a handle's stream completely (at most `limit` bytes). */
async function readAll(handle: ReadHandle, limit: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of handle.stream()) {
    const b = chunk as Buffer;
    chunks.push(b);
    total += b.length;
    if (total >= limit) break;
  }
  return Buffer.concat(chunks, Math.min(total, limit)).subarray(0, limit);
}
