import type { Socket } from 'node:net';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { ControlLineReader, type ControlItem } from './controlLineReader.js';

/**
 * Received command bytes not yet run, beyond which the connection is not read. Node
 * delivers up to 64 KiB per read, so a connection holds at most this plus one read here,
 * plus what Node's socket buffers before it stops reading (its readable high-water mark).
 */
export const MAX_BUFFERED_INPUT = 8 * 1024;
/** Commands run back to back before letting the event loop serve other connections. */
const BATCH = 64;

/**
 * Runs one control connection's commands strictly one after another, with memory bounded
 * whatever the client sends. The input is not split into a queue of commands up front (a
 * pipelining client once made the server hold ~10,000 queued commands per 64 KiB read,
 * and 800 such clients exhausted the heap): lines stay as bytes in the ControlLineReader
 * and are taken one by one as each command finishes. Reading stops (backpressure, the
 * client's TCP window closes) while
 * - more than MAX_BUFFERED_INPUT bytes of received input wait to run, or
 * - the replies are not being drained (`writableNeedDrain`: more than the socket's
 *   write high-water mark, 16 KiB, is unsent), except during a transfer, so that an
 *   ABOR is still read (no command runs then, so no reply accumulates).
 * No command starts while the replies are not drained; both resume on 'drain'.
 */
export class CommandFeed {
  private readonly reader = new ControlLineReader();
  private running = false;
  /** The client half-closed (FIN): answer what it sent, then call `onFinished`. */
  private ended = false;
  private onFinished: (() => void) | undefined;
  /** Most input bytes ever buffered at once (a diagnostic; bounded by the caps above). */
  peakBufferedBytes = 0;

  private readonly onDrain = () => this.pump();

  constructor(
    private socket: Socket,
    /** Runs one item (replying to it); never rejects. */
    private readonly run: (item: ControlItem) => Promise<void>,
    /** A data transfer is running. */
    private readonly transferring: () => boolean,
  ) {
    socket.on('drain', this.onDrain);
  }

  /** The reader, for the TLS upgrade (AUTH TLS: the bytes after its line are the handshake). */
  get lines(): ControlLineReader {
    return this.reader;
  }

  /** After AUTH TLS: read from and write to the TLS socket from now on. */
  setSocket(socket: Socket): void {
    this.socket.off('drain', this.onDrain);
    this.socket = socket;
    socket.on('drain', this.onDrain);
    this.pump();
  }

  /** Input bytes received and not yet run. */
  get bufferedBytes(): number {
    return this.reader.bufferedBytes;
  }

  /**
   * Takes one chunk read from the connection and runs what it completes, in order.
   * Returns true when `watch` matches one of the lines the chunk completed.
   */
  push(chunk: Buffer, watch?: RegExp): boolean {
    const seen = this.reader.push(chunk, watch);
    this.peakBufferedBytes = Math.max(this.peakBufferedBytes, this.reader.bufferedBytes);
    this.pump();
    return seen;
  }

  /**
   * Takes the next complete line now, ahead of the running command, if it matches `re`
   * (STAT during a transfer is answered at once, RFC 959 §4.1.3). Only the first waiting
   * line is looked at, so replies never overtake earlier commands.
   */
  takeIf(re: RegExp): ControlItem | undefined {
    const head = this.reader.peek();
    return head !== undefined && re.test(head) ? this.reader.next() : undefined;
  }

  /**
   * The client closed its sending side: every complete command already received still
   * runs and is answered (a partial last line is dropped), then `onFinished` is called
   * once so the connection can be closed.
   */
  end(onFinished: () => void): void {
    this.ended = true;
    this.onFinished = onFinished;
    this.pump();
  }

  /** Starts the run loop if it is idle, and pauses or resumes reading. */
  private pump(): void {
    this.updateFlow();
    if (this.running) return;
    if (!this.reader.peekAny()) {
      this.finishIfEnded();
      return;
    }
    this.running = true;
    void this.loop();
  }

  private async loop(): Promise<void> {
    let batch = 0;
    try {
      while (!this.socket.destroyed && !this.socket.writableNeedDrain) {
        const item = this.reader.next();
        if (!item) break;
        this.updateFlow();
        await this.run(item);
        if (++batch >= BATCH) {
          batch = 0;
          await nextTurn();
        }
      }
    } finally {
      this.running = false;
      this.updateFlow();
      this.finishIfEnded();
    }
  }

  /** After a half-close: once nothing is left to run, hand over to onFinished. */
  private finishIfEnded(): void {
    if (!this.ended || this.running || this.reader.peekAny() || this.socket.writableNeedDrain) return;
    const done = this.onFinished;
    this.onFinished = undefined;
    done?.();
  }

  private updateFlow(): void {
    const socket = this.socket;
    const full =
      this.reader.bufferedBytes > MAX_BUFFERED_INPUT ||
      this.reader.holding || // past AUTH TLS: the rest is the handshake, read by the TLS socket
      (socket.writableNeedDrain && !this.transferring());
    if (full) {
      if (!socket.isPaused()) socket.pause();
    } else if (socket.isPaused() && !socket.destroyed) {
      socket.resume();
    }
  }
}
