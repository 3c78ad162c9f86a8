import test from 'ava';
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { RawFtp } from './helpers/rawFtp.js';
import { startTestServer } from './helpers/testServer.js';
import {
  CLI,
  findTemps,
  makeServerDirs,
  probeGreeting,
  spawnServer,
  tolerateLateLogs,
  type ServerProcess,
} from './helpers/serverProcess.js';
import { auditLog, dfosLog } from './helpers/logFiles.js';
import { readToEnd, startRawTransfer, writeData } from './helpers/dataTransfer.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

async function spawnFor(t: { teardown(fn: () => unknown): void }, grace: number): Promise<ServerProcess> {
  const proc = await spawnServer({ args: ['--shutdown-grace', String(grace)] });
  t.teardown(() => proc.cleanup());
  return proc;
}

async function seed(proc: ServerProcess, user: string, name: string, data: Buffer | string): Promise<string> {
  const dir = join(proc.storage, user);
  await mkdir(dir, { recursive: true });
  const file = join(dir, name);
  await writeFile(file, data);
  return file;
}

/** Reads the next reply, or null if the connection closed without one. */
async function nextReply(raw: RawFtp, timeoutMs: number) {
  try {
    return await raw.read(timeoutMs);
  } catch (err) {
    if (raw.closed) return null;
    throw err;
  }
}

test('defect 21/22: SIGTERM stops accepting within 1 s, idle session gets 421, running upload and download finish with 226, then 421 and exit 0', async (t) => {
  const proc = await spawnFor(t, 10);
  // More than loopback socket buffers hold, so a reader that does not read stalls it.
  const big = randomBytes(24 * 1024 * 1024);

  // An upload in flight (slow writer).
  const up = await RawFtp.login(proc.port, 'alice', 'alice-pw');
  t.teardown(() => up.close());
  const upload = await startRawTransfer(up, 'STOR', 'up.bin');
  const sent: Buffer[] = [];
  for (let i = 0; i < 3; i++) {
    const c = randomBytes(64 * 1024);
    sent.push(c);
    await writeData(upload.data, c);
  }

  // A download in flight (the reader does not read for a while).
  const down = await RawFtp.login(proc.port, 'bob', 'bob-pw');
  t.teardown(() => down.close());
  // bob downloads his own copy of the big file.
  await seed(proc, 'bob', 'big.bin', big);
  const download = await startRawTransfer(down, 'RETR', 'big.bin');
  download.data.pause();

  // An idle logged-in session.
  const idle = await RawFtp.login(proc.port, 'alice', 'alice-pw');
  t.teardown(() => idle.close());

  await sleep(200);
  const signalled = Date.now();
  proc.child.kill('SIGTERM');

  const idleReply = await idle.read(1500);
  t.is(idleReply.code, 421, idleReply.raw);
  await idle.waitClosed(2000);

  t.true(Date.now() - signalled < 1000, 'probe starts within 1 s of SIGTERM');
  t.not(await probeGreeting(proc.port, '127.0.0.1', 600), 'greeted', 'a new connection must not get a 220 once draining');

  // ftp-srv's own SIGTERM handler exits ~100 ms after the signal; the drain must go on.
  await sleep(Math.max(0, signalled + 1500 - Date.now()));
  t.true(proc.running(), 'the process must still be draining 1.5 s after SIGTERM');
  t.is(up.pending, '', 'no reply yet for the running upload');
  t.is(down.pending, '', 'no reply yet for the running download (its reader has not read)');
  t.false(up.closed);
  t.false(down.closed);

  // The upload goes on and ends normally.
  for (let i = 0; i < 3; i++) {
    const c = randomBytes(64 * 1024);
    sent.push(c);
    await writeData(upload.data, c);
    await sleep(100);
  }
  upload.data.end();
  const upDone = await up.read(5000);
  t.is(upDone.code, 226, upDone.raw);
  const upBye = await up.read(3000);
  t.is(upBye.code, 421, upBye.raw);
  await up.waitClosed(3000);

  // The download goes on and delivers every byte.
  const received = readToEnd(download.data);
  download.data.resume();
  const got = await received;
  t.is(got.length, big.length);
  t.is(sha(got), sha(big));
  const downDone = await down.read(5000);
  t.is(downDone.code, 226, downDone.raw);
  const downBye = await down.read(3000);
  t.is(downBye.code, 421, downBye.raw);
  await down.waitClosed(3000);

  const exit = await proc.waitExit(20_000);
  t.deepEqual(exit, { code: 0, signal: null }, proc.stderr());
  t.is(sha(await readFile(join(proc.storage, 'alice', 'up.bin'))), sha(Buffer.concat(sent)));
  t.deepEqual(await findTemps(proc.storage), []);
  const log = await dfosLog(proc.logDir);
  t.is(log.at(-1)?.message, 'Shutdown complete', 'the logs are flushed up to the last line');
});

test('SIGINT drains like SIGTERM: idle session gets 421, a running upload completes with 226, exit 0', async (t) => {
  const proc = await spawnFor(t, 10);
  const up = await RawFtp.login(proc.port, 'alice', 'alice-pw');
  t.teardown(() => up.close());
  const idle = await RawFtp.login(proc.port, 'bob', 'bob-pw');
  t.teardown(() => idle.close());
  const upload = await startRawTransfer(up, 'STOR', 'int.bin');
  const first = randomBytes(32 * 1024);
  await writeData(upload.data, first);

  const signalled = Date.now();
  proc.child.kill('SIGINT');
  const bye = await idle.read(1500);
  t.is(bye.code, 421, bye.raw);
  await idle.waitClosed(2000);
  t.true(Date.now() - signalled < 1000, 'probe starts within 1 s of SIGINT');
  t.not(await probeGreeting(proc.port, '127.0.0.1', 600), 'greeted');

  await sleep(Math.max(0, signalled + 1200 - Date.now()));
  t.true(proc.running(), 'still draining 1.2 s after SIGINT (ftp-srv would have exited)');
  const second = randomBytes(32 * 1024);
  await writeData(upload.data, second);
  upload.data.end();
  const done = await up.read(5000);
  t.is(done.code, 226, done.raw);
  t.is((await up.read(3000)).code, 421);
  const exit = await proc.waitExit(20_000);
  t.deepEqual(exit, { code: 0, signal: null }, proc.stderr());
  t.true(Buffer.concat([first, second]).equals(await readFile(join(proc.storage, 'alice', 'int.bin'))));
});

test('defect 22: when the grace runs out a never-ending upload is aborted: target untouched, no temp, 4xx then closed, exit 0, logs flushed', async (t) => {
  const proc = await spawnFor(t, 1);
  const target = await seed(proc, 'alice', 'keep.txt', 'old content\n');
  const up = await RawFtp.login(proc.port, 'alice', 'alice-pw');
  t.teardown(() => up.close());
  const upload = await startRawTransfer(up, 'STOR', 'keep.txt');
  await writeData(upload.data, randomBytes(128 * 1024));
  await sleep(100);
  t.is((await findTemps(proc.storage)).length, 1, 'the upload is written to a temporary');

  proc.child.kill('SIGTERM');
  // Keep the data connection open and silent: the upload never ends.
  const replies = [];
  for (let i = 0; i < 3; i++) {
    const r = await nextReply(up, 6000);
    if (!r) break;
    replies.push(r);
    if (r.code === 421) break;
  }
  const codes = replies.map((r) => r.code);
  t.true(codes.length > 0, 'the session gets a reply before it is closed');
  t.true(codes.every((c) => c >= 400 && c < 500), `4xx replies only, got ${JSON.stringify(codes)}`);
  t.is(codes.at(-1), 421, `the session ends with 421, got ${JSON.stringify(replies.map((r) => r.raw))}`);
  t.false(codes.includes(226));
  await up.waitClosed(5000);

  const exit = await proc.waitExit(20_000);
  t.deepEqual(exit, { code: 0, signal: null }, proc.stderr());
  t.is(await readFile(target, 'utf8'), 'old content\n');
  t.deepEqual(await findTemps(proc.storage), []);
  const log = await dfosLog(proc.logDir);
  t.is(log.at(-1)?.message, 'Shutdown complete');
  const audit = await auditLog(proc.logDir);
  const rec = audit.find((a) => a.action === 'upload' && a.path === '/keep.txt');
  t.truthy(rec, JSON.stringify(audit));
  t.is(rec?.result, 'aborted');
  t.is(rec?.user, 'alice');
});

test('a second SIGTERM during the drain exits at once without touching the target; the next start removes leftover temporaries', async (t) => {
  const proc = await spawnFor(t, 30);
  const target = await seed(proc, 'alice', 'keep.txt', 'old content\n');
  const up = await RawFtp.login(proc.port, 'alice', 'alice-pw');
  t.teardown(() => up.close());
  const upload = await startRawTransfer(up, 'STOR', 'keep.txt');
  await writeData(upload.data, randomBytes(256 * 1024));
  await sleep(100);

  proc.child.kill('SIGTERM');
  await sleep(300);
  t.true(proc.running(), 'the first SIGTERM drains (an upload is running, grace 30 s)');
  proc.child.kill('SIGTERM');
  // "Exits at once": well within a second; 3 s is the bound of this wait.
  const exit = await proc.waitExit(3000);
  t.true(exit.code !== null || exit.signal !== null);
  t.is(await readFile(target, 'utf8'), 'old content\n', 'the target is untouched');

  // A temporary left by the hard exit (if any), plus one planted deeper in the tree.
  const sub = join(proc.storage, 'alice', 'sub');
  await mkdir(sub, { recursive: true });
  await writeFile(join(sub, '.dfos-upload-0123456789abcdef01234567.part'), 'stale');
  t.true((await findTemps(proc.storage)).length >= 1);

  const again = await spawnServer({ dirs: proc, args: ['--shutdown-grace', '5'] });
  t.teardown(() => again.cleanup());
  t.deepEqual(await findTemps(proc.storage), [], 'stale temporaries are removed at startup');
  t.is(await readFile(target, 'utf8'), 'old content\n');
  again.child.kill('SIGTERM');
  t.deepEqual(await again.waitExit(30_000), { code: 0, signal: null });
});

test('defect 22: DfosServer.shutdown() sends 421 to idle sessions (logged in or not) and closes them', async (t) => {
  const srv = await startTestServer();
  t.teardown(() => srv.stop());
  tolerateLateLogs(srv.server);
  const loggedIn = await RawFtp.login(srv.port, 'alice', 'alice-pw');
  t.teardown(() => loggedIn.close());
  const anonymous = await RawFtp.connect(srv.port);
  t.teardown(() => anonymous.close());
  const done = srv.server.shutdown(3000);
  const a = await loggedIn.read(2000);
  t.is(a.code, 421, a.raw);
  const b = await anonymous.read(2000);
  t.is(b.code, 421, b.raw);
  await loggedIn.waitClosed(2000);
  await anonymous.waitClosed(2000);
  await done;
  t.is(srv.server.sessionCount, 0);
  t.not(await probeGreeting(srv.port), 'greeted');
});

test('an embedded DfosServer survives a command that finishes after shutdown() (no crash on late log records)', async (t) => {
  // Run in a child process: the failure mode is an uncaught 'write after end' error that
  // kills the process. The child embeds the compiled server (dist/), starts a failed login
  // (1 s auth delay), shuts down at once, and waits until the login handler has finished.
  const dirs = await makeServerDirs();
  t.teardown(async () => {
    const { rm } = await import('node:fs/promises');
    await rm(dirs.dir, { recursive: true, force: true });
  });
  const dist = join(CLI, '..');
  const script = `
    const { DfosServer } = await import(${JSON.stringify(join(dist, 'server', 'DfosServer.js'))});
    const { parseServerConfig } = await import(${JSON.stringify(join(dist, 'config', 'serverConfig.js'))});
    const net = await import('node:net');
    const server = await DfosServer.start(parseServerConfig({ host: '127.0.0.1', port: 0, pasvMin: 0, pasvMax: 0,
      storage: ${JSON.stringify(dirs.storage)}, users: ${JSON.stringify(dirs.usersFile)}, logDir: ${JSON.stringify(dirs.logDir)},
      stateDir: ${JSON.stringify(join(dirs.dir, 'state'))}, console: false, authFailDelay: 1, adminListen: 'off' }));
    const s = net.connect(server.address.port, '127.0.0.1');
    s.on('error', () => {});
    await new Promise((r) => s.once('data', r));
    s.write('USER alice\\r\\nPASS wrong-password\\r\\n');
    await new Promise((r) => setTimeout(r, 200));
    await server.shutdown(500);
    await new Promise((r) => setTimeout(r, 1500));
    console.log('survived');
  `;
  const result = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
    execFile(process.execPath, ['--input-type=module', '-e', script], { timeout: 20_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? -1) : 0, stdout, stderr });
    });
  });
  t.is(result.code, 0, result.stderr.split('\n').slice(0, 8).join('\n'));
  t.regex(result.stdout, /survived/);
});
