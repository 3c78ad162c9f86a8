/**
 * Transfer buffers carved from one slab allocated once and reused: local downloads read
 * into them (sendFile.ts), local uploads stage into them (StagedFileWriter.ts), both from
 * the same slab (transferSlab.ts).
 *
 * Why: downloads used to allocate their buffers per transfer (up to 1 MiB each, shrinking
 * as more downloads started) and leave them to the garbage collector. glibc serves such
 * sizes from its heap once a freed large block has raised its mmap threshold, and a heap
 * fragmented by thousands of freed buffers is never returned: after ftpbench's 200
 * parallel downloads the server kept ~150 MB more resident memory than while they ran.
 * The slab is a few large allocations (4 MiB segments, each taken when first needed and
 * large enough that glibc always maps it on its own); a buffer is a run of 64 KiB slots
 * within one segment, taken and given back, so steady downloads allocate nothing, create
 * no garbage, and memory never grows beyond the segments in use.
 *
 * A request the slab cannot serve (more downloads than it holds buffers for) gets an
 * ordinary buffer of its own, which the garbage collector frees as before.
 *
 * After a busy period the slab lets go of segments that stayed empty for `idleMs` (5 s by
 * default; the transfer slab keeps them 30 s) and calls `onRelease`, so that the server's
 * memory returns near its idle value once a burst of transfers is over (ftpbench's 200
 * parallel downloads had taken all of a 32 MiB slab for good); the next transfer takes a
 * fresh segment, which costs one 4 MiB mapping and its page faults.
 */

/** The unit of the slab: the smallest buffer it hands out. */
export const SLOT_BYTES = 64 << 10;
/** The slab is allocated in segments of this size, each when a buffer first needs it. */
export const SEGMENT_BYTES = 4 << 20;
/** A segment empty for this long is let go (steady downloads keep theirs: each end restarts the clock). */
export const SEGMENT_IDLE_MS = 5000;

export class BufferSlab {
  /** The segments allocated so far (index i holds slots i*slotsPerSegment..). */
  private readonly segments: (Buffer | undefined)[];
  private readonly slotsPerSegment: number;
  /** 1 where a slot belongs to a buffer in use. */
  private readonly used: Uint8Array;
  /** Slots in use (for tests and metrics). */
  private inUse = 0;
  /** Slots in use per segment. */
  private readonly usedInSegment: Uint32Array;
  /** When each segment last became empty (performance.now()), for the idle release. */
  private readonly emptySince: Float64Array;
  private releaseTimer: NodeJS.Timeout | undefined;

  /**
   * `bytes`: the slab's size, a multiple of `segmentBytes` (itself a multiple of SLOT_BYTES);
   * each segment's memory is taken when a buffer first lands in it, so a lone download
   * costs one segment, not the whole slab. A segment that stays empty for `idleMs` is let
   * go, and `onRelease` runs once for each such release (e.g. a garbage collection, without
   * which the memory is only returned whenever the next one happens).
   */
  constructor(
    readonly bytes: number,
    segmentBytes = SEGMENT_BYTES,
    private readonly idleMs = SEGMENT_IDLE_MS,
    private readonly onRelease: () => void = () => undefined,
  ) {
    if (segmentBytes <= 0 || segmentBytes % SLOT_BYTES !== 0) throw new RangeError(`segment size ${segmentBytes} is not a positive multiple of ${SLOT_BYTES}`);
    if (bytes <= 0 || bytes % segmentBytes !== 0) throw new RangeError(`slab size ${bytes} is not a positive multiple of the segment size ${segmentBytes}`);
    this.slotsPerSegment = segmentBytes / SLOT_BYTES;
    this.segments = new Array<Buffer | undefined>(bytes / segmentBytes).fill(undefined);
    this.used = new Uint8Array(bytes / SLOT_BYTES);
    this.usedInSegment = new Uint32Array(this.segments.length);
    this.emptySince = new Float64Array(this.segments.length);
  }

  /** Bytes of the slab handed out right now. */
  get bytesInUse(): number {
    return this.inUse * SLOT_BYTES;
  }

  /** Bytes of the slab allocated so far (segments taken). */
  get bytesAllocated(): number {
    return this.segments.filter((s) => s !== undefined).length * this.slotsPerSegment * SLOT_BYTES;
  }

  /**
   * A buffer of `bytes` rounded up to whole slots: a free run of the slab within one segment
   * (first fit, segments already allocated first), or, when none is long enough, a buffer of
   * its own. Its content is whatever was there.
   */
  take(bytes: number): Buffer {
    const slots = Math.max(1, Math.ceil(bytes / SLOT_BYTES));
    if (slots > this.slotsPerSegment) return Buffer.allocUnsafeSlow(slots * SLOT_BYTES);
    const start = this.freeRun(slots, true) ?? this.freeRun(slots, false);
    if (start === undefined) return Buffer.allocUnsafeSlow(slots * SLOT_BYTES);
    const index = Math.floor(start / this.slotsPerSegment);
    const segment = (this.segments[index] ??= Buffer.allocUnsafeSlow(this.slotsPerSegment * SLOT_BYTES));
    this.used.fill(1, start, start + slots);
    this.inUse += slots;
    this.usedInSegment[index]! += slots;
    const offset = (start - index * this.slotsPerSegment) * SLOT_BYTES;
    return segment.subarray(offset, offset + slots * SLOT_BYTES);
  }

  /**
   * Gives a buffer from take() back. Only once nothing reads into it or writes from it any
   * more: the next take() may hand the same memory to another download.
   */
  give(buffer: Buffer): void {
    const index = this.segments.findIndex((s) => s !== undefined && s.buffer === buffer.buffer);
    if (index === -1) return; // a buffer of its own: the GC frees it
    const start = index * this.slotsPerSegment + (buffer.byteOffset - this.segments[index]!.byteOffset) / SLOT_BYTES;
    const slots = buffer.length / SLOT_BYTES;
    this.used.fill(0, start, start + slots);
    this.inUse -= slots;
    this.usedInSegment[index]! -= slots;
    if (this.usedInSegment[index] === 0) {
      this.emptySince[index] = performance.now();
      this.scheduleRelease(this.idleMs);
    }
  }

  /**
   * Lets go of every allocated segment that is empty and has been for at least `minIdleMs`;
   * returns the bytes let go. Runs by itself `idleMs` after a segment empties.
   */
  releaseIdle(minIdleMs = this.idleMs): number {
    const now = performance.now();
    let released = 0;
    let nextDue: number | undefined;
    for (let index = 0; index < this.segments.length; index++) {
      if (this.segments[index] === undefined || this.usedInSegment[index] !== 0) continue;
      const idle = now - this.emptySince[index]!;
      if (idle >= minIdleMs) {
        this.segments[index] = undefined;
        released += this.slotsPerSegment * SLOT_BYTES;
      } else {
        nextDue = Math.min(nextDue ?? Infinity, minIdleMs - idle);
      }
    }
    if (nextDue !== undefined) this.scheduleRelease(nextDue);
    if (released > 0) this.onRelease();
    return released;
  }

  /** One timer at a time, not keeping the process alive. */
  private scheduleRelease(afterMs: number): void {
    if (this.releaseTimer !== undefined) return;
    this.releaseTimer = setTimeout(() => {
      this.releaseTimer = undefined;
      this.releaseIdle();
    }, Math.ceil(afterMs));
    this.releaseTimer.unref();
  }

  /** The first index of `slots` free slots in a row within one segment (allocated or not, as asked), or undefined. */
  private freeRun(slots: number, allocated: boolean): number | undefined {
    for (let index = 0; index < this.segments.length; index++) {
      if ((this.segments[index] !== undefined) !== allocated) continue;
      const first = index * this.slotsPerSegment;
      let run = 0;
      for (let i = first; i < first + this.slotsPerSegment; i++) {
        if (this.used[i] === 1) {
          run = 0;
          continue;
        }
        if (++run === slots) return i - slots + 1;
      }
    }
    return undefined;
  }
}
