import { collectGarbage } from '../../util/collectGarbage.js';
import { BufferSlab, SEGMENT_BYTES } from './BufferSlab.js';

/**
 * Most memory the transfer slab holds: the buffers of about 200 downloads or 200 uploads
 * running at once (each sized by its own budget: sendFile.ts, StagedFileWriter.ts). Past
 * it, a buffer is one of its own again (see BufferSlab.take).
 */
export const TRANSFER_SLAB_BYTES = 128 << 20;

/**
 * How long a segment of the slab stays allocated after it last emptied: longer than the
 * pauses between the bursts of a busy server (ftpbench's stages are seconds apart), short
 * enough that memory is back near its idle value half a minute after the load.
 */
export const TRANSFER_SLAB_IDLE_MS = 30_000;

/**
 * The one slab every local transfer's buffers come from: downloads read into it
 * (sendFile.ts) and uploads stage in it (StagedFileWriter.ts).
 *
 * Why one, and why it keeps its memory for a while: memory the process has not touched
 * lately is expensive to touch. Each new page is a page fault, and where the host takes
 * freed memory back (a virtual machine with free page reporting, as here) a fault cost
 * ~15 µs: 3.9 ms per MiB. Downloads and uploads had slabs of their own (32 and 16 MiB,
 * let go 5 s after their last use), and any buffer they could not serve was allocated
 * on its own and freed by the garbage collector. In ftpbench's 200-client stages that was
 * 117 MiB of such buffers per run beside the 48 MiB of segments, all new memory every
 * time: ~53,000 page faults per run, most of them in the reads into those buffers. One
 * slab large enough for the 200-client stages, kept for 30 s, serves the uploads with the
 * memory the downloads just used and the next burst with the same again.
 */
export const transferSlab = new BufferSlab(TRANSFER_SLAB_BYTES, SEGMENT_BYTES, TRANSFER_SLAB_IDLE_MS, collectGarbage);
