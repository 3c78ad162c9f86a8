import type { Transform } from 'node:stream';
import { TokenBucket } from 'limiter';
import { ShapedStream } from './ShapedStream.js';

/**
 * How much a bucket holds, in seconds of its rate: the largest burst after a pause. Small
 * (100 ms), so a transfer runs at an even pace instead of a second's worth at once and
 * then a stall.
 */
export const BURST_SECONDS = 0.1;
/**
 * A grant covers at most a quarter of the burst: tokens that drip in while a chunk waits
 * (a timer firing late) still fit in the bucket, so the measured rate stays the set rate.
 */
const CHUNKS_PER_BURST = 4;
/** And at most 64 KiB, so fast rates still move in steady steps. */
const MAX_CHUNK = 64 * 1024;

/** Tokens a bucket of `rate` bytes/s holds at most. */
function burstOf(rate: number): number {
  return Math.max(1, Math.ceil(rate * BURST_SECONDS));
}

/** The most bytes one grant from `bucket` covers (no bucket: no bound). */
function chunkOf(bucket: TokenBucket | undefined): number {
  if (!bucket) return Number.POSITIVE_INFINITY;
  return Math.max(1, Math.min(MAX_CHUNK, Math.floor(bucket.bucketSize / CHUNKS_PER_BURST)));
}

/**
 * Paces bytes in one direction to a rate (bytes/s) with a token bucket: each byte needs a
 * token, tokens drip in continuously at the rate, and the bucket holds at most
 * {@link BURST_SECONDS} of them. A shaper may have a parent (the server-wide cap of the
 * same direction): then each byte needs a token from its own bucket and then one from the
 * parent's. With no rate of its own a shaper passes its parent's pace through; with
 * neither it is not {@link limited} and callers skip it.
 *
 * The buckets are the `limiter` package's TokenBucket (maintained, no dependencies, no
 * install scripts): its drip arithmetic, and its queue that serves the requests on one
 * bucket in order with one timer. Its own hierarchy (`parentBucket`) is not used: a child
 * waiting for its parent polls outside the parent's queue, and under a shared cap one
 * user's transfer then took nearly all of it while another waited (1.5 s against 3 s for
 * equal shares). Taking from the parent's bucket through its queue serves every user's
 * chunks in turn, so the cap is shared evenly.
 *
 * Requests are split into chunks (at most a quarter of the smallest burst involved, and at
 * most 64 KiB), each granted when its tokens are there: a large write is sent as a steady
 * trickle, never held back and then burst.
 */
export class RateShaper {
  #own: TokenBucket | undefined;

  /** `parent`: the cap this shaper's bytes also count against (it must have a rate). */
  constructor(private readonly parent?: RateShaper, rate?: number) {
    this.setRate(rate);
  }

  /**
   * Sets (or, with undefined or 0, removes) this shaper's own rate. Takes effect at the next
   * chunk, also for transfers already running through it.
   */
  setRate(rate: number | undefined): void {
    if (!rate || rate <= 0) {
      this.#own = undefined;
    } else if (!this.#own) {
      this.#own = new TokenBucket({ bucketSize: burstOf(rate), tokensPerInterval: rate, interval: 1000 });
    } else if (this.#own.tokensPerInterval !== rate) {
      // Tokens earned at the old rate are kept (up to the new burst); the new rate counts from now.
      this.#own.drip();
      this.#own.tokensPerInterval = rate;
      this.#own.bucketSize = burstOf(rate);
      this.#own.content = Math.min(this.#own.content, this.#own.bucketSize);
    }
  }

  /** Whether any rate applies (its own or its parent's); when not, callers take the fast path. */
  get limited(): boolean {
    return this.#own !== undefined || this.capBucket() !== undefined;
  }

  /**
   * Resolves once `bytes` may be sent. With `grant`, it is called as each chunk is granted
   * (byte range within the request), so the caller sends the chunk then; returning false
   * stops early (the caller gave up, e.g. the connection closed).
   */
  async take(bytes: number, grant?: (start: number, end: number) => boolean): Promise<void> {
    let done = 0;
    while (done < bytes) {
      const own = this.#own;
      const cap = this.capBucket();
      const size = Math.min(bytes - done, chunkOf(own), chunkOf(cap));
      if (own) {
        try {
          await own.removeTokens(size);
        } catch (err) {
          // The rate was lowered while this chunk waited, so it no longer fits the bucket: ask again, smaller.
          if (err instanceof RangeError && size > chunkOf(own)) continue;
          throw err;
        }
      }
      if (cap) await cap.removeTokens(size);
      if (grant && !grant(done, done + size)) return;
      done += size;
    }
  }

  /** A Transform that passes bytes through at this shaper's pace (for a stream pipeline). */
  stream(): Transform {
    return new ShapedStream(this);
  }

  /**
   * The stages to add to a pipeline: the shaping Transform when a rate applies, none when
   * not (so an unlimited transfer has no extra stage at all).
   */
  stages(): Transform[] {
    return this.limited ? [this.stream()] : [];
  }

  /** The parent's bucket, if the parent has a rate. */
  private capBucket(): TokenBucket | undefined {
    return this.parent ? this.parent.#own : undefined;
  }
}
