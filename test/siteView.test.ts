import test, { type ExecutionContext } from 'ava';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { decodePreview, type PreviewMode } from '../src/preview/previewFormat.js';
import { RawFtp, type RawReply } from './helpers/rawFtp.js';
import { startTestServer, type TestServer } from './helpers/testServer.js';
import { assertNoServerPaths, ReplyRecorder } from './helpers/jailFixtures.js';
import { readJsonLines } from './helpers/logFiles.js';

/** Files stored in alice's home before the tests (name → content). */
const FILES: Record<string, Buffer> = {
  'short.txt': Buffer.from('hello\nworld\n'),
  'crlf.txt': Buffer.from('first\r\nsecond\r\n'),
  'nonl.txt': Buffer.from('abc\ndef'),
  'binary.bin': Buffer.from(Array.from({ length: 40 }, (_, i) => (i * 7) % 256)),
  'empty.txt': Buffer.alloc(0),
  'big.txt': Buffer.from(Array.from({ length: 500 }, (_, i) => `line ${String(i).padStart(4, '0')}\n`).join('')), // 5000 bytes
  'exact.txt': Buffer.from('x'.repeat(1023) + '\n'),
  'tricky.txt': Buffer.from('200 not the end\n\n\ttab\\back\x1b[31m\x7f\u0085\n 200 VIEW end\n'),
  'utf8cut.txt': Buffer.from('é'.repeat(700)), // 1400 bytes: byte 1024 falls inside a character
  'big.bin': Buffer.concat([Buffer.from([0, 1, 2, 255]), Buffer.alloc(3000, 0xab)]),
};

async function viewServer(t: ExecutionContext): Promise<{ srv: TestServer; raw: RawFtp; rec: ReplyRecorder }> {
  const srv = await startTestServer();
  t.teardown(() => srv.stop());
  const home = join(srv.storage, 'alice');
  await mkdir(join(home, 'dir'), { recursive: true });
  for (const [name, content] of Object.entries(FILES)) await writeFile(join(home, name), content);
  const rec = new ReplyRecorder();
  const raw = rec.watch(await RawFtp.login(srv.port, 'alice', 'alice-pw'));
  t.teardown(() => raw.close());
  return { srv, raw, rec };
}

/** Every content line starts with one space and carries no control character. */
function checkShape(t: ExecutionContext, reply: RawReply, name: string): void {
  t.is(reply.code, 200, `${name}: ${reply.raw.slice(0, 200)}`);
  t.regex(reply.lines[0]!, /^200-VIEW (text|hex) bytes=\d+ size=\d+( eol=(lf|crlf))?$/);
  t.is(reply.lines.at(-1), '200 VIEW end');
  for (const line of reply.lines.slice(1, -1)) {
    t.true(line.startsWith(' '), `${name}: content line without the leading space: ${JSON.stringify(line)}`);
    t.false(/[\u0000-\u001f\u007f-\u009f]/.test(line), `${name}: control character in ${JSON.stringify(line)}`);
  }
  t.false(/[\u0000-\u0009\u000b\u000c\u000e-\u001f\u007f-\u009f]/.test(reply.raw), `${name}: control character in the raw reply`);
}

/** The reply decodes to exactly the first min(1024, size) bytes of the file. */
function checkDecodes(t: ExecutionContext, text: string, name: string, mode?: PreviewMode): void {
  const content = FILES[name]!;
  const decoded = decodePreview(text);
  t.is(decoded.fileSize, content.length, name);
  t.true(decoded.bytes.equals(content.subarray(0, Math.min(1024, content.length))), `${name}: decoded bytes differ`);
  if (mode) t.is(decoded.mode, mode, name);
}

test('SITE VIEW of a short text file: exact reply', async (t) => {
  const { raw } = await viewServer(t);
  const r = await raw.command('SITE VIEW short.txt');
  t.deepEqual(r.lines, ['200-VIEW text bytes=12 size=12 eol=lf', ' hello', ' world', '200 VIEW end']);
  checkShape(t, r, 'short.txt');
  checkDecodes(t, r.raw, 'short.txt', 'text');
  t.true(await raw.silentFor(100));
});

test('SITE VIEW of a CRLF file and of a file without a trailing newline: exact replies', async (t) => {
  const { raw } = await viewServer(t);
  const crlf = await raw.command('SITE VIEW crlf.txt');
  t.deepEqual(crlf.lines, ['200-VIEW text bytes=15 size=15 eol=crlf', ' first', ' second', '200 VIEW end']);
  checkShape(t, crlf, 'crlf.txt');
  checkDecodes(t, crlf.raw, 'crlf.txt');
  const nonl = await raw.command('SITE VIEW nonl.txt');
  t.deepEqual(nonl.lines, ['200-VIEW text bytes=7 size=7 eol=lf', ' abc', ' def', '200 VIEW end']);
  checkShape(t, nonl, 'nonl.txt');
  checkDecodes(t, nonl.raw, 'nonl.txt');
  // The two are told apart by bytes=: the decoded file has no final newline.
  t.is(decodePreview(nonl.raw).bytes.toString(), 'abc\ndef');
});

test('SITE VIEW of a binary file: hex dump lines', async (t) => {
  const { raw } = await viewServer(t);
  const r = await raw.command('SITE VIEW binary.bin');
  const b = FILES['binary.bin']!;
  const hex = (from: number, to: number) => Array.from(b.subarray(from, to), (x) => x.toString(16).padStart(2, '0')).join(' ');
  const ascii = (from: number, to: number) => Array.from(b.subarray(from, to), (x) => (x >= 0x20 && x <= 0x7e ? String.fromCharCode(x) : '.')).join('');
  t.deepEqual(r.lines, [
    '200-VIEW hex bytes=40 size=40',
    ` 00000000  ${hex(0, 8)}  ${hex(8, 16)}  |${ascii(0, 16)}|`,
    ` 00000010  ${hex(16, 24)}  ${hex(24, 32)}  |${ascii(16, 32)}|`,
    // A short last line keeps the ASCII column where `hexdump -C` puts it.
    ' 00000020  e0 e7 ee f5 fc 03 0a 11                           |........|',
    '200 VIEW end',
  ]);
  checkShape(t, r, 'binary.bin');
  checkDecodes(t, r.raw, 'binary.bin', 'hex');
  const big = await raw.command('SITE VIEW big.bin');
  t.is(big.lines[0], '200-VIEW hex bytes=1024 size=3004');
  t.is(big.lines.length, 2 + 64);
  checkShape(t, big, 'big.bin');
  checkDecodes(t, big.raw, 'big.bin', 'hex');
});

test('SITE VIEW of an empty file', async (t) => {
  const { raw } = await viewServer(t);
  const r = await raw.command('SITE VIEW empty.txt');
  t.deepEqual(r.lines, ['200-VIEW text bytes=0 size=0 eol=lf', '200 VIEW end']);
  checkShape(t, r, 'empty.txt');
  checkDecodes(t, r.raw, 'empty.txt');
});

test('SITE VIEW shows at most 1024 bytes: a 5000-byte file and a file of exactly 1024 bytes', async (t) => {
  const { raw } = await viewServer(t);
  t.is(FILES['big.txt']!.length, 5000);
  const big = await raw.command('SITE VIEW big.txt');
  t.is(big.lines[0], '200-VIEW text bytes=1024 size=5000 eol=lf');
  t.is(big.lines[1], ' line 0000');
  // 1024 bytes = 102 full lines of 10 bytes + "line" of the 103rd.
  t.is(big.lines.length, 2 + 103);
  t.is(big.lines.at(-2), ' line');
  checkShape(t, big, 'big.txt');
  checkDecodes(t, big.raw, 'big.txt');

  const exact = await raw.command('SITE VIEW exact.txt');
  t.deepEqual(exact.lines, ['200-VIEW text bytes=1024 size=1024 eol=lf', ' ' + 'x'.repeat(1023), '200 VIEW end']);
  checkShape(t, exact, 'exact.txt');
  checkDecodes(t, exact.raw, 'exact.txt');

  const cut = await raw.command('SITE VIEW utf8cut.txt');
  t.is(cut.lines[0], '200-VIEW text bytes=1024 size=1400 eol=lf');
  checkShape(t, cut, 'utf8cut.txt');
  checkDecodes(t, cut.raw, 'utf8cut.txt', 'text');
});

test('SITE VIEW never lets content end the reply or carry control characters', async (t) => {
  const { raw } = await viewServer(t);
  const r = await raw.command('SITE VIEW tricky.txt');
  checkShape(t, r, 'tricky.txt');
  checkDecodes(t, r.raw, 'tricky.txt', 'text');
  t.is(r.lines[1], ' 200 not the end');
  t.is(r.lines.at(-2), '  200 VIEW end');
  t.true(await raw.silentFor(100), 'content was taken for the end of the reply');
  t.is((await raw.command('NOOP')).code, 200);
});

test('SITE VIEW through basic-ftp: client.send() returns a message that decodes exactly', async (t) => {
  const { srv, rec } = await viewServer(t);
  const client = rec.watch(await srv.client());
  for (const name of Object.keys(FILES)) {
    const res = await client.send(`SITE VIEW ${name}`);
    t.is(res.code, 200, name);
    checkDecodes(t, res.message, name);
  }
  const err = await t.throwsAsync(client.send('SITE VIEW missing.txt'));
  t.regex(String(err), /550/);
  await assertNoServerPaths(t, srv, rec);
});

test('SITE VIEW errors: 501 without argument, 550 for missing, directory and outside the jail', async (t) => {
  const { srv, raw, rec } = await viewServer(t);
  t.is((await raw.command('SITE VIEW')).code, 501);
  t.is((await raw.command('SITE VIEW ')).code, 501);
  for (const path of ['missing.txt', 'dir', '/', '.', '../../etc/passwd', '/etc/passwd', '..\\..\\etc\\passwd', '../bob/x']) {
    const r = await raw.command(`SITE VIEW ${path}`);
    t.is(r.code, 550, `SITE VIEW ${path}: ${r.raw}`);
    t.is(r.lines.length, 1);
    t.false(r.raw.includes('root:'), 'shows /etc/passwd');
  }
  t.true(await raw.silentFor(100));
  await assertNoServerPaths(t, srv, rec);
});

test('SITE VIEW before login gets 530', async (t) => {
  const { srv } = await viewServer(t);
  const raw = await RawFtp.connect(srv.port);
  t.teardown(() => raw.close());
  const r = await raw.command('SITE VIEW short.txt');
  t.is(r.code, 530);
  t.false(r.raw.includes('hello'));
  t.true(await raw.silentFor(100));
  await raw.command('USER alice');
  await raw.command('PASS wrong');
  t.is((await raw.command('SITE VIEW short.txt')).code, 530);
});

test('lowercase and mixed-case `site view` work', async (t) => {
  const { raw } = await viewServer(t);
  const upper = await raw.command('SITE VIEW short.txt');
  t.deepEqual((await raw.command('site view short.txt')).lines, upper.lines);
  t.deepEqual((await raw.command('Site View short.txt')).lines, upper.lines);
  t.deepEqual((await raw.command('SITE   VIEW short.txt')).lines, upper.lines);
});

test('SITE VIEW writes a view record to the audit log', async (t) => {
  const { srv, raw } = await viewServer(t);
  t.is((await raw.command('SITE VIEW short.txt')).code, 200);
  t.is((await raw.command('SITE VIEW big.txt')).code, 200);
  t.is((await raw.command('SITE VIEW missing.txt')).code, 550);
  raw.close();
  await srv.server.shutdown(1000); // flushes the audit log
  const records = (await readJsonLines(join(srv.logDir, 'audit.log'))).filter((r) => r['action'] === 'view');
  const ok = records.find((r) => r['path'] === '/short.txt');
  t.truthy(ok, `no view record for /short.txt in ${JSON.stringify(records)}`);
  t.like(ok!, { user: 'alice', path: '/short.txt', bytes: 12, result: 'ok', code: 200 });
  t.like(records.find((r) => r['path'] === '/big.txt') ?? {}, { user: 'alice', bytes: 1024, result: 'ok' });
  t.like(records.find((r) => r['path'] === '/missing.txt') ?? {}, { user: 'alice', result: 'failed', code: 550 });
  for (const r of records) {
    t.truthy(r['timestamp'], 'record without time');
    t.truthy(r['session'], 'record without session id');
    t.is(typeof r['durationMs'], 'number');
  }
});

test('multi-line replies (SITE VIEW, FEAT, HELP) are written in one piece, not one TCP segment per line', async (t) => {
  const { raw } = await viewServer(t);
  // Count the reads the client needs for each reply. ftp-srv wrote line by line, and
  // without Nagle each line arrived on its own (a 1024-byte text view took ~20 reads).
  let reads = 0;
  raw.socket.on('data', () => reads++);
  for (const line of ['SITE VIEW big.txt', 'SITE VIEW big.bin', 'FEAT', 'HELP']) {
    reads = 0;
    const reply = await raw.command(line);
    t.is(reply.code, line === 'HELP' ? 214 : line === 'FEAT' ? 211 : 200, reply.raw.slice(0, 100));
    t.true(reply.lines.length > 5, `${line} is multi-line`);
    t.is(reads, 1, `${line}: ${reply.lines.length} lines arrived in ${reads} reads`);
  }
});
