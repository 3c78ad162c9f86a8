import { read } from 'node:fs';
import type { Socket } from 'node:net';
import { SLOT_BYTES } from './BufferSlab.js';
import { transferSlab as slab } from './transferSlab.js';

/** Size of each read from disk: large reads keep syscalls per GiB low. */
const CHUNK_BYTES = 1 << 20;
/**
 * Buffer memory that all running downloads share (see bufferSize), taken from the transfer
 * slab. 32 MiB lets up to 16 downloads read 1 MiB at a time into two buffers each, and 256
 * read 128 KiB at a time into one buffer each (see OVERLAP_UP_TO).
 */
const BUFFER_BUDGET = 32 << 20;

/**
 * Sends a file from `start` to its end over `socket`, then ends the socket (FIN) and
 * resolves once everything was handed to the kernel. `expectedBytes` (what the caller's
 * stat found from `start` to the end) only sizes the buffers: a file that grew or shrank
 * since is still sent to its actual end.
 *
 * Why not `pipeline(createReadStream(), socket)`: a read stream allocates a new buffer for
 * every chunk, and waits for the socket to drain before it reads on. Here two buffers
 * (up to 1 MiB each, see bufferSize; taken from the transfer slab, see transferSlab.ts) alternate:
 * the next chunk is read from disk while the previous one is being written (when many
 * downloads run, one buffer, see OVERLAP_UP_TO), and a buffer is reused only after the
 * socket reported it written. On loopback curl fetches a 1 GiB file in 0.52–0.65 s
 * instead of 1.0–1.3 s (A/B on the same machine).
 *
 * Rejects with the socket's error (reset, data timeout, ABOR) or the read error; the
 * caller owns (and closes) the file descriptor and the socket.
 */
export async function sendFile(file: number, socket: Socket, start: number, expectedBytes: number): Promise<void> {
  let socketError: Error | undefined;
  const onError = (err: Error) => {
    socketError ??= err;
  };
  socket.on('error', onError);
  let pending: Promise<void> | undefined;
  /** The buffer `pending` writes from: given back to the slab only once that write is over. */
  let writing: Buffer | undefined;
  /** This download's buffers from the slab: two while it overlaps reads and writes, else one. */
  const held: Buffer[] = [];
  active++;
  try {
    let position = start;
    for (;;) {
      if (active > OVERLAP_UP_TO) {
        // Crowded: one buffer. Its write must be over before the next read goes into it.
        if (pending) await pending;
        pending = writing = undefined;
        if (held.length === 2) slab.give(held.pop()!);
      }
      let index = held.findIndex((b) => b !== writing);
      if (index === -1) index = held.push(slab.take(bufferSize(expectedBytes))) - 1;
      else {
        const share = bufferSize(Infinity);
        if (share <= held[index]!.length / 2) {
          slab.give(held[index]!);
          held[index] = slab.take(share);
        }
      }
      const buffer = held[index]!;
      const bytesRead = await readAt(file, buffer, position);
      if (socketError) throw socketError;
      if (pending) await pending;
      pending = writing = undefined;
      if (bytesRead === 0) break;
      position += bytesRead;
      writing = buffer;
      pending = writeChunk(socket, bytesRead === buffer.length ? buffer : buffer.subarray(0, bytesRead));
      pending.catch(() => undefined);
    }
    await new Promise<void>((resolve, reject) => {
      if (socketError) return reject(socketError);
      socket.end((err?: Error | null) => {
        const failure = err ?? socketError;
        if (failure) reject(failure);
        else resolve();
      });
    });
  } finally {
    active--;
    socket.off('error', onError);
    for (const buffer of held) {
      // A write still in flight (the transfer failed meanwhile) may still read its buffer:
      // it goes back when the socket is done with it (written, or cancelled on destroy).
      if (buffer === writing && pending) void pending.then(() => slab.give(buffer), () => slab.give(buffer));
      else slab.give(buffer);
    }
  }
}

/** Reads into `buffer` from `position` (on the thread pool); resolves with the bytes read. */
function readAt(fd: number, buffer: Buffer, position: number): Promise<number> {
  return new Promise((resolve, reject) => {
    read(fd, buffer, 0, buffer.length, position, (err, bytesRead) => (err ? reject(err) : resolve(bytesRead)));
  });
}

/** Downloads running in this process right now. */
let active = 0;

/**
 * Up to this many running downloads, each reads into two buffers, so that its next chunk
 * is read from disk while the previous one is being written: what a few fast streams need.
 * Past it (when two 1 MiB buffers each no longer fit the budget), each download reads into
 * one buffer of twice the size instead: the other downloads keep the disk and the CPU
 * busy, and what costs then is the number of chunks, every read being a round trip to
 * libuv's thread pool (a wake-up on another core and back). Same memory, half the round
 * trips: 200 downloads at once read 128 KiB chunks instead of 64 KiB.
 */
const OVERLAP_UP_TO = BUFFER_BUDGET / (2 * CHUNK_BYTES);

/**
 * The size of a download's buffer. The running downloads share BUFFER_BUDGET (a lone
 * download reads 1 MiB at a time, 200 at once 128 KiB each, see OVERLAP_UP_TO; a running
 * download shrinks its buffers when more start), and a small file gets no more than it
 * needs (whole 64 KiB slots), so memory stays bounded however many clients download.
 */
function bufferSize(remaining: number): number {
  const buffersPerDownload = active > OVERLAP_UP_TO ? 1 : 2;
  const share = Math.floor(BUFFER_BUDGET / (buffersPerDownload * active) / SLOT_BYTES) * SLOT_BYTES;
  return Math.max(SLOT_BYTES, Math.min(CHUNK_BYTES, share, roundUp(remaining, SLOT_BYTES)));
}

function roundUp(n: number, step: number): number {
  return Math.ceil(n / step) * step;
}

/**
 * Writes one buffer; resolves when the socket has handed it to the kernel (so it may be
 * reused). A socket destroyed with an error fails with that error (Node 24 completes the
 * pending write with a bare ECANCELED first; the reason is what the caller reports).
 */
function writeChunk(socket: Socket, chunk: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    socket.write(chunk, (err) => (err ? reject(socket.errored ?? err) : resolve()));
  });
}
