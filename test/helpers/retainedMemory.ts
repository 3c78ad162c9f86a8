import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

/**
 * What this process really holds, for memory-bound tests of a server running in-process:
 * heap and buffer memory still referenced after a full garbage collection (garbage from
 * the test's own traffic does not count).
 */

setFlagsFromString('--expose-gc');
/** V8's full garbage collection (exposed at run time: ava's node arguments are shared). */
const gc = runInNewContext('gc') as () => void;

/** Heap and buffer memory still referenced after a full GC, in bytes. */
export function retained(): number {
  gc();
  gc();
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
}
