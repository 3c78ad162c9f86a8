import test from 'ava';
import { mkdir, mkdtemp, readdir, readFile, rename, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { Client } from 'basic-ftp';
import { RawFtp } from './helpers/rawFtp.js';
import { makeServerDirs, pollUntil, spawnServer } from './helpers/serverProcess.js';
import { auditLog, dfosLog } from './helpers/logFiles.js';
import { localDay, RotatingFile } from '../src/logging/RotatingFile.js';

/** Issue 12 item 3: log files an operator can keep (size or daily rotation, reopen on SIGHUP for logrotate). */

/** Uploads one small file as alice with basic-ftp. */
async function upload(port: number, name: string): Promise<void> {
  const client = new Client(10_000);
  try {
    await client.access({ host: '127.0.0.1', port, user: 'alice', password: 'alice-pw' });
    await client.uploadFrom(Readable.from([Buffer.from(`${name}\n`)]), name);
  } finally {
    client.close();
  }
}

const sizeOf = async (file: string) => (await stat(file)).size;

test('--log-rotate none: after logrotate renames dfos.log, audit.log and the xferlog, SIGHUP makes the server write fresh files; the renamed ones stop growing', async (t) => {
  const dirs = await makeServerDirs();
  t.teardown(() => rm(dirs.dir, { recursive: true, force: true }));
  const xferlog = join(dirs.dir, 'xferlog');
  const proc = await spawnServer({ dirs, args: ['--log-rotate', 'none', '--xferlog', xferlog] });
  t.teardown(() => proc.cleanup());
  await upload(proc.port, 'before.txt');
  const files = { dfos: join(dirs.logDir, 'dfos.log'), audit: join(dirs.logDir, 'audit.log'), xfer: xferlog };
  t.truthy(await pollUntil(async () => (await readFile(xferlog, 'utf8')).includes('before.txt'), 5000));
  // What logrotate does (without copytruncate): rename, then signal.
  for (const file of Object.values(files)) await rename(file, `${file}.1`);
  proc.child.kill('SIGHUP');
  const reopened = await pollUntil(async () => (await dfosLog(dirs.logDir)).find((r) => r.message === 'Log files reopened'), 10_000);
  t.truthy(reopened, 'the fresh dfos.log has the reopen line');
  const sizes = new Map(await Promise.all(Object.entries(files).map(async ([k, f]) => [k, await sizeOf(`${f}.1`)] as const)));
  await upload(proc.port, 'after.txt');
  t.truthy(await pollUntil(async () => (await auditLog(dirs.logDir)).find((r) => r.action === 'upload' && r.path === '/after.txt'), 5000), 'the fresh audit.log has the new upload');
  t.truthy(await pollUntil(async () => (await readFile(xferlog, 'utf8')).includes('/alice/after.txt'), 5000), 'the fresh xferlog has the new transfer');
  for (const [k, f] of Object.entries(files)) {
    t.is(await sizeOf(`${f}.1`), sizes.get(k)!, `${k}: the renamed file did not grow`);
    t.false((await readFile(`${f}.1`, 'utf8')).includes('after.txt'), `${k}: nothing new in the renamed file`);
  }
  t.true((await readFile(`${files.xfer}.1`, 'utf8')).includes('/alice/before.txt'), 'the renamed xferlog kept its lines');
  proc.child.kill('SIGTERM');
  t.deepEqual(await proc.waitExit(30_000), { code: 0, signal: null });
});

test('--log-rotate size: dfos.log rotates at --log-max-size into dfos1.log, dfos2.log…, keeping --log-max-files', async (t) => {
  const proc = await spawnServer({ args: ['--log-level', 'trace', '--log-max-size', '2KiB', '--log-max-files', '2'] });
  t.teardown(() => proc.cleanup());
  // Every command is traced: about 60 commands write well over 3 × 2 KiB.
  const raw = await RawFtp.connect(proc.port);
  t.teardown(() => raw.close());
  for (let i = 0; i < 60; i++) t.is((await raw.command('NOOP')).code, 200);
  raw.close();
  proc.child.kill('SIGTERM');
  t.deepEqual(await proc.waitExit(30_000), { code: 0, signal: null });
  const names = (await readdir(proc.logDir)).filter((n) => n.startsWith('dfos')).sort();
  t.deepEqual(names, ['dfos.log', 'dfos1.log', 'dfos2.log'], 'two rotated files kept besides the live one');
  for (const name of ['dfos1.log', 'dfos2.log']) {
    const text = await readFile(join(proc.logDir, name), 'utf8');
    const lines = text.split('\n').filter((l) => l !== '');
    const longest = Math.max(...lines.map((l) => Buffer.byteLength(l) + 1));
    t.true(text.length >= 2048 && text.length < 2048 + longest, `${name}: rotated at 2 KiB (${text.length} bytes)`);
    for (const line of lines) t.notThrows(() => JSON.parse(line), `${name}: whole JSON lines (none split by a rotation)`);
  }
});

/** A clock the test moves: local times on fixed days. */
function clock(): { now: () => Date; set(day: number, hour: number, minute?: number): void } {
  let current = new Date(2026, 10, 1, 12, 0);
  return { now: () => current, set: (day, hour, minute = 0) => (current = new Date(2026, 10, day, hour, minute)) };
}

test('--log-rotate daily: the first line of a new local day moves the file to NAME-YYYY-MM-DD.EXT (the day of its lines); the newest --log-max-files are kept', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'dfos-daily-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const path = join(dir, 'dfos.log');
  const time = clock();
  const file = new RotatingFile(path, { mode: 'daily', maxSize: 1024, maxFiles: 2 }, time.now);
  time.set(1, 10);
  file.write('a');
  time.set(1, 23, 59);
  file.write('b');
  time.set(2, 0, 1);
  file.write('c');
  time.set(3, 9);
  file.write('d');
  time.set(4, 9);
  file.write('e');
  await file.close();
  const names = (await readdir(dir)).sort();
  t.deepEqual(names, ['dfos-2026-11-02.log', 'dfos-2026-11-03.log', 'dfos.log'], 'the oldest day (11-01) is removed: two kept');
  t.is(await readFile(join(dir, 'dfos-2026-11-02.log'), 'utf8'), 'c\n');
  t.is(await readFile(join(dir, 'dfos-2026-11-03.log'), 'utf8'), 'd\n');
  t.is(await readFile(path, 'utf8'), 'e\n');

  // After a restart the live file's lines are from its last-modified day: rotated at the first new line.
  await writeFile(path, 'from the 4th\n');
  await utimes(path, new Date(2026, 10, 4, 18), new Date(2026, 10, 4, 18));
  time.set(6, 8);
  const reopened = new RotatingFile(path, { mode: 'daily', maxSize: 1024, maxFiles: 0 }, time.now);
  reopened.write('f');
  await reopened.close();
  t.is(await readFile(join(dir, 'dfos-2026-11-04.log'), 'utf8'), 'from the 4th\n');
  t.is(await readFile(path, 'utf8'), 'f\n');
  t.is((await readdir(dir)).length, 4, 'max-files 0 keeps every dated file');
});

test('dfos serve --log-rotate daily: a dfos.log left from an earlier day is moved aside at the first line', async (t) => {
  const dirs = await makeServerDirs();
  t.teardown(() => rm(dirs.dir, { recursive: true, force: true }));
  await mkdir(dirs.logDir, { recursive: true });
  const yesterday = new Date(Date.now() - 86_400_000);
  await writeFile(join(dirs.logDir, 'dfos.log'), '{"message":"from yesterday"}\n');
  await utimes(join(dirs.logDir, 'dfos.log'), yesterday, yesterday);
  const proc = await spawnServer({ dirs, args: ['--log-rotate', 'daily'] });
  t.teardown(() => proc.cleanup());
  proc.child.kill('SIGTERM');
  t.deepEqual(await proc.waitExit(30_000), { code: 0, signal: null });
  t.is(await readFile(join(dirs.logDir, `dfos-${localDay(yesterday)}.log`), 'utf8'), '{"message":"from yesterday"}\n');
  t.true((await dfosLog(dirs.logDir)).some((r) => r.message === 'DFOS listening'), 'today\'s lines are in dfos.log');
});

test('lines written close together reach the file together, without waiting for close(), in order; close() writes what is held back', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'dfos-coalesce-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const path = join(dir, 'audit.log');
  const file = new RotatingFile(path, { mode: 'none', maxSize: 0, maxFiles: 0 });
  for (let i = 0; i < 100; i++) file.write(`line ${i}`);
  const expected = Array.from({ length: 100 }, (_, i) => `line ${i}\n`).join('');
  t.truthy(await pollUntil(async () => (await readFile(path, 'utf8')) === expected, 5000), 'the lines arrive on their own, in order');
  file.write('last');
  await file.close();
  t.is(await readFile(path, 'utf8'), `${expected}last\n`, 'close() wrote the line held back');
});
