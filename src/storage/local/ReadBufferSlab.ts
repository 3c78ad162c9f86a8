/**
 * The read buffers of local downloads, carved from one slab allocated once and reused.
 *
 * Why: downloads used to allocate their buffers per transfer (up to 1 MiB each, shrinking
 * as more downloads started) and leave them to the garbage collector. glibc serves such
 * sizes from its heap once a freed large block has raised its mmap threshold, and a heap
 * fragmented by thousands of freed buffers is never returned: after ftpbench's 200
 * parallel downloads the server kept ~150 MB more resident memory than while they ran.
 * The slab is one allocation (large enough that glibc always maps it on its own); a buffer
 * is a run of its 64 KiB slots, taken and given back, so steady downloads allocate nothing,
 * create no garbage, and resident memory never grows beyond the slab's pages in use.
 *
 * A request the slab cannot serve (more downloads than it holds buffers for) gets an
 * ordinary buffer of its own, which the garbage collector frees as before.
 */

/** The unit of the slab: the smallest buffer a download reads with. */
export const SLOT_BYTES = 64 << 10;

export class ReadBufferSlab {
  private slab: Buffer | undefined;
  /** 1 where a slot belongs to a buffer in use. */
  private readonly used: Uint8Array;
  /** Slots in use (for tests and metrics). */
  private inUse = 0;

  /** `bytes`: the slab's size, a multiple of SLOT_BYTES; its memory is taken at the first use. */
  constructor(readonly bytes: number) {
    if (bytes <= 0 || bytes % SLOT_BYTES !== 0) throw new RangeError(`slab size ${bytes} is not a positive multiple of ${SLOT_BYTES}`);
    this.used = new Uint8Array(bytes / SLOT_BYTES);
  }

  /** Bytes of the slab handed out right now. */
  get bytesInUse(): number {
    return this.inUse * SLOT_BYTES;
  }

  /**
   * A buffer of `bytes` rounded up to whole slots: a free run of the slab (first fit), or,
   * when none is long enough, a buffer of its own. Its content is whatever was there.
   */
  take(bytes: number): Buffer {
    const slots = Math.max(1, Math.ceil(bytes / SLOT_BYTES));
    const start = this.freeRun(slots);
    if (start === -1) return Buffer.allocUnsafeSlow(slots * SLOT_BYTES);
    this.slab ??= Buffer.allocUnsafeSlow(this.bytes);
    this.used.fill(1, start, start + slots);
    this.inUse += slots;
    return this.slab.subarray(start * SLOT_BYTES, (start + slots) * SLOT_BYTES);
  }

  /**
   * Gives a buffer from take() back. Only once nothing reads into it or writes from it any
   * more: the next take() may hand the same memory to another download.
   */
  give(buffer: Buffer): void {
    const slab = this.slab;
    if (slab === undefined || buffer.buffer !== slab.buffer) return; // a buffer of its own: the GC frees it
    const start = (buffer.byteOffset - slab.byteOffset) / SLOT_BYTES;
    const slots = buffer.length / SLOT_BYTES;
    this.used.fill(0, start, start + slots);
    this.inUse -= slots;
  }

  /** The first index of `slots` free slots in a row, or -1. */
  private freeRun(slots: number): number {
    const used = this.used;
    let run = 0;
    for (let i = 0; i < used.length; i++) {
      if (used[i] === 1) {
        run = 0;
        continue;
      }
      if (++run === slots) return i - slots + 1;
    }
    return -1;
  }
}
