import test from 'ava';
import { randomBytes } from 'node:crypto';
import { Client } from 'basic-ftp';
import { DfosClient } from '../src/client/index.js';
import { decodePreview } from '../src/preview/previewFormat.js';
import { connectClient, startControlRelay } from './helpers/clientFixtures.js';
import { startTestServer } from './helpers/testServer.js';

/** Text of exactly `n` bytes: numbered lines ending in LF, cut to size. */
function lines(n: number, eol = '\n'): Buffer {
  let text = '';
  for (let i = 0; text.length < n; i++) text += `line ${i}: some text${eol}`;
  return Buffer.from(text.slice(0, n));
}

/** Every case the issue names, plus a few neighbours (blank lines, backslashes, a CRLF cut at the limit). */
const CASES: [string, Buffer][] = [
  ['text with CRLF', Buffer.from('line one\r\nline two\r\n\r\nlast\r\n')],
  ['no trailing newline', Buffer.from('alpha\nbeta')],
  ['UTF-8 cut mid-character at byte 1024', Buffer.concat([Buffer.from('a'.repeat(1023)), Buffer.from('€ and more text after it')])],
  ['tabs and ESC', Buffer.from('col1\tcol2\t\x1b[31mred\x1b[0m\n\\back\\slash \\x41 \\&\n   \n\n\ttab line\n')],
  ['NUL bytes', Buffer.from('abc\0def\n\0\0\0\n')],
  ['binary', randomBytes(3000)],
  ['empty file', Buffer.alloc(0)],
  ['exactly 1024 bytes', lines(1024)],
  ['1025 bytes', lines(1025)],
  ['CRLF cut between CR and LF at byte 1024', Buffer.concat([lines(1023, '\r\n').subarray(0, 1022), Buffer.from('x\r\nmore\r\n')])],
  ['blank lines only', Buffer.from('\n\n\n')],
  ['lone CR and trailing spaces', Buffer.from('a\rb  \n  \ncarriage\r')],
  ['multi-byte UTF-8', Buffer.from('Grüße, 日本語, emoji 🎉\n')],
];

test('view() is exact for every case (direct connection)', async (t) => {
  const srv = await startTestServer();
  t.teardown(() => srv.stop());
  const client = await connectClient(t, srv);
  t.is(CASES[2]![1][1023], 0xe2, 'the euro sign starts at byte 1023, so byte 1024 cuts it');
  for (const [i, [name, content]] of CASES.entries()) {
    await client.upload(content, `case${i}`);
    const preview = await client.preview(`case${i}`);
    t.deepEqual(preview.bytes, content.subarray(0, 1024), name);
    t.is(preview.fileSize, content.length, name);
    t.is(preview.truncated, content.length > 1024, name);
    t.deepEqual(await client.view(`case${i}`), content.subarray(0, 1024), name);
  }
});

test('basic-ftp split-reply defect: view() stays exact when replies arrive in 7-byte TCP pieces', async (t) => {
  const srv = await startTestServer();
  t.teardown(() => srv.stop());
  const relay = await startControlRelay(srv.port, { split: true, chunkSize: 7 });
  t.teardown(() => relay.close());
  // Every reply, from the greeting on, comes in pieces.
  const client = await DfosClient.connect({ host: '127.0.0.1', port: relay.port, user: 'alice', password: 'alice-pw', timeoutMs: 20_000 });
  t.teardown(() => client.close());
  for (const [i, [name, content]] of CASES.entries()) {
    await client.upload(content, `case${i}`);
    t.deepEqual(await client.view(`case${i}`), content.subarray(0, 1024), name);
  }
  t.deepEqual((await client.list()).length, CASES.length);
  t.true(relay.writes > 1000, `the relay really split the replies (${relay.writes} writes)`);
});

test('basic-ftp split-reply defect: without the fix, the same split breaks SITE VIEW (control)', async (t) => {
  const srv = await startTestServer();
  t.teardown(() => srv.stop());
  const content = randomBytes(1024);
  const direct = await srv.client();
  const { Readable } = await import('node:stream');
  await direct.uploadFrom(Readable.from([content]), 'bin');

  const relay = await startControlRelay(srv.port, { split: false });
  t.teardown(() => relay.close());
  const vanilla = new Client(3000);
  t.teardown(() => vanilla.close());
  await vanilla.access({ host: '127.0.0.1', port: relay.port, user: 'alice', password: 'alice-pw' });
  relay.split = true;
  let outcome: string;
  try {
    const res = await vanilla.send('SITE VIEW bin');
    const bytes = decodePreview(res.message).bytes;
    outcome = bytes.equals(content) ? 'exact' : 'wrong bytes';
  } catch (err) {
    outcome = `failed: ${(err as Error).message.split('\n')[0]}`;
  }
  t.log(outcome);
  t.not(outcome, 'exact', 'vanilla basic-ftp cannot read a split multi-line reply');
});
