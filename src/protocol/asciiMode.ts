import { Transform, type TransformCallback } from 'node:stream';

/**
 * TYPE A (RFC 959 §3.1.1.1) on a Unix server: files are stored with LF line ends and
 * travel as CRLF. Downloads turn each bare LF into CRLF (an existing CRLF is kept).
 */
export class LfToCrlf extends Transform {
  private lastWasCr = false;

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    let start = 0;
    const parts: Buffer[] = [];
    for (let i = 0; i < chunk.length; i++) {
      const byte = chunk[i]!;
      const prevCr = i === 0 ? this.lastWasCr : chunk[i - 1] === 0x0d;
      if (byte === 0x0a && !prevCr) {
        parts.push(chunk.subarray(start, i), CRLF);
        start = i + 1;
      }
    }
    parts.push(chunk.subarray(start));
    this.lastWasCr = chunk.length > 0 ? chunk[chunk.length - 1] === 0x0d : this.lastWasCr;
    done(null, Buffer.concat(parts));
  }
}

/** How many bytes `content` takes on the wire in TYPE A (each bare LF becomes CRLF, as LfToCrlf does). */
export function asciiTransferSize(content: Buffer): number {
  let extra = 0;
  for (let i = content.indexOf(0x0a); i !== -1; i = content.indexOf(0x0a, i + 1)) {
    if (i === 0 || content[i - 1] !== 0x0d) extra++;
  }
  return content.length + extra;
}

/** Uploads in TYPE A: each CRLF becomes LF; a lone CR is kept. */
export class CrlfToLf extends Transform {
  private pendingCr = false;

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    const parts: Buffer[] = [];
    let i = 0;
    if (this.pendingCr) {
      this.pendingCr = false;
      if (chunk[0] !== 0x0a) parts.push(CR);
    }
    let start = 0;
    for (; i < chunk.length; i++) {
      if (chunk[i] !== 0x0d) continue;
      if (i === chunk.length - 1) {
        parts.push(chunk.subarray(start, i));
        this.pendingCr = true;
        start = chunk.length;
      } else if (chunk[i + 1] === 0x0a) {
        parts.push(chunk.subarray(start, i));
        start = i + 1; // keep the LF, drop the CR
      }
    }
    if (start < chunk.length) parts.push(chunk.subarray(start));
    done(null, Buffer.concat(parts));
  }

  override _flush(done: TransformCallback): void {
    done(null, this.pendingCr ? CR : Buffer.alloc(0));
  }
}

const CR = Buffer.from([0x0d]);
const CRLF = Buffer.from([0x0d, 0x0a]);
