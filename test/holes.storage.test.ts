import test, { type ExecutionContext } from 'ava';
import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, symlink, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { rawLogin, tempsUnder, waitFor, waitNoTemps } from './helpers/interop.js';
import { snapshotTree } from './helpers/jailFixtures.js';
import { REPLY_MS, type RawFtp } from './helpers/rawFtp.js';
import { spawnServer } from './helpers/serverProcess.js';
import { removeStaleTemps } from '../src/storage/local/hiddenTemp.js';
import { startTestServer, type TestServer } from './helpers/testServer.js';
import { rawList, rawRetr, rawUpload, startDataCommand, writeData } from './helpers/dataTransfer.js';

/**
 * Issue 7, the storage rows: FIFOs never block a thread (2), temporaries never leak when
 * their directory moves or goes (5), the jail holds while a local process swaps a
 * directory for a link (7), control characters in names (8), the reserved-name rule (9),
 * and appends cost the appended bytes, not the file (10).
 */

const run = promisify(execFile);

async function serverWithHome(t: ExecutionContext): Promise<{ srv: TestServer; home: string; raw: RawFtp }> {
  const srv = await startTestServer();
  t.teardown(() => srv.stop());
  const raw = await rawLogin(srv.port, 'alice', 'alice-pw');
  t.teardown(() => raw.close());
  return { srv, home: join(srv.storage, 'alice'), raw };
}

test('row 2: a FIFO is refused at once by every verb, and 40 sessions trying it block nobody', async (t) => {
  const { srv, home, raw } = await serverWithHome(t);
  await run('mkfifo', [join(home, 'fifo')]);
  await writeFile(join(home, 'plain.txt'), 'plain\n');
  for (const line of ['APPE fifo', 'STOR fifo']) {
    const r = await rawUpload(raw, line, 'x');
    t.is(r.code, 550, `${line}: ${r.replies.map((x) => x.raw).join('')}`);
    t.regex(r.replies[0]!.raw, /Not a regular file/);
  }
  t.is((await rawRetr(raw, 'fifo')).code, 550);
  t.is((await raw.command('SITE VIEW fifo', REPLY_MS)).code, 550);
  t.is((await raw.command('SIZE fifo', REPLY_MS)).code, 550);
  t.is((await raw.command('REST 0', REPLY_MS)).code, 350);
  t.is((await rawUpload(raw, 'STOR fifo', 'x')).code, 550, 'REST + STOR');
  // More sessions than libuv has threads, all appending to the FIFO at once.
  const sessions = await Promise.all(Array.from({ length: 40 }, () => rawLogin(srv.port, 'alice', 'alice-pw')));
  t.teardown(() => sessions.forEach((s) => s.close()));
  const codes = await Promise.all(sessions.map(async (s) => (await rawUpload(s, 'APPE fifo', 'x')).code));
  t.deepEqual([...new Set(codes)], [550]);
  // The server still serves everyone: a fresh login (scrypt), SIZE and a download.
  const other = await rawLogin(srv.port, 'bob', 'bob-pw');
  t.teardown(() => other.close());
  t.is((await raw.command('SIZE plain.txt', REPLY_MS)).code, 213);
  t.is((await rawRetr(raw, 'plain.txt')).bytes.toString(), 'plain\n');
  t.true((await stat(join(home, 'fifo'))).isFIFO(), 'the FIFO itself is untouched');
});

test('row 5: an upload whose directory is renamed meanwhile leaves no temporary; the renamed directory can be removed', async (t) => {
  const { srv, home, raw } = await serverWithHome(t);
  await mkdir(join(home, 'd'));
  const { data } = await startDataCommand(raw, 'STOR d/big.bin');
  await writeData(data, randomBytes(2 << 20));
  await waitFor('the temporary in d', async () => ((await tempsUnder(home)).length > 0 ? true : undefined));
  const other = await rawLogin(srv.port, 'alice', 'alice-pw');
  t.teardown(() => other.close());
  t.is((await other.command('RNFR d', REPLY_MS)).code, 350);
  t.is((await other.command('RNTO d2', REPLY_MS)).code, 250);
  data.resetAndDestroy();
  t.true((await raw.read(REPLY_MS)).code >= 400);
  t.deepEqual(await waitNoTemps(home), [], 'no temporary left anywhere');
  t.deepEqual(await tempsUnder(srv.storage), []);
  t.is((await other.command('RMD d2', REPLY_MS)).code, 250, 'the renamed directory is empty and can be removed');
});

test('row 5: an upload into a renamed directory that completes lands in the directory under its new name', async (t) => {
  const { srv, home, raw } = await serverWithHome(t);
  await mkdir(join(home, 'd'));
  const content = randomBytes(1 << 20);
  const { data } = await startDataCommand(raw, 'STOR d/file.bin');
  await writeData(data, content.subarray(0, 1000));
  await waitFor('the temporary in d', async () => ((await tempsUnder(home)).length > 0 ? true : undefined));
  const other = await rawLogin(srv.port, 'alice', 'alice-pw');
  t.teardown(() => other.close());
  t.is((await other.command('RNFR d', REPLY_MS)).code, 350);
  t.is((await other.command('RNTO d2', REPLY_MS)).code, 250);
  await writeData(data, content.subarray(1000));
  data.end();
  t.is((await raw.read(REPLY_MS)).code, 226);
  t.deepEqual(await readFile(join(home, 'd2', 'file.bin')), content);
  t.deepEqual(await waitNoTemps(home), []);
});

test('row 5: RMD of a directory holding only an upload temporary removes it; the upload fails cleanly', async (t) => {
  const { srv, home, raw } = await serverWithHome(t);
  await mkdir(join(home, 'd'));
  const { data } = await startDataCommand(raw, 'STOR d/x.bin');
  await writeData(data, randomBytes(100_000));
  await waitFor('the temporary in d', async () => ((await tempsUnder(home)).length > 0 ? true : undefined));
  const other = await rawLogin(srv.port, 'alice', 'alice-pw');
  t.teardown(() => other.close());
  t.deepEqual((await rawList(other, 'd', 'NLST')).names, [], 'd lists as empty');
  t.is((await other.command('RMD d', REPLY_MS)).code, 250);
  data.end();
  t.true((await raw.read(REPLY_MS)).code >= 400, 'the upload into the removed directory fails');
  t.deepEqual(await readdir(home), []);
  t.deepEqual(await tempsUnder(srv.storage), []);
});

test('row 7: a local process swapping a directory for a link to outside (renameat2 exchange) never lets a command through', async (t) => {
  t.timeout(90_000);
  const { srv, home, raw } = await serverWithHome(t);
  const outside = join(srv.dir, 'outside');
  await mkdir(outside);
  await writeFile(join(outside, 'f.txt'), 'SECRET OUTSIDE\n');
  for (let i = 0; i < 40; i++) await writeFile(join(outside, `victim-${i}`), 'outside victim\n');
  await mkdir(join(home, 'd'));
  await writeFile(join(home, 'd', 'f.txt'), 'inside\n');
  for (let i = 0; i < 40; i++) await writeFile(join(home, 'd', `victim-${i}`), 'inside victim\n');
  await symlink(outside, join(home, 'l'));
  const before = await snapshotTree(outside);
  // Swaps `d` and `l` (a real directory and a link to outside) as fast as it can.
  const swapper = spawn('python3', ['-c', SWAPPER, join(home, 'd'), join(home, 'l'), '20'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let swapperError = '';
  swapper.stderr.on('data', (d: Buffer) => (swapperError += d.toString()));
  t.teardown(() => swapper.kill('SIGKILL'));
  await waitFor('the swapper running', async () => (swapper.pid ? true : undefined));
  let leaks = 0;
  for (let i = 0; i < 40; i++) {
    const retr = await rawRetr(raw, 'd/f.txt');
    if (retr.bytes.includes('SECRET')) leaks++;
    if ((await raw.command('SITE VIEW d/f.txt', REPLY_MS)).raw.includes('SECRET')) leaks++;
    await rawUpload(raw, `STOR d/new-${i}.txt`, 'written by alice\n');
    await raw.command(`DELE d/victim-${i}`, REPLY_MS);
    await raw.command(`MKD d/m-${i}`, REPLY_MS);
    await raw.command(`SITE CHMOD 600 d/f.txt`, REPLY_MS);
  }
  swapper.kill('SIGKILL');
  t.is(swapperError, '', 'the swapper ran');
  t.is(leaks, 0, 'content from outside was read');
  t.deepEqual(await snapshotTree(outside), before, 'something outside was written, deleted, created or chmod-ed');
});

test('row 7: the startup sweep of leftovers cannot be redirected outside by a directory swapped for a link', async (t) => {
  t.timeout(60_000);
  const dir = await mkdtemp(join(tmpdir(), 'dfos-sweep-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const storage = join(dir, 'storage');
  const outside = join(dir, 'outside');
  await mkdir(join(storage, 'alice', 'd'), { recursive: true });
  await mkdir(outside);
  await writeFile(join(outside, '.dfos-upload-bait.part'), 'not DFOS\'s to remove\n');
  await symlink(outside, join(storage, 'alice', 'l'));
  const swapper = spawn('python3', ['-c', SWAPPER, join(storage, 'alice', 'd'), join(storage, 'alice', 'l'), '5'], { stdio: 'ignore' });
  t.teardown(() => swapper.kill('SIGKILL'));
  const deadline = Date.now() + 3000;
  for (let i = 0; i < 2000 && Date.now() < deadline; i++) await removeStaleTemps(storage);
  swapper.kill('SIGKILL');
  t.true(existsSync(join(outside, '.dfos-upload-bait.part')), 'the sweep removed a file outside the storage');
});

/** Exchanges two paths with renameat2(RENAME_EXCHANGE) in a loop, bounded in time and count. */
const SWAPPER = `
import ctypes, sys, time
libc = ctypes.CDLL(None, use_errno=True)
a, b, secs = sys.argv[1].encode(), sys.argv[2].encode(), float(sys.argv[3])
end = time.time() + secs
n = 0
while time.time() < end and n < 50_000_000:
    if libc.renameat2(-100, a, -100, b, 2) != 0:
        sys.stderr.write('renameat2 failed: %d\\n' % ctypes.get_errno()); sys.exit(1)
    n += 1
`;

test('row 8: names with control characters are refused (553) by every verb that creates or renames; listings mask them', async (t) => {
  const { home, raw } = await serverWithHome(t);
  await writeFile(join(home, 'src.txt'), 'x');
  for (const ch of ['\r', '\t', '\x01', '\x1b', '\x7f']) {
    const name = `a${ch}b`;
    t.is((await raw.command(`MKD ${name}`, REPLY_MS)).code, 553, `MKD with ${JSON.stringify(ch)}`);
    t.is((await rawUpload(raw, `STOR ${name}`, 'x')).code, 553, `STOR with ${JSON.stringify(ch)}`);
    t.is((await rawUpload(raw, `APPE ${name}`, 'x')).code, 553);
    t.is((await raw.command('RNFR src.txt', REPLY_MS)).code, 350);
    const rnto = await raw.command(`RNTO ${name}`, REPLY_MS);
    t.is(rnto.code, 553);
    t.false(/[\x00-\x08\x0a-\x1f\x7f]/.test(rnto.raw.slice(0, -2)), 'the reply carries a control character');
  }
  t.deepEqual((await readdir(home)).sort(), ['src.txt']);
  // A name with CR/LF made on the server's disk is listed masked, never raw.
  await writeFile(join(home, 'x\ry\nz'), 'x');
  for (const verb of ['LIST', 'NLST', 'MLSD']) {
    const list = await rawList(raw, undefined, verb);
    t.is(list.code, 226);
    t.true(list.bytes.toString().includes('x?y?z'), `${verb}: ${JSON.stringify(list.bytes.toString())}`);
    t.is(list.bytes.toString().split('\r\n').filter((l) => l !== '').length, 2, `${verb} has one line per entry`);
  }
  const statReply = await raw.command('STAT .', REPLY_MS);
  t.true(statReply.raw.includes('x?y?z'));
});

test('row 9: one rule for reserved names: any case and Unicode compatibility form is refused everywhere and never listed', async (t) => {
  const { home, raw } = await serverWithHome(t);
  await writeFile(join(home, 'src.txt'), 'x');
  const names = ['.dfos-upload-a.part', '.DFOS-UPLOAD-x.part', '.Dfos-Upload-y', '\uff0edfos-upload-w.part', '.dfos-\uff35pload-v'];
  for (const name of names) {
    t.is((await rawUpload(raw, `STOR ${name}`, 'x')).code, 553, `STOR ${name}`);
    t.is((await raw.command(`MKD ${name}`, REPLY_MS)).code, 553, `MKD ${name}`);
    t.is((await raw.command(`MKD d/${name}/e`, REPLY_MS)).code, 553);
    t.is((await raw.command('RNFR src.txt', REPLY_MS)).code, 350);
    t.is((await raw.command(`RNTO ${name}`, REPLY_MS)).code, 553, `RNTO ${name}`);
    t.is((await rawRetr(raw, name)).code, 553, `RETR ${name}`);
    t.is((await raw.command(`DELE ${name}`, REPLY_MS)).code, 553, `DELE ${name}`);
  }
  t.deepEqual(await readdir(home), ['src.txt']);
  // Reserved names placed on disk by someone else are never listed; RMD treats them as absent.
  await mkdir(join(home, 'd'));
  await writeFile(join(home, 'd', '.DFOS-UPLOAD-left'), 'x');
  await writeFile(join(home, '\uff0edfos-upload-z'), 'x');
  t.deepEqual((await rawList(raw, undefined, 'NLST')).names.sort(), ['d', 'src.txt']);
  t.deepEqual((await rawList(raw, 'd', 'NLST')).names, []);
  t.is((await raw.command('RMD d', REPLY_MS)).code, 250);
  // Similar names that are not reserved work.
  t.is((await rawUpload(raw, 'STOR dfos-upload-a', 'x')).code, 226);
  t.is((await rawUpload(raw, 'STOR .dfos-uploadX', 'x')).code, 226);
});

test('row 10: APPE of a few bytes to a large file writes in place (same inode, no copy) and REST at the end + STOR too', async (t) => {
  const { home, raw } = await serverWithHome(t);
  const file = join(home, 'big.bin');
  await writeFile(file, 'head');
  await truncate(file, 256 << 20); // 256 MiB, sparse: a copy would write it all
  const before = await stat(file);
  t.is((await rawUpload(raw, 'APPE big.bin', 'A')).code, 226);
  let after = await stat(file);
  t.is(after.ino, before.ino, 'APPE replaced the file (a copy) instead of appending in place');
  t.is(after.size, before.size + 1);
  t.true(after.blocks <= before.blocks + 64, `the append allocated ${after.blocks - before.blocks} blocks (a copy of the file?)`);
  t.is((await raw.command(`REST ${after.size}`, REPLY_MS)).code, 350);
  t.is((await rawUpload(raw, 'STOR big.bin', 'BC')).code, 226);
  after = await stat(file);
  t.is(after.ino, before.ino, 'REST at the end + STOR copied the file');
  const fd = await readFile(file);
  t.is(fd.subarray(0, 4).toString(), 'head');
  t.is(fd.subarray(-3).toString(), 'ABC');
  t.deepEqual(await waitNoTemps(home), []);
});

test('row 10: a second append to the same file while one runs is refused with 450, and the first completes', async (t) => {
  const { srv, home, raw } = await serverWithHome(t);
  await writeFile(join(home, 'log.txt'), 'old\n');
  const { data } = await startDataCommand(raw, 'APPE log.txt');
  await writeData(data, Buffer.from('first\n'));
  await waitFor('the append journal', async () => ((await tempsUnder(home)).length > 0 ? true : undefined));
  const other = await rawLogin(srv.port, 'alice', 'alice-pw');
  t.teardown(() => other.close());
  t.is((await rawUpload(other, 'APPE log.txt', 'second\n')).code, 450);
  data.end();
  t.is((await raw.read(REPLY_MS)).code, 226);
  t.is(await readFile(join(home, 'log.txt'), 'utf8'), 'old\nfirst\n');
});

test('row 10: an append cut by kill -9 is undone at the next start (journal), leaving the old content exactly', async (t) => {
  t.timeout(90_000);
  const proc = await spawnServer();
  t.teardown(() => proc.cleanup());
  const home = join(proc.storage, 'alice');
  const raw = await rawLogin(proc.port, 'alice', 'alice-pw');
  t.teardown(() => raw.close());
  const old = randomBytes(300_000);
  await writeFile(join(home, 'log.bin'), old);
  const { data } = await startDataCommand(raw, 'APPE log.bin');
  await writeData(data, randomBytes(500_000));
  await waitFor('appended bytes on disk', async () => ((await stat(join(home, 'log.bin'))).size > old.length ? true : undefined));
  proc.child.kill('SIGKILL');
  await proc.waitExit(10_000);
  data.destroy();
  t.true((await stat(join(home, 'log.bin'))).size > old.length, 'the crash left appended bytes');
  t.is((await tempsUnder(home)).length, 1, 'and the journal');
  const again = await spawnServer({ dirs: proc });
  t.teardown(() => again.cleanup());
  t.deepEqual(await readFile(join(home, 'log.bin')), old, 'the restart restored the old content');
  t.deepEqual(await tempsUnder(home), []);
});
