import test from 'ava';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { RawFtp } from './helpers/rawFtp.js';
import { pollUntil, spawnServer } from './helpers/serverProcess.js';
import { rawRetr, rawUpload, startRawTransfer, writeData } from './helpers/dataTransfer.js';
import { auditRecords } from './helpers/logFiles.js';
import { ctimeText, xferlogFileName, xferlogLine } from '../src/logging/xferlogLine.js';

/** Issue 12 item 3: `--xferlog FILE`, one wu-ftpd xferlog line per finished transfer. */

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** An xferlog line split into its fields: the ctime-style time (five words), then thirteen fields. */
/** Splits an xferlog line: the ctime() time is always 24 characters (days 1-9 are space-padded, `Dec  1`), then single-space fields. */
function fields(line: string): { time: string; rest: string[] } {
  return { time: line.slice(0, 24), rest: line.slice(25).split(' ') };
}

test('--xferlog: uploads and downloads (binary and ASCII, complete and cut) each write one line with the exact fields; a refused download writes none', async (t) => {
  t.timeout(60_000);
  const proc = await spawnServer({ args: ['--xferlog', 'transfers/xferlog'] });
  t.teardown(() => proc.cleanup());
  const file = join(proc.dir, 'transfers', 'xferlog');
  const raw = await RawFtp.login(proc.port, 'alice', 'alice-pw');
  t.teardown(() => raw.close());
  const started = Date.now();

  t.is((await rawUpload(raw, 'STOR a.txt', Buffer.alloc(1024, 'x'))).code, 226);
  t.is((await rawUpload(raw, 'STOR my file 2.txt', 'one\ntwo\n')).code, 226);
  t.is((await raw.command('TYPE A')).code, 200);
  const ascii = await rawRetr(raw, 'my file 2.txt');
  t.is(ascii.code, 226);
  t.is(ascii.bytes.toString(), 'one\r\ntwo\r\n', 'TYPE A sends CRLF line endings');
  t.is((await raw.command('TYPE I')).code, 200);
  t.is((await rawRetr(raw, 'missing.txt')).code, 550);
  // An upload whose data connection is reset after 4096 bytes: incomplete.
  const cut = await startRawTransfer(raw, 'STOR', 'cut.bin');
  await writeData(cut.data, Buffer.alloc(4096, 1));
  await sleep(300);
  cut.data.resetAndDestroy();
  t.true((await raw.read(5000)).code >= 400);

  const text = await pollUntil(async () => {
    const t2 = await readFile(file, 'utf8');
    return t2.split('\n').filter((l) => l !== '').length >= 4 ? t2 : undefined;
  }, 5000);
  const lines = (text ?? '').split('\n').filter((l) => l !== '');
  t.is(lines.length, 4, `one line per transfer that started (no line for the 550):\n${text}`);
  for (const line of lines) {
    const { time } = fields(line);
    t.regex(time, /^(Sun|Mon|Tue|Wed|Thu|Fri|Sat) (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) [ \d]\d \d\d:\d\d:\d\d \d{4}$/, line);
    const at = new Date(time).getTime();
    t.true(at >= Math.floor(started / 1000) * 1000 - 1000 && at <= Date.now() + 1000, `local time of the transfer: ${time}`);
  }
  const rest = lines.map((l) => fields(l).rest.join(' '));
  t.deepEqual(rest, [
    '1 127.0.0.1 1024 /alice/a.txt b _ i r alice ftp 0 * c',
    '1 127.0.0.1 8 /alice/my_file_2.txt b _ i r alice ftp 0 * c',
    '1 127.0.0.1 10 /alice/my_file_2.txt a _ o r alice ftp 0 * c',
    `1 127.0.0.1 ${fields(lines[3]!).rest[2]} /alice/cut.bin b _ i r alice ftp 0 * i`,
  ]);
  t.true(Number(fields(lines[3]!).rest[2]) >= 4096, 'the cut upload counts the bytes received');
  // The same transfers are in audit.log, with the transfer type.
  const audit = await auditRecords(proc.logDir, (r) => r.action === 'upload' || r.action === 'download', 5);
  t.deepEqual(
    audit.map((r) => [r.action, r.path, r.transferType, r.result]),
    [
      ['upload', '/a.txt', 'binary', 'ok'],
      ['upload', '/my file 2.txt', 'binary', 'ok'],
      ['download', '/my file 2.txt', 'ascii', 'ok'],
      ['download', '/missing.txt', 'binary', 'failed'],
      ['upload', '/cut.bin', 'binary', 'failed'],
    ],
  );
  raw.close();
  proc.child.kill('SIGTERM');
  t.deepEqual(await proc.waitExit(30_000), { code: 0, signal: null });
});

test('xferlog fields: ctime-style local time, one-field file names, transfer time at least 1 s, only transfers', (t) => {
  t.is(ctimeText(new Date(2026, 10, 3, 9, 5, 1)), 'Tue Nov  3 09:05:01 2026');
  t.is(ctimeText(new Date(2026, 10, 30, 13, 52, 1)), 'Mon Nov 30 13:52:01 2026');
  t.is(xferlogFileName('/a b\tc\nd\u0001e.txt'), '/a_b_c_d_e.txt');
  const at = new Date(2026, 10, 30, 13, 52, 1);
  const base = { session: 's', user: 'alice', client: '::1', path: '/x y.bin', bytes: 5, result: 'aborted' as const };
  t.is(xferlogLine({ ...base, action: 'download', durationMs: 2600, transferType: 'binary' }, at), 'Mon Nov 30 13:52:01 2026 3 ::1 5 /alice/x_y.bin b _ o r alice ftp 0 * i');
  t.is(xferlogLine({ ...base, action: 'upload', durationMs: 10, result: 'ok' }, at), 'Mon Nov 30 13:52:01 2026 1 ::1 5 /alice/x_y.bin b _ i r alice ftp 0 * c');
  t.is(xferlogLine({ ...base, action: 'view' }, at), undefined, 'SITE VIEW is not a transfer');
  t.is(xferlogLine({ ...base, action: 'download', bytes: undefined, result: 'failed' }, at), undefined, 'refused before the transfer');
});
