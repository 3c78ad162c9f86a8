import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

/**
 * Runs a full garbage collection now. For the rare moments the server knows a lot of memory
 * just became garbage and no allocation will follow soon to trigger a collection by itself
 * (e.g. download buffers let go after a burst): without one the memory stays resident while
 * the server is idle. V8 offers `gc()` only with --expose-gc; setting the flag at run time
 * gives new contexts that function, so one is taken from a fresh vm context, once.
 */
export function collectGarbage(): void {
  collect ??= loadGc();
  collect();
}

let collect: (() => void) | undefined;

function loadGc(): () => void {
  const exposed = (globalThis as { gc?: () => void }).gc;
  if (typeof exposed === 'function') return exposed;
  setFlagsFromString('--expose-gc');
  return runInNewContext('gc') as () => void;
}
