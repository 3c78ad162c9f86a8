import { Transform, type TransformCallback } from 'node:stream';

/** What paces the stream (a RateShaper): grants `bytes` piece by piece, calling `grant` for each. */
export interface Pacer {
  take(bytes: number, grant: (start: number, end: number) => boolean): Promise<void>;
}

/**
 * A pass-through stream paced by a {@link Pacer} (the RateShaper): each chunk is pushed on in pieces as
 * the shaper grants them, and the next chunk is accepted only after the last piece, so
 * backpressure reaches the source (a download's file read, an upload's socket). Once the
 * stream is destroyed (connection closed, transfer aborted) nothing more is pushed.
 */
export class ShapedStream extends Transform {
  constructor(private readonly shaper: Pacer) {
    super();
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    const push = (start: number, end: number): boolean => {
      if (this.destroyed) return false;
      this.push(chunk.subarray(start, end));
      return true;
    };
    this.shaper.take(chunk.length, push).then(
      () => done(),
      (err: unknown) => done(err as Error),
    );
  }
}
