/** Longest accepted command line in bytes, CRLF excluded. */
export const MAX_LINE_BYTES = 4096;

const IAC = 0xff;
const LF = 0x0a;
const CR = 0x0d;
/** The lowest Telnet command byte (SE); IAC followed by a lower byte is not a command. */
const TELNET_COMMANDS = 0xf0;
/**
 * An ABOR whose LF never came: Python's ftplib sends `ABOR\r\n` with MSG_OOB, which makes
 * the LF TCP urgent data, and Node (no SO_OOBINLINE) never delivers it, so the line would
 * never end. Its CR is the sign: a line that is exactly this is complete.
 */
const URGENT_ABOR = /^\s*ABOR\s*\r$/i;
/** An AUTH line that starts TLS (RFC 4217; `AUTH SSL` is the old alias). */
const AUTH_TLS_LINE = /(?:^|\n)[ \t]*AUTH[ \t]+(?:TLS|SSL|TLS-C)[ \t]*\r?\n/i;
/** TLS bytes held after an AUTH line before the handshake takes them (a ClientHello is ~0.5–2 KiB). */
const MAX_HELD_TLS_BYTES = 64 * 1024;

/** One item of the control stream: a command line, or a line that was too long. */
export type ControlItem = { line: string; overlong?: undefined } | { line?: undefined; overlong: true };

/** Stands for one over-long line in the queue of complete input (its bytes are gone). */
const OVERLONG = Symbol('overlong line');

/**
 * Splits the control connection's byte stream into command lines, one at a time, on
 * demand. ftp-srv splits each TCP read on its own, so a command cut across segments
 * became two bogus commands and a UTF-8 character cut across reads was corrupted; this
 * keeps partial lines (as bytes) until their LF arrives. Lines longer than
 * MAX_LINE_BYTES are dropped without being buffered or echoed. Telnet IAC sequences (IP,
 * DM, … as sent before ABOR) are removed.
 *
 * Complete lines stay as the received bytes (a 64 KiB read holds ~10,000 `NOOP` lines)
 * and are decoded only when next() takes them, so what a pipelining client has sent but
 * the server has not run yet costs its byte count and nothing more; `bufferedBytes` lets
 * the caller stop reading while that is above its cap.
 */
export class ControlLineReader {
  /** Complete input, in order: byte blocks made of whole LF-terminated lines, and over-long markers. */
  private ready: (Buffer | typeof OVERLONG)[] = [];
  /** Bytes of ready[0] already taken. */
  private readyOffset = 0;
  private readyBytes = 0;
  /** The line still missing its LF. */
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  /** The line still missing its LF is already too long: drop the rest of it. */
  private discarding = false;
  /** A Telnet sequence cut at the end of a chunk: how many more bytes to skip. */
  private skipBytes = 0;
  private inIac = false;
  /** An urgent-data ABOR was completed without its LF: drop that LF if it arrives after all. */
  private dropNextLf = false;
  /** Watch for `AUTH TLS`: the bytes after its line are TLS, not commands. */
  watchAuthTls = false;
  /** Raw bytes received after an AUTH TLS line (the client's ClientHello), held for the handshake. */
  private held: Buffer[] | undefined;
  private heldBytes = 0;

  /** An AUTH TLS line was read: later input is held raw until takeHeld() or releaseHeld(). */
  get holding(): boolean {
    return this.held !== undefined;
  }

  /** The raw bytes after the AUTH TLS line (for the TLS handshake); normal reading resumes. */
  takeHeld(): Buffer {
    const bytes = Buffer.concat(this.held ?? [], this.heldBytes);
    this.held = undefined;
    this.heldBytes = 0;
    return bytes;
  }

  /** AUTH was refused: the held bytes are read as commands after all. */
  releaseHeld(): void {
    const bytes = this.takeHeld();
    if (bytes.length > 0) this.push(bytes);
  }

  /** Input received and not yet taken by next(), in bytes (complete and partial lines). */
  get bufferedBytes(): number {
    return this.readyBytes - this.readyOffset + this.pendingBytes;
  }

  /**
   * Feeds one chunk. Returns true when `watch` is given and matches one of the lines
   * this chunk completed (so the caller can act on, say, ABOR before the lines queued
   * ahead of it have run).
   */
  push(chunk: Buffer, watch?: RegExp): boolean {
    if (this.held) {
      // Past an AUTH TLS line: the client speaks TLS now (a ClientHello pipelined with it).
      if (this.heldBytes + chunk.length <= MAX_HELD_TLS_BYTES) this.held.push(Buffer.from(chunk));
      this.heldBytes += chunk.length;
      return false;
    }
    if (this.watchAuthTls) {
      const end = authTlsLineEnd(Buffer.concat(this.pending, this.pendingBytes), chunk);
      if (end !== -1) {
        const seen = this.pushLines(chunk.subarray(0, end), watch);
        this.held = [];
        this.heldBytes = 0;
        if (end < chunk.length) this.push(chunk.subarray(end));
        return seen;
      }
    }
    return this.pushLines(chunk, watch);
  }

  private pushLines(chunk: Buffer, watch?: RegExp): boolean {
    let clean = this.stripTelnet(chunk);
    if (this.dropNextLf && clean.length > 0) {
      this.dropNextLf = false;
      if (clean[0] === LF && this.pendingBytes === 0) clean = clean.subarray(1);
    }
    const first = clean.indexOf(LF);
    if (first === -1) {
      this.addPartial(clean);
      return this.completeUrgentAbor(watch);
    }
    let seen = false;
    // The first line completes the pending partial line.
    this.addPartial(clean.subarray(0, first));
    if (this.discarding) {
      this.ready.push(OVERLONG);
      this.discarding = false;
    } else {
      const line = Buffer.concat([...this.pending, clean.subarray(first, first + 1)], this.pendingBytes + 1);
      this.addReady(line);
      if (watch) seen = matches(line, 0, line.length - 1, watch);
    }
    this.pending = [];
    this.pendingBytes = 0;
    // Whole lines after it stay in the chunk (a view, not a copy); the tail is partial.
    const last = clean.lastIndexOf(LF);
    if (last > first) {
      const block = clean.subarray(first + 1, last + 1);
      this.addReady(block);
      if (watch && !seen) {
        for (let start = 0; start < block.length && !seen; ) {
          const lf = block.indexOf(LF, start);
          seen = matches(block, start, lf, watch);
          start = lf + 1;
        }
      }
    }
    this.addPartial(clean.subarray(last + 1));
    return this.completeUrgentAbor(watch) || seen;
  }

  /** Whether a complete line (or over-long marker) is waiting. */
  peekAny(): boolean {
    return this.ready.length > 0;
  }

  /** The first complete line, without taking it (undefined if none or an over-long marker). */
  peek(): string | undefined {
    const head = this.ready[0];
    if (head === undefined || head === OVERLONG) return undefined;
    const lf = head.indexOf(LF, this.readyOffset);
    if (lf - this.readyOffset > 64) return undefined;
    const end = lf > this.readyOffset && head[lf - 1] === CR ? lf - 1 : lf;
    return head.toString('latin1', this.readyOffset, end);
  }

  /**
   * Completes a partial line that is an ABOR ending in CR (its LF was urgent data and got
   * lost), so it runs at once; a late LF is dropped. Returns whether `watch` matches it.
   */
  private completeUrgentAbor(watch: RegExp | undefined): boolean {
    if (this.discarding || this.pendingBytes === 0 || this.pendingBytes > 64) return false;
    const partial = Buffer.concat(this.pending, this.pendingBytes);
    if (!URGENT_ABOR.test(partial.toString('latin1'))) return false;
    this.addReady(Buffer.concat([partial, Buffer.from([LF])]));
    this.pending = [];
    this.pendingBytes = 0;
    this.dropNextLf = true;
    return watch !== undefined && matches(partial, 0, partial.length, watch);
  }

  /** Takes the next complete line (or over-long marker), or undefined if there is none yet. */
  next(): ControlItem | undefined {
    const head = this.ready[0];
    if (head === undefined) return undefined;
    if (head === OVERLONG) {
      this.ready.shift();
      return { overlong: true };
    }
    const start = this.readyOffset;
    const lf = head.indexOf(LF, start);
    this.readyOffset = lf + 1;
    if (this.readyOffset >= head.length) {
      this.ready.shift();
      this.readyBytes -= head.length;
      this.readyOffset = 0;
    }
    const end = lf > start && head[lf - 1] === CR ? lf - 1 : lf;
    if (end - start > MAX_LINE_BYTES) return { overlong: true };
    return { line: head.toString('utf8', start, end) };
  }

  private addReady(block: Buffer): void {
    if (block.length === 0) return;
    this.ready.push(block);
    this.readyBytes += block.length;
  }

  /** Appends to the line missing its LF, switching to discarding once it is too long. */
  private addPartial(piece: Buffer): void {
    if (this.discarding || piece.length === 0) return;
    // MAX_LINE_BYTES + 1 leaves room for the CR of a line of exactly the maximum length.
    if (this.pendingBytes + piece.length > MAX_LINE_BYTES + 1) {
      this.discarding = true;
      this.pending = [];
      this.pendingBytes = 0;
      return;
    }
    // A copy: a view would keep the whole (up to 64 KiB) read alive for a few bytes.
    this.pending.push(Buffer.from(piece));
    this.pendingBytes += piece.length;
  }

  /**
   * Removes Telnet commands: IAC x (2 bytes), IAC WILL/WONT/DO/DONT opt (3 bytes). An IAC
   * followed by a byte that is no Telnet command is dropped alone: lftp sends IAC IP, then
   * IAC DM with the DM as urgent data, which Node never delivers, so the stream holds
   * IAC IP IAC and then the `A` of ABOR, which must not be eaten as a command byte.
   */
  private stripTelnet(chunk: Buffer): Buffer {
    if (!this.inIac && this.skipBytes === 0 && !chunk.includes(IAC)) return chunk;
    const out = Buffer.allocUnsafe(chunk.length);
    let n = 0;
    for (const byte of chunk) {
      if (this.skipBytes > 0) {
        this.skipBytes--;
        continue;
      }
      if (this.inIac) {
        this.inIac = false;
        if (byte === IAC) out[n++] = IAC; // escaped 0xFF data byte
        else if (byte >= 0xfb && byte <= 0xfe) this.skipBytes = 1; // option negotiation
        else if (byte < TELNET_COMMANDS) out[n++] = byte; // a lone IAC (its command byte was urgent data)
        continue;
      }
      if (byte === IAC) {
        this.inIac = true;
        continue;
      }
      out[n++] = byte;
    }
    return out.subarray(0, n);
  }
}

/**
 * Where, in `chunk`, the line of an `AUTH TLS` command ends (the index after its LF), or -1.
 * `partial` is the line received before `chunk` without its LF yet. AUTH lines carry no
 * Telnet bytes, so the raw bytes are searched.
 */
function authTlsLineEnd(partial: Buffer, chunk: Buffer): number {
  const text = partial.toString('latin1') + chunk.toString('latin1', 0, Math.min(chunk.length, 64 * 1024));
  const m = AUTH_TLS_LINE.exec(text);
  if (!m) return -1;
  const end = m.index + m[0].length - partial.length;
  return end > 0 ? end : -1;
}

/** Whether bytes [start, lf) (CR dropped) match `re`; only short lines are decoded. */
function matches(buf: Buffer, start: number, lf: number, re: RegExp): boolean {
  const end = lf > start && buf[lf - 1] === CR ? lf - 1 : lf;
  return end - start <= 64 && re.test(buf.toString('latin1', start, end));
}
