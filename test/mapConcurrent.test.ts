import test from 'ava';
import { mapConcurrent } from '../src/util/mapConcurrent.js';

test('mapConcurrent keeps the input order and never runs more than the limit at once', async (t) => {
  let running = 0;
  let peak = 0;
  const items = Array.from({ length: 100 }, (_, i) => i);
  const out = await mapConcurrent(items, 7, async (i) => {
    running++;
    peak = Math.max(peak, running);
    await new Promise((r) => setTimeout(r, (i * 7919) % 5));
    running--;
    return i * 2;
  });
  t.deepEqual(out, items.map((i) => i * 2));
  t.is(peak, 7);
});

test('mapConcurrent handles an empty list and a limit larger than the list', async (t) => {
  t.deepEqual(await mapConcurrent([], 8, async (x: number) => x), []);
  t.deepEqual(await mapConcurrent([1, 2], 8, async (x) => x + 1), [2, 3]);
});
