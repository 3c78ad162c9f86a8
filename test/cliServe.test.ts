import test from 'ava';
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { Client } from 'basic-ftp';
import { RawFtp, openEpsvData } from './helpers/rawFtp.js';
import { HAS_IPV6 } from './helpers/protocolFixtures.js';
import {
  freePort,
  makeServerDirs,
  nonEmptyLines,
  pollUntil,
  probeGreeting,
  sink,
  spawnServer,
  type ServerProcess,
} from './helpers/serverProcess.js';
import { dfosLog } from './helpers/logFiles.js';
import { readToEnd } from './helpers/dataTransfer.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function listenOn(host: string, port = 0): Promise<Server | undefined> {
  const s = createServer();
  return new Promise((resolve) => {
    s.once('error', () => resolve(undefined));
    s.listen(port, host, () => resolve(s));
  });
}

/** Uploads, lists and downloads one file with basic-ftp; returns the listing names. */
async function roundTrip(host: string, port: number, name: string, body: string): Promise<string[]> {
  const client = new Client(10_000);
  try {
    await client.access({ host, port, user: 'alice', password: 'alice-pw' });
    await client.uploadFrom(Readable.from([Buffer.from(body)]), name);
    const names = (await client.list()).map((e) => e.name);
    const s = sink();
    await client.downloadTo(s.stream, name);
    if (s.bytes().toString() !== body) throw new Error('download differs from upload');
    return names;
  } finally {
    client.close();
  }
}

async function stopAndExpectZero(t: { deepEqual(a: unknown, b: unknown, m?: string): void }, proc: ServerProcess): Promise<void> {
  proc.child.kill('SIGTERM');
  t.deepEqual(await proc.waitExit(30_000), { code: 0, signal: null }, proc.stderr());
}

test('serve reads every setting from DFOS_* environment variables', async (t) => {
  const dirs = await makeServerDirs();
  const port = await freePort();
  const proc = await spawnServer({
    dirs,
    noDefaultFlags: true,
    env: {
      DFOS_HOST: '127.0.0.1',
      DFOS_PORT: String(port),
      DFOS_PASV_MIN: '0',
      DFOS_PASV_MAX: '0',
      DFOS_STORAGE: dirs.storage,
      DFOS_USERS: dirs.usersFile,
      DFOS_LOG_DIR: dirs.logDir,
      DFOS_AUTH_FAIL_DELAY: '0.05',
      DFOS_SHUTDOWN_GRACE: '2',
      DFOS_ADMIN_LISTEN: '127.0.0.1:0',
    },
  });
  t.teardown(async () => {
    await proc.cleanup();
    const { rm } = await import('node:fs/promises');
    await rm(dirs.dir, { recursive: true, force: true });
  });
  t.is(proc.port, port, 'DFOS_PORT is the control port');
  t.deepEqual(await roundTrip('127.0.0.1', port, 'env.txt', 'from env\n'), ['env.txt']);
  t.is(await readFile(join(dirs.storage, 'alice', 'env.txt'), 'utf8'), 'from env\n', 'DFOS_STORAGE holds the files');
  await stopAndExpectZero(t, proc);
  const log = await dfosLog(dirs.logDir);
  t.true(log.length > 0, 'DFOS_LOG_DIR holds dfos.log');
  t.is(log.find((r) => r.message === 'Shutting down: not accepting connections')?.graceSeconds, 2, 'DFOS_SHUTDOWN_GRACE applies');
});

test('serve flags win over DFOS_* environment variables', async (t) => {
  // The environment names a port that is busy, another storage and log directory, another grace.
  const busy = await listenOn('127.0.0.1');
  t.truthy(busy);
  t.teardown(() => new Promise<void>((r) => busy!.close(() => r())));
  const busyPort = (busy!.address() as AddressInfo).port;
  const other = await makeServerDirs();
  t.teardown(async () => {
    const { rm } = await import('node:fs/promises');
    await rm(other.dir, { recursive: true, force: true });
  });
  const proc = await spawnServer({
    args: ['--shutdown-grace', '3'],
    env: {
      DFOS_HOST: '0.0.0.0',
      DFOS_PORT: String(busyPort),
      DFOS_STORAGE: other.storage,
      DFOS_LOG_DIR: other.logDir,
      DFOS_USERS: join(other.dir, 'missing-users.json'),
      DFOS_SHUTDOWN_GRACE: '7',
    },
  });
  t.teardown(() => proc.cleanup());
  t.not(proc.port, busyPort);
  t.is(proc.host, '127.0.0.1', '--host wins over DFOS_HOST');
  await roundTrip('127.0.0.1', proc.port, 'flag.txt', 'from flags\n');
  t.is(await readFile(join(proc.storage, 'alice', 'flag.txt'), 'utf8'), 'from flags\n');
  t.false(existsSync(join(other.storage, 'alice')), 'DFOS_STORAGE is not used when --storage is given');
  t.false(existsSync(other.logDir), 'DFOS_LOG_DIR is not used when --log-dir is given');
  await stopAndExpectZero(t, proc);
  const log = await dfosLog(proc.logDir);
  t.is(log.find((r) => r.message === 'Shutting down: not accepting connections')?.graceSeconds, 3, '--shutdown-grace wins');
});

// Without ::1 on the machine these show as skipped (never as passed).
(HAS_IPV6 ? test : test.skip)('serve --host ::1 listens on IPv6 (upload, list, download over ::1)', async (t) => {
  const proc = await spawnServer({ host: '::1' });
  t.teardown(() => proc.cleanup());
  t.is(proc.host, '::1');
  t.deepEqual(await roundTrip('::1', proc.port, 'v6.txt', 'over ipv6\n'), ['v6.txt']);
  // Raw EPSV data connection over IPv6, and PASV refused cleanly (it cannot express IPv6).
  const raw = await RawFtp.login(proc.port, 'alice', 'alice-pw', '::1');
  t.teardown(() => raw.close());
  const epsv = await raw.command('EPSV');
  t.is(epsv.code, 229, epsv.raw);
  const data = await openEpsvData(epsv, '::1');
  const listing = readToEnd(data);
  raw.write('NLST\r\n');
  t.true([150, 125].includes((await raw.read()).code));
  t.is((await listing).toString().trim(), 'v6.txt');
  t.is((await raw.read()).code, 226);
  t.not(await probeGreeting(proc.port, '127.0.0.1'), 'greeted', '--host ::1 does not listen on IPv4');
  await stopAndExpectZero(t, proc);
});

(HAS_IPV6 ? test : test.skip)('serve --host :: accepts IPv6 and IPv4 clients', async (t) => {
  const proc = await spawnServer({ host: '::' });
  t.teardown(() => proc.cleanup());
  t.deepEqual(await roundTrip('::1', proc.port, 'a.txt', 'v6\n'), ['a.txt']);
  const names = await roundTrip('127.0.0.1', proc.port, 'b.txt', 'v4\n');
  t.deepEqual(names.sort(), ['a.txt', 'b.txt']);
  await stopAndExpectZero(t, proc);
});

test('an invalid users.json (plaintext password) stops startup: exit 1, one message naming the user and `dfos users passwd`', async (t) => {
  const dirs = await makeServerDirs();
  t.teardown(async () => {
    const { rm } = await import('node:fs/promises');
    await rm(dirs.dir, { recursive: true, force: true });
  });
  await writeFile(dirs.usersFile, JSON.stringify({ users: { carol: { password: 'plain-text-pw' } } }, null, 2));
  const proc = await spawnServer({ dirs, noWait: true });
  t.teardown(() => proc.cleanup());
  const exit = await proc.waitExit(30_000);
  t.deepEqual(exit, { code: 1, signal: null });
  const err = nonEmptyLines(proc.stderr());
  t.is(err.length, 1, `one line on stderr, got: ${JSON.stringify(err)}`);
  t.regex(err[0] ?? '', /carol/);
  t.regex(err[0] ?? '', /dfos users passwd carol/);
  t.false((proc.stdout() + proc.stderr()).includes('plain-text-pw'), 'the plaintext password is not echoed');
  t.false(nonEmptyLines(proc.stdout()).some((l) => /DFOS listening/.test(l)));
});

test('a control port already in use: exit 1 with one clear line', async (t) => {
  const busy = await listenOn('127.0.0.1');
  t.truthy(busy);
  t.teardown(() => new Promise<void>((r) => busy!.close(() => r())));
  const port = (busy!.address() as AddressInfo).port;
  const proc = await spawnServer({ args: ['--port', String(port)], noWait: true });
  t.teardown(() => proc.cleanup());
  const exit = await proc.waitExit(30_000);
  t.deepEqual(exit, { code: 1, signal: null });
  const err = nonEmptyLines(proc.stderr());
  t.is(err.length, 1, `exactly one line on stderr, got: ${JSON.stringify(err)}`);
  t.regex(err.at(-1) ?? '', new RegExp(`\\b${port}\\b.*in use|in use.*\\b${port}\\b`));
});

test('serve sends process.send("ready") once it accepts connections when it has an IPC channel', async (t) => {
  const proc = await spawnServer({ ipc: true, noWait: true });
  t.teardown(() => proc.cleanup());
  const messages: unknown[] = [];
  proc.child.on('message', (m) => messages.push(m));
  const ready = await pollUntil(() => messages.includes('ready'), 15_000, 20);
  t.truthy(ready, `got messages ${JSON.stringify(messages)}; stderr ${proc.stderr()}`);
  // Ready means listening: read the port from dfos.log and connect at once.
  const line = await pollUntil(async () => (await dfosLog(proc.logDir)).find((r) => r.message === 'DFOS listening'), 5000);
  t.truthy(line);
  t.is(await probeGreeting(Number(line?.port), '127.0.0.1', 3000), 'greeted');
  t.is(messages.filter((m) => m === 'ready').length, 1, 'ready is sent once');
  await sleep(50);
  await stopAndExpectZero(t, proc);
});

test('serve without an IPC channel starts normally (process.send is absent)', async (t) => {
  const proc = await spawnServer();
  t.teardown(() => proc.cleanup());
  t.is(await probeGreeting(proc.port), 'greeted');
  t.false(/TypeError|process\.send/.test(proc.stderr()));
  await stopAndExpectZero(t, proc);
});

/** Threads of a running process (Linux /proc). */
async function threadCount(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  return Number(/^Threads:\s+(\d+)/m.exec(status)?.[1]);
}

test('the dfos executable gives libuv 32 pool threads for file I/O, unless UV_THREADPOOL_SIZE is set', async (t) => {
  for (const [env, expectAtLeast, expectBelow] of [
    [{ UV_THREADPOOL_SIZE: undefined }, 32, Infinity],
    [{ UV_THREADPOOL_SIZE: '6' }, 6, 20],
  ] as const) {
    const proc = await spawnServer({ env: { ...env } });
    t.teardown(() => proc.cleanup());
    // Use the pool (a login stats and creates the home, an upload writes and fsyncs).
    t.deepEqual(await roundTrip('127.0.0.1', proc.port, 'pool.txt', 'pool\n'), ['pool.txt']);
    const threads = await threadCount(proc.child.pid!);
    t.true(threads >= expectAtLeast && threads < expectBelow, `UV_THREADPOOL_SIZE=${env.UV_THREADPOOL_SIZE ?? '(unset)'}: ${threads} threads`);
    proc.child.kill('SIGTERM');
    t.deepEqual(await proc.waitExit(30_000), { code: 0, signal: null });
  }
});
