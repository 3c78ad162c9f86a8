import type { FileHandle } from 'node:fs/promises';
import { COPY_IN_MAX } from '../StorageBackend.js';
import { SLOT_BYTES } from './BufferSlab.js';
import { transferSlab as slab } from './transferSlab.js';

/**
 * Upload bytes staged in memory between the socket and the disk, shared by all running
 * uploads: each stages into two buffers of an equal share of it (STAGE_MAX at most,
 * STAGE_MIN at least), fixed when it opens, taken from the transfer slab (see
 * transferSlab.ts). A lone upload writes 1 MiB per system call; 200 at once stage
 * 2 × 128 KiB each (the first ones, opened while few ran, keep their larger share).
 */
export const STAGING_BUDGET = 16 << 20;
const STAGE_MAX = 1 << 20;
const STAGE_MIN = 2 * COPY_IN_MAX;
/** Writers holding buffers in this process right now. */
let openWriters = 0;

/**
 * Writes an upload to a file at increasing offsets through two reused buffers: bytes are
 * copied into the filling buffer, which is written as soon as no other write runs, while
 * the other buffer fills. Bytes reach the file as fast as it takes them; while a write
 * runs they gather, so writes grow with the load (up to the buffer's size) and a busy
 * server makes fewer, larger system calls.
 *
 * Why: the bytes an upload receives used to be written in the buffers Node allocates for
 * every socket read (64 KiB each), each kept until its thread-pool write was done. With 200
 * parallel uploads most of them outlived two young-generation collections, and the 2 GB of
 * dead buffers in the old generation started a full (mark-compact) collection every
 * ~64 MB received: about a quarter of the server's CPU in ftpbench's 200 × 10 MB STOR
 * stage. Copied at once into buffers that live as long as the upload, a socket's bytes need
 * no garbage collection at all when the socket reads into one reused buffer (copyIn), and
 * become garbage young otherwise.
 */
export class StagedFileWriter {
  private filling: Buffer;
  private spare: Buffer;
  private staged = 0;
  /** The filling buffer has no room for another COPY_IN_MAX bytes and waits for the spare's write. */
  private sealed = false;
  /** The write of the spare buffer, while it runs. */
  private inFlight: Promise<void> | undefined;
  /** Waiters for room (see room()). */
  private roomWaiters: { resolve: () => void; reject: (err: unknown) => void }[] = [];
  /** What a write failed with: every later call fails with it. */
  private failure: unknown;
  private released = false;

  /**
   * `offset`: where the first byte goes in the file. `onWritten` is told the bytes of each
   * completed write (e.g. to count toward an early flush).
   */
  constructor(
    private readonly handle: FileHandle,
    private offset: number,
    private readonly onWritten: (bytes: number) => void = () => undefined,
  ) {
    const share = Math.floor(STAGING_BUDGET / 2 / (openWriters + 1));
    const bytes = Math.max(STAGE_MIN, Math.min(STAGE_MAX, Math.floor(share / SLOT_BYTES) * SLOT_BYTES));
    openWriters++;
    this.filling = slab.take(bytes);
    this.spare = slab.take(bytes);
  }

  /** True when copyIn() may be called (it takes up to COPY_IN_MAX bytes). */
  get hasRoom(): boolean {
    return !this.sealed && !this.released && this.failure === undefined;
  }

  /**
   * Copies up to COPY_IN_MAX bytes in at once (the caller may reuse its buffer as soon as
   * this returns). Returns whether there is room for the next call; when not, wait for
   * room(). Throws what a write failed with, and when called without room.
   */
  copyIn(bytes: Buffer): boolean {
    if (this.failure !== undefined) throw this.failure;
    if (this.released) throw new Error('The upload was closed');
    if (this.sealed || bytes.length > COPY_IN_MAX) throw new RangeError('copyIn without room: wait for room()');
    bytes.copy(this.filling, this.staged);
    this.staged += bytes.length;
    if (this.inFlight === undefined) this.writeFilling();
    else if (this.filling.length - this.staged < COPY_IN_MAX) this.sealed = true;
    return this.hasRoom;
  }

  /** Resolves once copyIn() may be called again; rejects with what a write failed with. */
  room(): Promise<void> {
    if (this.failure !== undefined) return Promise.reject(this.failure);
    if (!this.sealed) return Promise.resolve();
    return new Promise((resolve, reject) => this.roomWaiters.push({ resolve, reject }));
  }

  /** Writes everything staged and waits for every write; throws what a write failed with. */
  async flush(): Promise<void> {
    while (this.inFlight !== undefined) await this.inFlight;
    if (this.failure !== undefined) throw this.failure;
    if (this.staged > 0) {
      const bytes = this.staged;
      this.staged = 0;
      await this.writeFully(this.filling.subarray(0, bytes));
    }
  }

  /** Waits for a running write (its failure ignored) and gives the buffers back. Idempotent. */
  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    while (this.inFlight !== undefined) await this.inFlight;
    openWriters--;
    slab.give(this.filling);
    slab.give(this.spare);
  }

  /** Starts writing the filling buffer (no other write runs), swaps in the spare and wakes the room waiters. */
  private writeFilling(): void {
    const written = this.filling;
    const length = this.staged;
    this.filling = this.spare;
    this.spare = written;
    this.staged = 0;
    this.sealed = false;
    this.inFlight = this.writeFully(written.subarray(0, length)).then(
      () => {
        this.inFlight = undefined;
        if (this.staged > 0) this.writeFilling();
      },
      (err: unknown) => {
        this.failure ??= err;
        this.inFlight = undefined;
        const waiters = this.roomWaiters;
        this.roomWaiters = [];
        for (const w of waiters) w.reject(err);
      },
    );
    const waiters = this.roomWaiters;
    this.roomWaiters = [];
    for (const w of waiters) w.resolve();
  }

  private async writeFully(bytes: Buffer): Promise<void> {
    const at = this.offset;
    this.offset += bytes.length;
    for (let done = 0; done < bytes.length; ) {
      const { bytesWritten } = await this.handle.write(bytes, done, bytes.length - done, at + done);
      done += bytesWritten;
    }
    this.onWritten(bytes.length);
  }
}
