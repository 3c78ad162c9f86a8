import test, { type ExecutionContext } from 'ava';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { Client } from 'basic-ftp';
import { RawFtp } from './helpers/rawFtp.js';
import {
  REPO_ROOT,
  cleanEnv,
  makeServerDirs,
  pollUntil,
  probeGreeting,
  type ServerDirs,
} from './helpers/serverProcess.js';
import { dfosLog } from './helpers/logFiles.js';
import { startRawTransfer, writeData } from './helpers/dataTransfer.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const PM2_BIN = join(REPO_ROOT, 'node_modules', 'pm2', 'bin', 'pm2');
const GRACE = 10;

interface Pm2Run {
  code: number;
  stdout: string;
  stderr: string;
}

interface Pm2Env {
  home: string;
  dirs: ServerDirs;
  run(args: string[], timeoutMs?: number): Promise<Pm2Run>;
  /** The dfos entry of `pm2 jlist`. */
  app(): Promise<Pm2App | undefined>;
  /** The port of the latest "DFOS listening" line. */
  port(after?: number): Promise<number>;
}

interface Pm2App {
  pid: number;
  name: string;
  pm2_env: { status: string; restart_time: number; kill_timeout: number; wait_ready: boolean; exec_mode: string; pm_exec_path: string };
}

function homePm2State(): string {
  const dir = join(homedir(), '.pm2');
  return existsSync(dir) ? `exists mtime=${statSync(dir).mtimeMs}` : 'absent';
}

/** An isolated pm2 (own PM2_HOME) with DFOS_* pointing at temporary storage, users and logs. */
async function isolatedPm2(t: ExecutionContext, extraEnv: Record<string, string> = {}): Promise<Pm2Env> {
  // Short path: pm2's unix sockets live in PM2_HOME.
  const home = await mkdtemp(join(tmpdir(), 'pm2-'));
  const dirs = await makeServerDirs();
  const env = cleanEnv({
    PM2_HOME: home,
    DFOS_HOST: '127.0.0.1',
    DFOS_PORT: '0',
    DFOS_PASV_MIN: '0',
    DFOS_PASV_MAX: '0',
    DFOS_STORAGE: dirs.storage,
    DFOS_USERS: dirs.usersFile,
    DFOS_LOG_DIR: dirs.logDir,
    DFOS_STATE_DIR: join(dirs.dir, 'state'),
    DFOS_AUTH_FAIL_DELAY: '0.05',
    DFOS_SHUTDOWN_GRACE: String(GRACE),
    DFOS_ADMIN_LISTEN: '127.0.0.1:0',
    ...extraEnv,
  });
  const run = (args: string[], timeoutMs = 40_000) =>
    new Promise<Pm2Run>((resolve) => {
      execFile(process.execPath, [PM2_BIN, ...args], { cwd: REPO_ROOT, env, timeout: timeoutMs }, (err, stdout, stderr) => {
        const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : -1) : 0;
        resolve({ code, stdout, stderr });
      });
    });
  t.teardown(async () => {
    // Always remove the daemon (and the app with it), then the directories.
    await run(['kill'], 30_000);
    await rm(home, { recursive: true, force: true });
    await rm(dirs.dir, { recursive: true, force: true });
  });
  const app = async () => {
    const r = await run(['jlist']);
    const start = r.stdout.indexOf('[');
    if (start === -1) return undefined;
    const list = JSON.parse(r.stdout.slice(start)) as Pm2App[];
    return list.find((a) => a.name === 'dfos');
  };
  const port = async (after = 0) => {
    const line = await pollUntil(
      async () => (await dfosLog(dirs.logDir)).filter((r) => r.message === 'DFOS listening' && Date.parse(String(r.timestamp)) >= after).at(-1),
      10_000,
    );
    if (!line) throw new Error('no "DFOS listening" line in dfos.log');
    return Number(line.port);
  };
  return { home, dirs, run, app, port };
}

test('pm2.config.js: pm2 waits for ready, the server takes uploads, and `pm2 stop` drains a running upload (226) before exit', async (t) => {
  const before = homePm2State();
  const pm2 = await isolatedPm2(t);

  const started = await pm2.run(['start', 'pm2.config.js']);
  t.is(started.code, 0, started.stdout + started.stderr);
  t.regex(started.stdout, /waiting for app to be ready|wait_ready/i, 'pm2 waits for the ready signal');
  const app = await pm2.app();
  t.is(app?.pm2_env.status, 'online');
  t.true(readFileSync(`/proc/${app!.pid}/maps`, 'utf8').includes('libjemalloc.so'), 'pm2 starts the server on jemalloc (pm2.config.js env)');
  t.is(app?.pm2_env.wait_ready, true);
  t.is(app?.pm2_env.exec_mode, 'fork_mode');
  t.true((app?.pm2_env.kill_timeout ?? 0) > GRACE * 1000, `kill_timeout ${app?.pm2_env.kill_timeout} must exceed the grace`);
  t.is(app?.pm2_env.pm_exec_path, join(REPO_ROOT, 'dist', 'dfos.cjs'));
  const port = await pm2.port();
  t.is(await probeGreeting(port), 'greeted', 'online means listening');

  // An upload through the pm2-managed server.
  const client = new Client(10_000);
  t.teardown(() => client.close());
  await client.access({ host: '127.0.0.1', port, user: 'alice', password: 'alice-pw' });
  await client.uploadFrom(Readable.from([Buffer.from('via pm2\n')]), 'pm2.txt');
  client.close();
  t.is(await readFile(join(pm2.dirs.storage, 'alice', 'pm2.txt'), 'utf8'), 'via pm2\n');

  // A slow upload is running when `pm2 stop` is issued.
  const raw = await RawFtp.login(port, 'alice', 'alice-pw');
  t.teardown(() => raw.close());
  const upload = await startRawTransfer(raw, 'STOR', 'slow.bin');
  const sent: Buffer[] = [randomBytes(64 * 1024)];
  await writeData(upload.data, sent[0]!);
  const stopping = pm2.run(['stop', 'dfos'], 60_000);
  // The pm2 CLI needs a moment to reach its daemon; wait until the server got the signal.
  const draining = await pollUntil(async () => (await dfosLog(pm2.dirs.logDir)).some((r) => /^SIGINT received: draining/.test(String(r.message))), 20_000);
  t.truthy(draining, 'pm2 stop sends SIGINT and the server starts draining');
  t.not(await probeGreeting(port), 'greeted', 'no new connections while draining');
  for (let i = 0; i < 5; i++) {
    const c = randomBytes(64 * 1024);
    sent.push(c);
    await writeData(upload.data, c);
    await sleep(200);
  }
  t.is(raw.pending, '', 'the upload is still running');
  t.false(raw.closed);
  upload.data.end();
  const done = await raw.read(5000);
  t.is(done.code, 226, done.raw);
  t.is((await raw.read(5000)).code, 421);
  const stopped = await stopping;
  t.is(stopped.code, 0, stopped.stdout + stopped.stderr);
  t.true(Buffer.concat(sent).equals(await readFile(join(pm2.dirs.storage, 'alice', 'slow.bin'))));
  const after = await pm2.app();
  t.is(after?.pm2_env.status, 'stopped');
  const log = await dfosLog(pm2.dirs.logDir);
  t.is(log.at(-1)?.message, 'Shutdown complete');

  t.is(homePm2State(), before, 'pm2 did not touch ~/.pm2');
});

test('pm2.config.js: pm2 restarts the server after a crash', async (t) => {
  const pm2 = await isolatedPm2(t);
  const started = await pm2.run(['start', 'pm2.config.js']);
  t.is(started.code, 0, started.stdout + started.stderr);
  const first = await pm2.app();
  t.is(first?.pm2_env.status, 'online');
  const pid = first!.pid;
  const crashAt = Date.now();
  process.kill(pid, 'SIGKILL');
  const again = await pollUntil(async () => {
    const a = await pm2.app();
    return a && a.pid !== pid && a.pid > 0 && a.pm2_env.status === 'online' ? a : undefined;
  }, 20_000, 250);
  t.truthy(again, 'a new process is online');
  t.true((again?.pm2_env.restart_time ?? 0) >= 1);
  const port = await pm2.port(crashAt);
  const raw = await RawFtp.login(port, 'bob', 'bob-pw');
  t.is((await raw.command('NOOP')).code, 200);
  raw.close();
});

test('pm2.config.js with DFOS_WORKERS=2 (the recommended setup: --workers inside one fork-mode pm2 process): online once every worker listens, `pm2 stop` drains both and the primary exits last', async (t) => {
  const pm2 = await isolatedPm2(t, { DFOS_WORKERS: '2' });
  const started = await pm2.run(['start', 'pm2.config.js']);
  t.is(started.code, 0, started.stdout + started.stderr);
  const app = await pm2.app();
  t.is(app?.pm2_env.status, 'online');
  const log = await dfosLog(pm2.dirs.logDir);
  t.is(log.filter((r) => r.message === 'Worker listening').length, 2, 'both workers listen before pm2 says online');
  const port = await pm2.port();
  const raw = await RawFtp.login(port, 'alice', 'alice-pw');
  t.teardown(() => raw.close());
  const upload = await startRawTransfer(raw, 'STOR', 'w.bin');
  await writeData(upload.data, randomBytes(64 * 1024));
  const stopping = pm2.run(['stop', 'dfos'], 60_000);
  const draining = await pollUntil(async () => (await dfosLog(pm2.dirs.logDir)).some((r) => r.message === 'SIGINT received: draining every worker'), 20_000);
  t.truthy(draining, 'pm2 stop reaches the primary, which drains the workers');
  await writeData(upload.data, randomBytes(64 * 1024));
  upload.data.end();
  t.is((await raw.read(5000)).code, 226);
  const stopped = await stopping;
  t.is(stopped.code, 0, stopped.stdout + stopped.stderr);
  t.is((await pm2.app())?.pm2_env.status, 'stopped');
  const end = await dfosLog(pm2.dirs.logDir);
  t.is(end.at(-1)?.message, 'Shutdown complete');
  t.is(end.at(-1)?.worker, 0, 'the primary writes the last line');
  t.is(end.filter((r) => r.message === 'Shutdown complete').length, 3);
});
