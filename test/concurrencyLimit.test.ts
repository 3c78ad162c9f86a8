import test from 'ava';
import { concurrencyLimit } from '../src/util/concurrencyLimit.js';

test('concurrencyLimit runs at most `limit` tasks at once, all of them, in arrival order', async (t) => {
  const limit = concurrencyLimit(4);
  let running = 0;
  let peak = 0;
  const started: number[] = [];
  const results = await Promise.all(
    Array.from({ length: 40 }, (_, i) =>
      limit(async () => {
        started.push(i);
        running++;
        peak = Math.max(peak, running);
        await new Promise((r) => setTimeout(r, (i * 31) % 7));
        running--;
        return i;
      }),
    ),
  );
  t.deepEqual(results, Array.from({ length: 40 }, (_, i) => i));
  t.is(peak, 4);
  t.deepEqual(started, Array.from({ length: 40 }, (_, i) => i), 'waiting tasks start in arrival order');
});

test('concurrencyLimit frees the slot of a failing task', async (t) => {
  const limit = concurrencyLimit(1);
  await t.throwsAsync(limit(async () => { throw new Error('boom'); }), { message: 'boom' });
  t.is(await limit(async () => 'next'), 'next');
  t.throws(() => concurrencyLimit(0), { instanceOf: RangeError });
});
