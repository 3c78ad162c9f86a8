import { Transform, Writable, type TransformCallback } from 'node:stream';

/**
 * The stream an upload hands to basic-ftp: passes the source's bytes through, drops the
 * first `skip` bytes (resuming from a Readable that starts at byte 0), and reports each
 * chunk. A failure here (the progress handler throwing, a source shorter than the resume
 * point) is reported to `onLocalError` before the stream errors.
 */
export class UploadCounter extends Transform {
  private toSkip: number;

  constructor(
    skip: number,
    private readonly onChunk: (bytes: number) => void,
    private readonly onLocalError: (err: unknown) => void,
  ) {
    super();
    this.toSkip = skip;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    let data = chunk;
    if (this.toSkip > 0) {
      const n = Math.min(this.toSkip, data.length);
      this.toSkip -= n;
      data = data.subarray(n);
    }
    if (data.length === 0) return callback();
    try {
      this.onChunk(data.length);
    } catch (err) {
      this.onLocalError(err);
      return callback(err as Error);
    }
    callback(null, data);
  }

  override _flush(callback: TransformCallback): void {
    if (this.toSkip === 0) return callback();
    const err = new Error(`the source stream ended ${this.toSkip} bytes before the resume point`);
    this.onLocalError(err);
    callback(err);
  }
}

/**
 * The stream a download hands to basic-ftp: writes each chunk to `target` and waits until
 * the target has taken it (backpressure), reporting each chunk. It never ends the target:
 * the caller does that only after the server confirmed the transfer, so a failed download
 * leaves a caller's stream open and lets the caller discard a temporary file.
 */
export class ForwardingSink extends Writable {
  constructor(
    private readonly target: Writable,
    private readonly onChunk: (bytes: number) => void,
    private readonly onLocalError: (err: unknown) => void,
  ) {
    super();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    try {
      this.onChunk(chunk.length);
    } catch (err) {
      this.onLocalError(err);
      return callback(err as Error);
    }
    this.target.write(chunk, (err) => {
      if (err) {
        this.onLocalError(err);
        callback(err);
      } else callback();
    });
  }
}
