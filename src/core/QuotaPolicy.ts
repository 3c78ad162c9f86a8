import { finished, Writable } from 'node:stream';
import { StorageError, type WriteSink } from '../storage/StorageBackend.js';
import { formatByteSize } from '../util/byteSize.js';
import type { UserUsage } from './UsageLedger.js';

/** A user's storage limits (absent: no limit), from users.json. */
export interface QuotaLimits {
  /** Total bytes of the user's files. */
  quotaBytes?: number;
  /** Number of the user's files. */
  quotaFiles?: number;
  /** Largest file an upload may produce (kept bytes of an append or resume included). */
  maxFileSize?: number;
}

/** What a session reports about its quota (SITE QUOTA, STAT). */
export interface QuotaStatus {
  limits: QuotaLimits;
  /** Present when the user has a byte or file quota (usage is tracked only then). */
  usage?: { bytes: number; files: number; measuredAt: Date };
}

/** The existing target of an upload: whether it exists and its size. */
export interface UploadTarget {
  existed: boolean;
  size: number;
}

/**
 * One session's storage limits: refuses what would cross them and keeps the usage
 * current. An upload is checked while it runs, chunk by chunk, against the final size the
 * file would have (bytes kept by an append or resume included) and against the user's
 * total (the replaced version's bytes given back, other uploads in flight counted), so the
 * data stops being accepted as soon as a limit is crossed. Deletions and renames over an
 * existing file give their bytes back.
 */
export class QuotaPolicy {
  readonly tracksUsage: boolean;

  constructor(
    readonly limits: QuotaLimits,
    /** The user's usage; required when there is a byte or file quota. */
    private readonly usage?: Promise<UserUsage>,
  ) {
    this.tracksUsage = usage !== undefined && (limits.quotaBytes !== undefined || limits.quotaFiles !== undefined);
  }

  /** Whether uploads need checking at all (otherwise the sink is used as it is). */
  get limitsUploads(): boolean {
    return this.tracksUsage || this.limits.maxFileSize !== undefined;
  }

  async status(): Promise<QuotaStatus> {
    if (!this.tracksUsage) return { limits: this.limits };
    const usage = await this.usage!;
    await usage.refresh();
    return { limits: this.limits, usage: { bytes: usage.bytes, files: usage.files, measuredAt: usage.measuredAt } };
  }

  /**
   * Starts checking an upload to `path` that keeps `kept` bytes of `target`. Refuses at
   * once when a new file would exceed the file count; otherwise returns the allowance the
   * upload's bytes are taken from.
   */
  async beginUpload(path: string, target: UploadTarget, kept: number): Promise<UploadAllowance> {
    const usage = this.tracksUsage ? await this.usage! : undefined;
    await usage?.refresh();
    const { quotaFiles } = this.limits;
    const newFile = !target.existed;
    if (usage && newFile && quotaFiles !== undefined && usage.files + usage.reserved.files + 1 > quotaFiles) {
      throw new StorageError('quota-exceeded', `${path}: Quota exceeded: ${quotaFiles} files allowed, ${usage.files} stored; delete some first`);
    }
    return new UploadAllowance(path, this.limits, usage, target, kept);
  }

  /** Records that a file of `size` bytes was deleted or replaced by a rename. */
  async removed(size: number): Promise<void> {
    if (this.tracksUsage) (await this.usage!).apply(-size, -1);
  }

  /** Waits for the usage (a first measurement may be running) before a change that alters it. */
  async ready(): Promise<void> {
    if (this.tracksUsage) await this.usage;
  }
}

/**
 * The bytes one upload may still write. take() is called before each chunk is written and
 * throws a 'quota-exceeded' StorageError when the chunk would cross a limit; commit() adds
 * the finished upload to the usage; release() gives the reservation back (abort).
 */
export class UploadAllowance {
  private written = 0;
  /** Bytes this upload holds in the usage's reservations (its growth of the total, at least 0). */
  private held = 0;
  private settled = false;

  constructor(
    private readonly path: string,
    private readonly limits: QuotaLimits,
    private readonly usage: UserUsage | undefined,
    private readonly target: UploadTarget,
    private readonly kept: number,
  ) {
    if (usage && !target.existed) usage.hold(0, 1);
  }

  take(bytes: number): void {
    const written = this.written + bytes;
    const size = this.kept + written;
    const { maxFileSize, quotaBytes } = this.limits;
    if (maxFileSize !== undefined && size > maxFileSize) {
      throw new StorageError('quota-exceeded', `${this.path}: File too large: at most ${formatByteSize(maxFileSize)} per file`);
    }
    if (this.usage && quotaBytes !== undefined) {
      const growth = size - (this.target.existed ? this.target.size : 0);
      const others = this.usage.reserved.bytes - this.held;
      if (growth > 0 && this.usage.bytes + others + growth > quotaBytes) {
        throw new StorageError(
          'quota-exceeded',
          `${this.path}: Quota exceeded: ${formatByteSize(quotaBytes)} allowed, ${formatByteSize(this.usage.bytes)} stored; delete some first`,
        );
      }
      const held = Math.max(0, growth);
      this.usage.hold(held - this.held, 0);
      this.held = held;
    }
    this.written = written;
  }

  /** The upload was published with `bytesWritten` new bytes after the kept ones. */
  commit(bytesWritten: number): void {
    if (this.settled) return;
    this.release();
    const before = this.target.existed ? this.target.size : 0;
    this.usage?.apply(this.kept + bytesWritten - before, this.target.existed ? 0 : 1);
  }

  /** Resolves once the other nodes see the upload's outcome (commit or release); see UserUsage.published. */
  published(): Promise<void> {
    return this.usage?.published() ?? Promise.resolve();
  }

  /** Gives back what the upload held (it was discarded). Idempotent. */
  release(): void {
    if (this.settled) return;
    this.settled = true;
    if (!this.usage) return;
    this.usage.hold(-this.held, this.target.existed ? 0 : -1);
    this.held = 0;
  }
}

/**
 * The upload's sink with every chunk taken from `allowance` before it is written: the
 * chunk that would cross a limit fails the stream (and so the transfer), or makes copyIn
 * throw, without being written. Backpressure and errors pass through; commit() and abort()
 * settle the allowance.
 */
export function limitedSink(sink: WriteSink, allowance: UploadAllowance): WriteSink {
  const inner = sink.stream;
  const stream = new Writable({
    highWaterMark: inner.writableHighWaterMark,
    write(chunk: Buffer, _encoding, callback) {
      try {
        allowance.take(chunk.length);
      } catch (err) {
        callback(err as Error);
        return;
      }
      if (inner.write(chunk)) callback();
      else inner.once('drain', () => callback());
    },
    final(callback) {
      inner.end();
      finished(inner, (err) => callback(err ?? undefined));
    },
    destroy(err, callback) {
      // After a normal finish the sink stays open for commit(); a failure passes down.
      if (err && !inner.destroyed) inner.destroy(err);
      callback(err);
    },
  });
  inner.on('error', (err) => stream.destroy(err));
  const copyIn = sink.copyIn?.bind(sink);
  const room = sink.room?.bind(sink);
  return {
    stream,
    ...(copyIn && room
      ? {
          copyIn(bytes: Buffer) {
            allowance.take(bytes.length);
            return copyIn(bytes);
          },
          room,
        }
      : {}),
    get bytesWritten() {
      return sink.bytesWritten;
    },
    async commit() {
      await sink.commit();
      allowance.commit(sink.bytesWritten);
      await allowance.published();
    },
    async abort() {
      allowance.release();
      await sink.abort();
      await allowance.published();
    },
  };
}
