import test from 'ava';
import { randomBytes } from 'node:crypto';
import { execFile } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { connect, createServer, type AddressInfo } from 'node:net';
import { failLogin, greeting } from './helpers/controlProbe.js';
import { rawUpload, startRawTransfer, writeData } from './helpers/dataTransfer.js';
import { adminRequest, scrape } from './helpers/adminHttp.js';
import { auditLog, dfosLog } from './helpers/logFiles.js';
import { sampleValue } from './helpers/promText.js';
import { startRedis } from './helpers/redis.js';
import { RawFtp } from './helpers/rawFtp.js';
import { CLI, cleanEnv, pollUntil, spawnServer, stripAnsi, type ServerProcess } from './helpers/serverProcess.js';
import type { TestUser } from './helpers/testServer.js';
import type { StatusSnapshot } from '../src/status/StatusBoard.js';

/**
 * Issue 14 goal 4: `dfos serve --workers N`. A spawned CLI with two workers (node:cluster,
 * round-robin on the shared control port); each worker owns half of the passive range, and
 * the primary holds the bans, session counts and quota usage they share.
 */

const BANNED = /^421 Too many failed logins from your address; try again in (\d+) s/;
/** A passive range of its own per test file run (tests in other files use port 0). */
const PASV_BASE = 42000 + (process.pid % 400) * 40;
const SLICES = [
  { worker: 1, min: PASV_BASE, max: PASV_BASE + 9 },
  { worker: 2, min: PASV_BASE + 10, max: PASV_BASE + 19 },
];
let nextBase = 0;
const run = promisify(execFile);

/** `--workers 2` over a passive range of 20 ports of its own. */
async function twoWorkers(t: { teardown(fn: () => unknown): void }, args: string[] = [], users?: TestUser[]): Promise<{ proc: ServerProcess; slices: typeof SLICES }> {
  const offset = 20 * nextBase++;
  const slices = SLICES.map((s) => ({ worker: s.worker, min: s.min + offset, max: s.max + offset }));
  const proc = await spawnServer({
    ...(users ? { users } : {}),
    args: ['--workers', '2', '--pasv-min', String(slices[0]!.min), '--pasv-max', String(slices[1]!.max), ...args],
  });
  t.teardown(() => proc.cleanup());
  return { proc, slices };
}

/** The worker whose slice holds the port of a PASV reply. */
async function pasvWorker(raw: RawFtp, slices: typeof SLICES): Promise<{ port: number; worker: number | undefined }> {
  const reply = await raw.command('PASV');
  const m = /\((\d+),(\d+),(\d+),(\d+),(\d+),(\d+)\)/.exec(reply.raw);
  if (reply.code !== 227 || !m) throw new Error(`PASV: ${reply.raw}`);
  const port = Number(m[5]) * 256 + Number(m[6]);
  return { port, worker: slices.find((s) => port >= s.min && port <= s.max)?.worker };
}

/** Logs in until there is a session on each worker (round-robin: two or three connections). */
async function sessionPerWorker(t: { teardown(fn: () => unknown): void }, proc: ServerProcess, slices: typeof SLICES, user = 'alice', password = 'alice-pw'): Promise<Map<number, RawFtp>> {
  const byWorker = new Map<number, RawFtp>();
  for (let i = 0; i < 8 && byWorker.size < 2; i++) {
    const raw = await RawFtp.login(proc.port, user, password);
    t.teardown(() => raw.close());
    await raw.command('TYPE I');
    const { worker } = await pasvWorker(raw, slices);
    if (worker !== undefined && !byWorker.has(worker)) byWorker.set(worker, raw);
    else raw.close();
  }
  return byWorker;
}

test('--workers 2: two workers share the control port, sessions spread over both, each PASV port within its worker\'s slice, log lines name the worker', async (t) => {
  const { proc, slices } = await twoWorkers(t);
  const out = stripAnsi(proc.stdout());
  t.regex(out, /DFOS listening\b.*\bworkers=2\b/);
  for (const s of slices) t.regex(out, new RegExp(`Worker listening\\b.*\\bpasv=${s.min}-${s.max}\\b.*`), `worker ${s.worker} announces its slice`);
  const seen = new Map<number, number>();
  const sessions: RawFtp[] = [];
  for (let i = 0; i < 6; i++) {
    const raw = await RawFtp.login(proc.port, 'alice', 'alice-pw');
    t.teardown(() => raw.close());
    sessions.push(raw);
    for (let k = 0; k < 2; k++) {
      const { port, worker } = await pasvWorker(raw, slices);
      t.not(worker, undefined, `PASV port ${port} lies in a worker's slice`);
      seen.set(worker!, (seen.get(worker!) ?? 0) + 1);
      // The port is the session's own: the data connection works.
      const data = connect({ port, host: '127.0.0.1' });
      data.on('error', () => undefined);
      data.resume();
      await once(data, 'connect');
      const list = await raw.command('NLST');
      t.true(list.code === 150 || list.code === 125, list.raw);
      t.is((await raw.read()).code, 226);
    }
  }
  t.deepEqual([...seen.keys()].sort(), [1, 2], 'sessions landed on both workers');
  for (const raw of sessions) await raw.command('QUIT');
  const logins = await pollUntil(async () => {
    const lines = (await auditLog(proc.logDir)).filter((l) => l.action === 'login' && l.result === 'ok');
    return lines.length >= 6 ? lines : undefined;
  }, 5000);
  t.truthy(logins, 'every login is in the one audit.log the primary writes');
  t.deepEqual([...new Set(logins!.map((l) => l.worker))].sort(), [1, 2], 'audit records name the worker');
  t.true((await dfosLog(proc.logDir)).some((l) => l.message === 'Worker listening' && l.worker === 2), "dfos.log holds the workers' lines");
});

test('--workers 2: a ban earned through one worker is refused by the other; the failures on both add up', async (t) => {
  const stateDir = await mkdtemp(join(tmpdir(), 'dfos-workers-state-'));
  t.teardown(() => rm(stateDir, { recursive: true, force: true }));
  const { proc } = await twoWorkers(t, ['--ban-threshold', '3', '--ban-time', '600', '--state-dir', stateDir]);
  const ip = '127.0.0.81';
  // Round-robin: the three failures are made on both workers.
  for (let i = 0; i < 3; i++) await failLogin(proc.port, ip);
  const refusedByAll = await pollUntil(async () => {
    for (let i = 0; i < 4; i++) if (!BANNED.test(await greeting(proc.port, ip))) return false;
    return true;
  }, 5000, 100);
  t.true(refusedByAll, 'four connections in a row (both workers) refuse the banned address');
  t.regex(await greeting(proc.port, '127.0.0.82'), /^220 /, 'another address is let in');
  const onFile = await pollUntil(async () => (await readFile(join(stateDir, 'bans.json'), 'utf8').catch(() => '')).includes(ip), 5000, 100);
  t.truthy(onFile, 'bans.json holds the ban (written by the first worker)');

  // dfos bans lift edits bans.json; the first worker passes the lift on to the others.
  await run(process.execPath, [CLI, 'bans', 'lift', ip, '--state-dir', stateDir], { env: cleanEnv(), timeout: 20_000 });
  const letInByAll = await pollUntil(async () => {
    for (let i = 0; i < 4; i++) if (!/^220 /.test(await greeting(proc.port, ip))) return false;
    return true;
  }, 5000, 100);
  t.true(letInByAll, 'after dfos bans lift, both workers let the address in');
});

test('--workers 2: quota usage changed through one worker is seen and enforced by the other', async (t) => {
  const { proc, slices } = await twoWorkers(t, [], [{ name: 'q', password: 'q-pw', quotaBytes: 1000 }]);
  const sessions = await sessionPerWorker(t, proc, slices, 'q', 'q-pw');
  t.is(sessions.size, 2, 'a session on each worker');
  const first = sessions.get(1)!;
  const second = sessions.get(2)!;
  t.is((await rawUpload(first, 'STOR a.bin', Buffer.alloc(600, 'a'))).code, 226);
  const seen = await pollUntil(async () => {
    const reply = await second.command('SITE QUOTA');
    return /\b600\b/.test(reply.raw) ? reply.raw : undefined;
  }, 5000, 200);
  t.truthy(seen, 'the other worker reports the 600 bytes stored through the first');
  const over = await rawUpload(second, 'STOR b.bin', Buffer.alloc(600, 'b'));
  t.is(over.code, 552, `the other worker refuses going over the quota: ${over.final.raw}`);
  const persisted = await pollUntil(async () => {
    const text = await readFile(join(proc.dir, 'state', 'usage.json'), 'utf8').catch(() => '');
    return /"q"/.test(text) && /\b600\b/.test(text) ? text : undefined;
  }, 5000, 100);
  t.truthy(persisted, 'the primary writes usage.json');
});

test('--workers 2: SIGTERM drains every worker (an upload running on each finishes with 226), then the primary exits 0', async (t) => {
  const { proc, slices } = await twoWorkers(t, ['--shutdown-grace', '10']);
  const sessions = await sessionPerWorker(t, proc, slices);
  t.is(sessions.size, 2);
  const uploads = await Promise.all([...sessions.values()].map(async (raw, i) => ({ raw, up: await startRawTransfer(raw, 'STOR', `drain${i}.bin`) })));
  for (const { up } of uploads) await writeData(up.data, randomBytes(64 * 1024));
  proc.child.kill('SIGTERM');
  // Draining: the uploads go on.
  await new Promise((r) => setTimeout(r, 500));
  t.true(proc.running(), 'still draining');
  for (const { up } of uploads) await writeData(up.data, randomBytes(64 * 1024));
  for (const { raw, up } of uploads) {
    up.data.end();
    const done = await raw.read(5000);
    t.is(done.code, 226, done.raw);
  }
  const exit = await proc.waitExit(60_000);
  t.deepEqual(exit, { code: 0, signal: null });
  const lines = await dfosLog(proc.logDir);
  t.true(lines.some((l) => l.message === 'Shutdown complete' && l.worker === 1));
  t.true(lines.some((l) => l.message === 'Shutdown complete' && l.worker === 2));
  t.true(lines.some((l) => l.message === 'Shutdown complete' && l.worker === 0), 'the primary exits last');
});

test('without --workers one worker serves per CPU; --workers 1 is a single process; a passive range smaller than the workers is refused', async (t) => {
  const cpus = availableParallelism();
  const byDefault = await spawnServer({ defaultWorkers: true });
  t.teardown(() => byDefault.cleanup());
  if (cpus > 1) {
    const listening = await pollUntil(() => stripAnsi(byDefault.stdout()).match(/Worker listening\b/g)?.length, 10_000, 100);
    t.is(listening, cpus, 'one worker per CPU');
    t.regex(stripAnsi(byDefault.stdout()), new RegExp(`DFOS listening\\b.*\\bworkers=${cpus}\\b`));
  } else {
    t.notRegex(stripAnsi(byDefault.stdout()), /Worker listening|workers=/, 'one CPU: a single process');
  }
  const viaDefault = await RawFtp.login(byDefault.port, 'alice', 'alice-pw');
  t.is((await viaDefault.command('PWD')).code, 257);
  viaDefault.close();

  const proc = await spawnServer({ args: ['--workers', '1'] });
  t.teardown(() => proc.cleanup());
  const out = stripAnsi(proc.stdout());
  t.notRegex(out, /Worker listening|workers=/);
  const raw = await RawFtp.login(proc.port, 'alice', 'alice-pw');
  t.is((await raw.command('PWD')).code, 257);
  raw.close();
  const bad = await spawnServer({ args: ['--workers', '4', '--pasv-min', '50000', '--pasv-max', '50002'], noWait: true });
  t.teardown(() => bad.cleanup());
  const exit = await bad.waitExit(60_000);
  t.is(exit.code, 2);
  t.regex(bad.stderr(), /passive range is smaller than the number of workers/);
});

test('--workers 2: --max-sessions-per-ip counts the sessions of both workers; the primary\'s /readyz, summed /metrics and merged status page; a crashed worker is restarted', async (t) => {
  const { proc, slices } = await twoWorkers(t, ['--max-sessions-per-ip', '2']);
  t.truthy(proc.adminUrl);
  const ready = await adminRequest(proc.adminUrl!, '/readyz');
  t.is(ready.status, 200, ready.body);
  const sessions = await sessionPerWorker(t, proc, slices);
  t.is(sessions.size, 2, 'one session on each worker');
  // The workers tell each other their counts through the primary (about every half second).
  const refused = await pollUntil(async () => {
    const first = await greeting(proc.port, '127.0.0.1');
    const second = await greeting(proc.port, '127.0.0.1');
    return /^421 /.test(first) && /^421 /.test(second) ? first : undefined;
  }, 5000, 100);
  t.truthy(refused, 'a third session from the address is refused by both workers');
  const metrics = await pollUntil(async () => {
    const text = await scrape(proc.adminUrl!);
    return sampleValue(text, 'dfos_sessions') === 2 ? text : undefined;
  }, 5000, 100);
  t.truthy(metrics, "/metrics sums the workers' sessions");
  t.is(sampleValue(metrics!, 'dfos_passive_ports_range_size'), 20, 'the slices add up to the whole range');
  // The status page merges the workers' pictures: both sessions, the logins of both.
  const status = await adminRequest(proc.adminUrl!, '/api/status');
  t.is(status.status, 200, status.body);
  const snap = JSON.parse(status.body) as StatusSnapshot;
  t.is(snap.sessions.length, 2, 'the sessions of both workers');
  t.true(snap.sessions.every((s) => s.user === 'alice'));
  t.true(snap.totals.loginsOk >= 2);
  const page = await adminRequest(proc.adminUrl!, '/');
  t.is(page.status, 200);
  t.regex(page.body, /<title>DFOS status — .* \(2 workers\)<\/title>/);

  // A worker dies: the primary starts it again on the same slice.
  for (const raw of sessions.values()) raw.close();
  const pid = Number(/Worker listening\b.*\bpid=(\d+)/.exec(stripAnsi(proc.stdout()))![1]);
  process.kill(pid, 'SIGKILL');
  const restarted = await pollUntil(() => (/Worker exited unexpectedly; restarting it/.test(stripAnsi(proc.stdout() + proc.stderr())) && stripAnsi(proc.stdout()).match(/Worker listening\b/g)!.length >= 3 ? true : undefined), 10_000, 100);
  t.truthy(restarted, 'the crashed worker is restarted');
  const back = await sessionPerWorker(t, proc, slices);
  t.is(back.size, 2, 'both slices serve again');
});

test('--workers 2: SIGHUP reloads every worker; with --redis the workers share the bans through Redis', async (t) => {
  const redis = await startRedis();
  t.teardown(() => redis.stop());
  const { proc } = await twoWorkers(t, ['--redis', redis.url, '--redis-prefix', 'w-ban:', '--ban-threshold', '2', '--ban-time', '600']);
  t.regex(stripAnsi(proc.stdout()), /DFOS listening\b.*\bstate=redis\b/);
  const ip = '127.0.0.91';
  for (let i = 0; i < 2; i++) await failLogin(proc.port, ip);
  const refusedByAll = await pollUntil(async () => {
    for (let i = 0; i < 4; i++) if (!BANNED.test(await greeting(proc.port, ip))) return false;
    return true;
  }, 5000, 100);
  t.true(refusedByAll, 'both workers refuse the address banned through Redis');

  proc.child.kill('SIGHUP');
  const reloaded = await pollUntil(async () => {
    const lines = (await dfosLog(proc.logDir)).filter((l) => l.message === 'Users reloaded' && l.why === 'SIGHUP');
    return new Set(lines.map((l) => l.worker)).size === 2 ? true : undefined;
  }, 5000, 100);
  t.truthy(reloaded, 'each worker reloads its users on the SIGHUP the primary forwards');
  t.true(proc.running());
});

test('--workers 2: a worker that cannot start (control port in use) stops the whole server with exit 1 and one clear line', async (t) => {
  const blocker = createServer();
  await new Promise<void>((done) => blocker.listen(0, '127.0.0.1', done));
  t.teardown(() => new Promise<void>((done) => blocker.close(() => done())));
  const busy = (blocker.address() as AddressInfo).port;
  const proc = await spawnServer({ args: ['--workers', '2', '--port', String(busy)], noWait: true });
  t.teardown(() => proc.cleanup());
  const exit = await proc.waitExit(60_000);
  t.is(exit.code, 1);
  t.regex(stripAnsi(proc.stderr()), new RegExp(`Cannot listen on 127\\.0\\.0\\.1 port ${busy}`));
});
