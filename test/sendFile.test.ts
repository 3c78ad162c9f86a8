import test, { type ExecutionContext } from 'ava';
import { randomBytes } from 'node:crypto';
import { open, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { sendFile } from '../src/storage/local/sendFile.js';
import { sameBytes, tempDir } from './helpers/clientFixtures.js';
import { socketPair, type Pair } from './helpers/loopbackSocket.js';
import type { Socket } from 'node:net';

/**
 * sendFile: the download loop behind RETR (two reused buffers of up to 1 MiB; one when more
 * than 16 downloads run, as in the 60-download test below). Real files, real
 * loopback sockets: exact bytes across chunk boundaries and from offsets, a clean FIN at
 * the end, and a rejection (never a crash or a hang) when the receiver goes away.
 */

const SIZES: Array<[string, number, number]> = [
  ['an empty file', 0, 0],
  ['a file smaller than one chunk', 1000, 0],
  ['exactly two chunks', 2 << 20, 0],
  ['3 MiB + 12345 bytes', (3 << 20) + 12345, 0],
  ['3 MiB + 12345 bytes from an offset inside the second chunk', (3 << 20) + 12345, (1 << 20) + 777],
  ['from an offset on a chunk boundary', (3 << 20) + 1, 2 << 20],
  ['from the end of the file (nothing to send)', 4096, 4096],
];

for (const [what, size, start] of SIZES) {
  test(`sends ${what} exactly and ends with FIN`, async (t) => {
    const dir = await tempDir(t, 'dfos-sendfile-');
    const content = randomBytes(size);
    const path = join(dir, 'f.bin');
    await writeFile(path, content);
    const pair = await socketPair();
    t.teardown(() => pair.close());
    const file = await open(path, 'r');
    try {
      await sendFile(file.fd, pair.sender, start, size - start);
    } finally {
      await file.close();
    }
    const { bytes, ended } = await pair.received;
    t.true(ended, 'the receiver saw a clean end of stream');
    sameBytes(t, bytes, content.subarray(start));
    t.is(pair.sender.bytesWritten, size - start);
  });
}

/**
 * Starts sending a 256 MiB file to a receiver that does not read, runs `interrupt` 100 ms
 * in, and returns sendFile's outcome (the error it rejected with).
 */
async function interruptedSend(t: ExecutionContext, interrupt: (pair: Pair, receiver: Socket) => void): Promise<{ error: unknown; pair: Pair }> {
  const dir = await tempDir(t, 'dfos-sendfile-');
  const path = join(dir, 'big.bin');
  const size = 256 << 20;
  await writeFile(path, Buffer.alloc(size, 1));
  const pair = await socketPair();
  t.teardown(() => pair.close());
  const receiver = await pair.receiver;
  receiver.pause();
  setTimeout(() => interrupt(pair, receiver), 100);
  const file = await open(path, 'r');
  try {
    await sendFile(file.fd, pair.sender, 0, size);
    return { error: undefined, pair };
  } catch (error) {
    return { error, pair };
  } finally {
    await file.close();
  }
}

test('rejects (no crash, no hang) when the receiver resets mid-transfer', async (t) => {
  const { error, pair } = await interruptedSend(t, (_pair, receiver) => receiver.resetAndDestroy());
  t.true(error instanceof Error, 'sendFile rejected');
  t.true(pair.sender.bytesWritten < 256 << 20);
});

test('rejects when the sending socket is destroyed mid-transfer (ABOR, data timeout)', async (t) => {
  const { error } = await interruptedSend(t, (pair) => pair.sender.destroy(new Error('aborted by the test')));
  t.true(error instanceof Error, 'sendFile rejected');
  t.regex((error as Error).message, /aborted by the test|destroyed|closed/);
});

/** Writes `content` to `dir/name`, sends it whole over a fresh loopback pair, returns what arrived. */
async function sendWhole(t: ExecutionContext, dir: string, name: string, content: Buffer): Promise<Buffer> {
  const path = join(dir, name);
  await writeFile(path, content);
  const pair = await socketPair();
  t.teardown(() => pair.close());
  const file = await open(path, 'r');
  try {
    await sendFile(file.fd, pair.sender, 0, content.length);
  } finally {
    await file.close();
  }
  return (await pair.received).bytes;
}

test('60 downloads at once, sharing the read-buffer slab, each receive exactly their own file', async (t) => {
  const dir = await tempDir(t, 'dfos-sendfile-');
  const count = 60;
  const contents = Array.from({ length: count }, (_, i) => randomBytes((1 << 20) + 4096 * i + i));
  const received = await Promise.all(contents.map((content, i) => sendWhole(t, dir, `f${i}.bin`, content)));
  received.forEach((bytes, i) => sameBytes(t, bytes, contents[i]!));
});

test('a download that failed gives its buffers back: the next ones still receive exact bytes', async (t) => {
  await interruptedSend(t, (_pair, receiver) => receiver.resetAndDestroy());
  const dir = await tempDir(t, 'dfos-sendfile-');
  const content = randomBytes((5 << 20) + 3);
  sameBytes(t, await sendWhole(t, dir, 'after.bin', content), content);
});
