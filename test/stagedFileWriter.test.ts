import { randomBytes } from 'node:crypto';
import { mkdtemp, open, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { COPY_IN_MAX } from '../src/storage/StorageBackend.js';
import { StagedFileWriter } from '../src/storage/local/StagedFileWriter.js';

/** StagedFileWriter: copied-in bytes land in the file in order, at the right offsets, through two reused buffers. */

async function withFile<T>(run: (path: string) => Promise<T>): Promise<T> {
  const root = await mkdtemp(join(tmpdir(), 'dfos-staged-'));
  try {
    return await run(join(root, 'file.bin'));
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}

/** Copies `data` in pieces of the given sizes (cycled), waiting for room whenever asked to. */
async function copyAll(writer: StagedFileWriter, data: Buffer, sizes: number[]): Promise<number> {
  let waits = 0;
  for (let at = 0, i = 0; at < data.length; i++) {
    const piece = data.subarray(at, at + sizes[i % sizes.length]!);
    // The caller's buffer is reused at once: overwrite a scratch copy after each call.
    const scratch = Buffer.from(piece);
    if (!writer.copyIn(scratch)) {
      waits++;
      await writer.room();
    }
    scratch.fill(0xee);
    at += piece.length;
  }
  return waits;
}

test('bytes copied in are written in order from the start offset, byte-exact, though the caller reuses its buffer at once', async (t) => {
  await withFile(async (path) => {
    await writeFile(path, Buffer.alloc(1000, 0x41));
    const data = randomBytes(5 * 1024 * 1024 + 123);
    const handle = await open(path, 'r+');
    const writes: number[] = [];
    const writer = new StagedFileWriter(handle, 1000, (bytes) => writes.push(bytes));
    const waits = await copyAll(writer, data, [COPY_IN_MAX, 1, 4095, 30_000, COPY_IN_MAX - 1]);
    await writer.flush();
    await writer.release();
    await handle.close();
    const stored = await readFile(path);
    t.true(stored.subarray(0, 1000).equals(Buffer.alloc(1000, 0x41)), 'bytes before the offset untouched');
    t.true(stored.subarray(1000).equals(data), 'content exact');
    t.is(writes.reduce((a, b) => a + b, 0), data.length, 'onWritten saw every byte once');
    t.true(writes.length < data.length / COPY_IN_MAX, `written in buffers larger than one piece: ${writes.length} writes`);
    t.true(waits > 0, 'the caller was asked to wait for room at least once');
  });
});

test('copyIn without room, or of more than COPY_IN_MAX bytes, is refused; room() resolves once a buffer is free', async (t) => {
  await withFile(async (path) => {
    const handle = await open(path, 'w');
    const writer = new StagedFileWriter(handle, 0);
    t.throws(() => writer.copyIn(Buffer.alloc(COPY_IN_MAX + 1)), { instanceOf: RangeError });
    let full = 0;
    while (writer.copyIn(Buffer.alloc(COPY_IN_MAX, 1))) full++;
    // Both buffers taken: one being written, one sealed. Until the write ends, no room.
    t.false(writer.hasRoom);
    t.throws(() => writer.copyIn(Buffer.alloc(1)), { instanceOf: RangeError });
    await writer.room();
    t.true(writer.hasRoom);
    writer.copyIn(Buffer.alloc(1, 2));
    await writer.flush();
    await writer.release();
    await writer.release(); // idempotent
    t.throws(() => writer.copyIn(Buffer.alloc(1)), { message: /closed/ });
    await handle.close();
    t.is((await readFile(path)).length, (full + 1) * COPY_IN_MAX + 1);
  });
});

test('a failed write fails room(), the next copyIn and flush() with its error', async (t) => {
  await withFile(async (path) => {
    await writeFile(path, '');
    const handle = await open(path, 'r'); // read-only: every write fails with EBADF
    const writer = new StagedFileWriter(handle, 0);
    let error: unknown;
    try {
      for (let i = 0; i < 1000; i++) if (!writer.copyIn(Buffer.alloc(COPY_IN_MAX))) await writer.room();
    } catch (err) {
      error = err;
    }
    t.is((error as NodeJS.ErrnoException | undefined)?.code, 'EBADF');
    t.throws(() => writer.copyIn(Buffer.alloc(1)), { code: 'EBADF' });
    await t.throwsAsync(writer.room(), { code: 'EBADF' });
    await t.throwsAsync(writer.flush(), { code: 'EBADF' });
    await writer.release();
    await handle.close();
  });
});
