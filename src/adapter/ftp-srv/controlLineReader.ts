/** Longest accepted command line in bytes, CRLF excluded. */
export const MAX_LINE_BYTES = 4096;

const IAC = 0xff;
const LF = 0x0a;
const CR = 0x0d;

/** What one chunk of control-connection bytes yielded. */
export interface ReadResult {
  /** Complete command lines, without CR/LF, decoded as UTF-8. */
  lines: string[];
  /** How many over-long lines were dropped (each deserves one 500 reply). */
  overlong: number;
}

/**
 * Splits the control connection's byte stream into command lines. ftp-srv splits each
 * TCP read on its own, so a command cut across segments became two bogus commands and a
 * UTF-8 character cut across reads was corrupted; this keeps partial lines (as bytes)
 * until their LF arrives. Lines longer than MAX_LINE_BYTES are dropped without being
 * buffered or echoed. Telnet IAC sequences (IP, DM, … as sent before ABOR) are removed.
 */
export class ControlLineReader {
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private discarding = false;
  /** A Telnet sequence cut at the end of a chunk: how many more bytes to skip. */
  private skipBytes = 0;
  private inIac = false;

  /** Feeds one chunk; returns the complete lines it finished. */
  push(chunk: Buffer): ReadResult {
    const lines: string[] = [];
    let overlong = 0;
    const clean = this.stripTelnet(chunk);
    let start = 0;
    for (;;) {
      const lf = clean.indexOf(LF, start);
      const end = lf === -1 ? clean.length : lf;
      const piece = clean.subarray(start, end);
      if (!this.discarding) {
        if (this.pendingBytes + piece.length > MAX_LINE_BYTES + 1) {
          this.discarding = true;
          this.pending = [];
          this.pendingBytes = 0;
        } else if (piece.length > 0) {
          this.pending.push(piece);
          this.pendingBytes += piece.length;
        }
      }
      if (lf === -1) break;
      if (this.discarding) {
        overlong++;
        this.discarding = false;
      } else {
        let line = Buffer.concat(this.pending, this.pendingBytes);
        if (line.length > 0 && line[line.length - 1] === CR) line = line.subarray(0, -1);
        if (line.length > MAX_LINE_BYTES) overlong++;
        else lines.push(line.toString('utf8'));
      }
      this.pending = [];
      this.pendingBytes = 0;
      start = lf + 1;
    }
    return { lines, overlong };
  }

  /** Removes Telnet commands: IAC x (2 bytes), IAC WILL/WONT/DO/DONT opt (3 bytes). */
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
