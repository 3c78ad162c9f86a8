import test from 'ava';
import { randomBytes } from 'node:crypto';
import { open, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { sendFile } from '../src/storage/local/sendFile.js';
import { StagedFileWriter } from '../src/storage/local/StagedFileWriter.js';
import { SEGMENT_BYTES } from '../src/storage/local/BufferSlab.js';
import { transferSlab } from '../src/storage/local/transferSlab.js';
import { sameBytes, tempDir } from './helpers/clientFixtures.js';
import { socketPair } from './helpers/loopbackSocket.js';

/**
 * The transfer slab: downloads (sendFile) and uploads (StagedFileWriter) take their buffers
 * from one slab, so the memory a burst of downloads took serves the uploads that follow
 * instead of new memory (each new page is a page fault, dear on a virtual machine). This
 * file runs in its own process: the slab starts empty.
 */

test.serial('uploads stage in the memory that downloads gave back: no new segment, and everything is given back', async (t) => {
  t.is(transferSlab.bytesAllocated, 0, 'the slab starts empty');
  const dir = await tempDir(t, 'dfos-transfer-slab-');
  const content = randomBytes((3 << 20) + 4321);
  await writeFile(join(dir, 'f.bin'), content);

  // 6 downloads at once (two 1 MiB buffers each): three segments of the slab.
  const downloads = await Promise.all(
    Array.from({ length: 6 }, async () => {
      const pair = await socketPair();
      t.teardown(() => pair.close());
      const file = await open(join(dir, 'f.bin'), 'r');
      try {
        await sendFile(file.fd, pair.sender, 0, content.length);
      } finally {
        await file.close();
      }
      return (await pair.received).bytes;
    }),
  );
  downloads.forEach((bytes, i) => sameBytes(t, bytes, content, `download ${i}`));
  const allocated = transferSlab.bytesAllocated;
  t.true(allocated >= 2 * SEGMENT_BYTES, `the downloads took at least two segments (${allocated} bytes)`);
  t.is(transferSlab.bytesInUse, 0, 'the downloads gave every buffer back');

  // 2 uploads (two 1 MiB staging buffers each) right after: served from those segments.
  const writers = await Promise.all(
    Array.from({ length: 2 }, async (_, i) => {
      const handle = await open(join(dir, `up${i}.bin`), 'w');
      t.teardown(() => handle.close());
      return { handle, writer: new StagedFileWriter(handle, 0) };
    }),
  );
  t.is(transferSlab.bytesInUse, 4 << 20, 'each upload staged in two 1 MiB buffers of the slab');
  t.is(transferSlab.bytesAllocated, allocated, 'no new segment: the uploads reuse what the downloads gave back');
  const data = randomBytes(3 << 20);
  await Promise.all(
    writers.map(async ({ writer }) => {
      for (let at = 0; at < data.length; at += 64 << 10) {
        if (!writer.copyIn(data.subarray(at, at + (64 << 10)))) await writer.room();
      }
      await writer.flush();
      await writer.release();
    }),
  );
  t.is(transferSlab.bytesInUse, 0, 'the uploads gave every buffer back');
  for (const { handle } of writers) {
    const { size } = await handle.stat();
    t.is(size, data.length, 'each upload wrote every byte');
  }
  t.is(transferSlab.releaseIdle(0), allocated, 'once idle, every segment can be let go');
});
