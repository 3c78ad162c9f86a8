import test from 'ava';
import { BufferSlab, SLOT_BYTES } from '../src/storage/local/BufferSlab.js';

/** BufferSlab: the reused memory behind local downloads' read buffers and uploads' staging buffers. */

function overlaps(a: Buffer, b: Buffer): boolean {
  if (a.buffer !== b.buffer) return false;
  return a.byteOffset < b.byteOffset + b.length && b.byteOffset < a.byteOffset + a.length;
}

test('buffers taken at once never share memory, and are whole slots', (t) => {
  const slab = new BufferSlab(16 * SLOT_BYTES, 16 * SLOT_BYTES);
  const taken = [slab.take(1), slab.take(SLOT_BYTES + 1), slab.take(4 * SLOT_BYTES), slab.take(SLOT_BYTES)];
  t.deepEqual(
    taken.map((b) => b.length),
    [SLOT_BYTES, 2 * SLOT_BYTES, 4 * SLOT_BYTES, SLOT_BYTES],
  );
  for (let i = 0; i < taken.length; i++) for (let j = i + 1; j < taken.length; j++) t.false(overlaps(taken[i]!, taken[j]!), `${i} and ${j}`);
  t.is(slab.bytesInUse, 8 * SLOT_BYTES);
});

test('a buffer given back is reused by the next take, so steady downloads allocate nothing', (t) => {
  const slab = new BufferSlab(4 * SLOT_BYTES, 4 * SLOT_BYTES);
  const first = slab.take(2 * SLOT_BYTES);
  slab.give(first);
  t.is(slab.bytesInUse, 0);
  const second = slab.take(2 * SLOT_BYTES);
  t.is(second.buffer, first.buffer);
  t.is(second.byteOffset, first.byteOffset);
});

test('when no free run is long enough, take() returns a buffer of its own, and giving it back changes nothing', (t) => {
  const slab = new BufferSlab(4 * SLOT_BYTES, 4 * SLOT_BYTES);
  const a = slab.take(SLOT_BYTES);
  const b = slab.take(2 * SLOT_BYTES);
  const c = slab.take(2 * SLOT_BYTES); // only one slot left
  t.not(c.buffer, a.buffer);
  t.is(c.length, 2 * SLOT_BYTES);
  slab.give(c);
  t.is(slab.bytesInUse, 3 * SLOT_BYTES);
  slab.give(a);
  // The freed first slot and the last one are not adjacent: two slots still do not fit.
  t.not(slab.take(2 * SLOT_BYTES).buffer, b.buffer);
  slab.give(b);
  t.is(slab.bytesInUse, 0);
  t.is(slab.take(4 * SLOT_BYTES).buffer, b.buffer);
});

test('segments are taken one at a time: a lone download costs one segment; a buffer never spans two', (t) => {
  const slab = new BufferSlab(12 * SLOT_BYTES, 4 * SLOT_BYTES);
  t.is(slab.bytesAllocated, 0, 'nothing before the first take');
  const a = slab.take(2 * SLOT_BYTES);
  const b = slab.take(2 * SLOT_BYTES);
  t.is(slab.bytesAllocated, 4 * SLOT_BYTES, 'both fit in the first segment');
  t.is(a.buffer, b.buffer);
  const c = slab.take(3 * SLOT_BYTES); // the first segment is full: the second is taken
  t.not(c.buffer, a.buffer);
  t.is(slab.bytesAllocated, 8 * SLOT_BYTES);
  const d = slab.take(1);
  t.is(d.buffer, c.buffer, 'the free slot of an allocated segment is used before a new segment');
  slab.give(a);
  const e = slab.take(2 * SLOT_BYTES);
  t.is(e.buffer, a.buffer, 'freed slots are reused');
  t.is(e.byteOffset, a.byteOffset);
  t.is(slab.take(5 * SLOT_BYTES).buffer.byteLength, 5 * SLOT_BYTES, 'larger than a segment: a buffer of its own');
  for (const x of [b, c, d, e]) slab.give(x);
  t.is(slab.bytesInUse, 0);
});

test('a size that is not a whole number of segments or slots is refused', (t) => {
  t.throws(() => new BufferSlab(SLOT_BYTES + 1, SLOT_BYTES), { instanceOf: RangeError });
  t.throws(() => new BufferSlab(0), { instanceOf: RangeError });
  t.throws(() => new BufferSlab(8 * SLOT_BYTES, 3 * SLOT_BYTES + 1), { instanceOf: RangeError });
  t.throws(() => new BufferSlab(8 * SLOT_BYTES, 3 * SLOT_BYTES), { instanceOf: RangeError });
});

test('segments empty for the idle time are let go (onRelease runs once); a segment in use, or emptied since, stays', async (t) => {
  let releases = 0;
  const slab = new BufferSlab(8 * SLOT_BYTES, 4 * SLOT_BYTES, 60_000, () => releases++);
  const a = slab.take(4 * SLOT_BYTES); // fills segment 0
  const b = slab.take(SLOT_BYTES); // segment 1
  t.is(slab.bytesAllocated, 8 * SLOT_BYTES);
  slab.give(a);
  t.is(slab.releaseIdle(60_000), 0, 'segment 0 has not been empty for the idle time yet');
  t.is(releases, 0);
  t.is(slab.releaseIdle(0), 4 * SLOT_BYTES, 'segment 0 is empty: let go; segment 1 holds b');
  t.is(releases, 1);
  t.is(slab.bytesAllocated, 4 * SLOT_BYTES);
  t.is(slab.releaseIdle(0), 0, 'nothing more to let go: no second onRelease');
  t.is(releases, 1);
  // The next buffer lands in the segment still allocated; a let-go segment is taken afresh when needed.
  const c = slab.take(SLOT_BYTES);
  t.is(c.buffer, b.buffer);
  const d = slab.take(4 * SLOT_BYTES);
  t.not(d.buffer, a.buffer);
  t.is(slab.bytesInUse, 6 * SLOT_BYTES);
  for (const x of [b, c, d]) slab.give(x);
  t.is(slab.releaseIdle(0), 8 * SLOT_BYTES);
  t.is(slab.bytesAllocated, 0);
});

test('the release runs by itself once a segment has been empty for the idle time', async (t) => {
  let releases = 0;
  const slab = new BufferSlab(4 * SLOT_BYTES, 4 * SLOT_BYTES, 30, () => releases++);
  slab.give(slab.take(SLOT_BYTES));
  const deadline = Date.now() + 5000;
  while (slab.bytesAllocated !== 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
  t.is(slab.bytesAllocated, 0);
  t.is(releases, 1);
});
