import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Readable } from 'node:stream';
import test from 'ava';
import { AtomicUpload, EARLY_FLUSH_BYTES } from '../src/storage/local/AtomicUpload.js';
import { JailResolver } from '../src/storage/local/JailResolver.js';

/** AtomicUpload's early flush: a durable upload starts writing to disk while it is still being received. */

async function upload(fsync: boolean, chunks: Buffer[]): Promise<{ upload: AtomicUpload; stored: Buffer; leftovers: string[] }> {
  const root = await mkdtemp(join(tmpdir(), 'dfos-flush-'));
  try {
    const dir = await new JailResolver(root).openDirectory('/');
    const up = await AtomicUpload.open(dir, 'big.bin', '/big.bin', undefined, { fsync });
    await pipeline(Readable.from(chunks), up.stream);
    await up.commit();
    return { upload: up, stored: await readFile(join(root, 'big.bin')), leftovers: (await readdir(root)).filter((n) => n !== 'big.bin') };
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}

/** `count` chunks of 1 MiB, each filled with its index, so a misplaced chunk shows. */
function chunks(count: number): Buffer[] {
  return Array.from({ length: count }, (_, i) => Buffer.alloc(1 << 20, i % 251));
}

test('with fsync an upload flushes early as it grows (at least one flush per EARLY_FLUSH_BYTES while no other runs) and is stored byte-exact', async (t) => {
  const data = chunks((3 * EARLY_FLUSH_BYTES) >> 20);
  const { upload: up, stored, leftovers } = await upload(true, data);
  t.true(up.earlyFlushes >= 1, `early flushes: ${up.earlyFlushes}`);
  t.true(up.earlyFlushes <= 3, `at most one per ${EARLY_FLUSH_BYTES} bytes: ${up.earlyFlushes}`);
  t.true(stored.equals(Buffer.concat(data)));
  t.deepEqual(leftovers, [], 'no temporary left');
});

test('without fsync, or below the threshold, no early flush', async (t) => {
  const never = await upload(false, chunks((2 * EARLY_FLUSH_BYTES) >> 20));
  t.is(never.upload.earlyFlushes, 0);
  const small = await upload(true, chunks((EARLY_FLUSH_BYTES >> 20) - 1));
  t.is(small.upload.earlyFlushes, 0);
  t.true(small.stored.equals(Buffer.concat(chunks((EARLY_FLUSH_BYTES >> 20) - 1))));
});
