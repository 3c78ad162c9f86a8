/**
 * The floors under three of DFOS's performance lines: what the runtime and the filesystem
 * of this machine allow, to judge how close DFOS's login, memory and upload numbers are to
 * what is possible here. In ONE run:
 *   1. Logins: LOGINS (200) logins one after another, each held open, then all closed
 *      (connect, 220, USER, 331, PASS, 230; bench/benchServer.ts rawLogin), ROUNDS times
 *      (default 10), alternating server by server within each round, after one uncounted
 *      warm-up round per server, against
 *        (a) a bare Node.js login responder (a `node -e` child answering 220 / 331 / 230 /
 *            221 / 500 and nothing else): the lower bound for any Node.js server;
 *        (b) pyftpdlib (Debian's python3-pyftpdlib under /usr/bin/python3), skipped with
 *            one line when it is not installed;
 *        (c) DFOS as one process (`--workers 1`, startBenchServer).
 *      Per server: median and min wall seconds per round, and the server's CPU seconds per
 *      round (median; /proc/PID/stat from before the round to 300 ms after the close).
 *   2. Idle memory: each server's RSS right after it is ready (DFOS: after the one login
 *      startBenchServer makes to see it is up) and 2 s after the login rounds. The
 *      responder's start RSS is that of an idle `net` server, the least a Node.js process holds.
 *   3. The filesystem floor for uploads, no network: a `node -e` child with synchronous
 *      writes (64 KiB `fs.writeSync` calls, so the time is the kernel's, not an event
 *      loop's) in a directory under os.tmpdir() (the filesystem DFOS's storage uses in the
 *      other benchmarks). (i) atomic, DFOS's pattern: FILES (200) temporary files of
 *      10 MiB written side by side (round-robin, as concurrent uploads interleave), then
 *      each closed and renamed over one target name; (ii) in place, pyftpdlib's pattern
 *      when 200 clients STOR one name (ftpbench's 200 x STOR): 200 descriptors opened on
 *      one file with truncation, each writing its 10 MiB from offset 0, round-robin;
 *      3 runs alternating (i), (ii). (iii) one 1.5 GiB file: atomic (temporary file renamed
 *      over an existing 1.5 GiB target) against in place (truncate and rewrite the target),
 *      3 runs alternating. Each: the child's wall seconds and system CPU seconds. The
 *      files are removed and `sync` run after each run, so every run starts with no
 *      writeback pending. Skipped with one line under 6 GiB free.
 * Prints a header (date, commit, Node.js, CPUs), then one Markdown table per part.
 *
 * Run: `npm run build && npx tsx bench/floors.ts [rounds=10]`.
 * Everything stays on 127.0.0.1 (port 0 everywhere); every loop is bounded and every wait
 * time-bounded (a stuck server ends the run with an error). Every process started here is
 * stopped by its PID (SIGTERM, SIGKILL after 5 s), also on SIGINT / SIGTERM; temporary
 * directories are removed.
 */
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, statfsSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { CLI, REPO_ROOT } from '../test/helpers/serverProcess.js';
import { PYTHON, runProgram } from '../test/helpers/peerServers.js';
import { BENCH_PASSWORD, BENCH_USER, cpuSeconds, MIB, rawLogin, rssKiB, startBenchServer, stopsOnSignal, withTimeout } from './benchServer.js';

const rounds = Number(process.argv[2] ?? 10);
if (!Number.isSafeInteger(rounds) || rounds < 1 || rounds > 1000) throw new Error(`rounds must be an integer from 1 to 1000 (got ${process.argv[2]})`);
/** Logins per round, each held open until the round ends. */
const LOGINS = 200;
/** Bound on one round of logins (a stuck server fails the run). */
const ROUND_MS = 120_000;
/** Bound on a server's start (it prints its port). */
const START_MS = 30_000;
/** Files in (i) and descriptors in (ii), MiB each, the write size. */
const FILES = 200;
const FILE_MIB = 10;
const CHUNK = 64 * 1024;
/** The single large file of (iii), MiB. */
const BIG_MIB = 1536;
const FS_RUNS = 3;
/** Bound on one filesystem child (2 GiB or 1.5 GiB to write). */
const FS_MS = 300_000;
const MIN_FREE = 6 * 1024 * MIB;

/** (a): the least a Node.js FTP server must do to log a client in. Prints its port. */
const RESPONDER = `
const server = require('net').createServer((s) => {
  s.setNoDelay(true);
  s.setEncoding('latin1');
  s.on('error', () => {});
  s.write('220 Ready\\r\\n');
  let buf = '';
  s.on('data', (d) => {
    buf += d;
    for (let i = buf.indexOf('\\r\\n'); i >= 0; i = buf.indexOf('\\r\\n')) {
      const verb = buf.slice(0, i).split(' ')[0].toUpperCase();
      buf = buf.slice(i + 2);
      if (verb === 'USER') s.write('331 User name okay, need password\\r\\n');
      else if (verb === 'PASS') s.write('230 Login successful\\r\\n');
      else if (verb === 'QUIT') return void s.end('221 Bye\\r\\n');
      else s.write('500 Unknown command\\r\\n');
    }
  });
});
server.listen(0, '127.0.0.1', () => console.log(server.address().port));
`;

/** (b): pyftpdlib with one user; argv: password, home. Prints its port. */
const PYFTPDLIB = `
import sys
from pyftpdlib.authorizers import DummyAuthorizer
from pyftpdlib.handlers import FTPHandler
from pyftpdlib.servers import FTPServer
a = DummyAuthorizer(); a.add_user(${JSON.stringify(BENCH_USER)}, sys.argv[1], sys.argv[2], perm='elradfmwMT')
h = FTPHandler; h.authorizer = a
s = FTPServer(('127.0.0.1', 0), h); s.max_cons = 2000; s.max_cons_per_ip = 2000
import logging; logging.basicConfig(level=logging.WARNING)
print(s.socket.getsockname()[1], flush=True)
s.serve_forever()
`;

/**
 * Part 3's writer; argv[1] is JSON { mode, dir, files, fileMiB, chunk }. Synchronous calls
 * only, so its wall and system CPU time are the kernel's work. Prints JSON { seconds,
 * systemSeconds } for the timed part (opens, writes, closes, renames; not the removal).
 */
const WRITER = `
const fs = require('fs');
const { join } = require('path');
const { mode, dir, files, fileMiB, chunk } = JSON.parse(process.argv[1]);
const block = require('crypto').randomBytes(chunk);
const chunks = (fileMiB * 1048576) / chunk;
const target = join(dir, 'target.bin');
const writeAll = (fds) => { for (let k = 0; k < chunks; k++) for (const fd of fds) fs.writeSync(fd, block); };
const timed = (work) => {
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  work();
  const seconds = (performance.now() - t0) / 1000;
  console.log(JSON.stringify({ seconds, systemSeconds: process.cpuUsage(cpu0).system / 1e6 }));
};
const temps = Array.from({ length: files }, (_, i) => join(dir, '.upload-' + i + '.tmp'));
if (mode === 'prepare') { const fd = fs.openSync(target, 'w'); writeAll([fd]); fs.closeSync(fd); console.log('{}'); }
else if (mode === 'atomic') timed(() => {
  const fds = temps.map((t) => fs.openSync(t, 'wx'));
  writeAll(fds);
  fds.forEach((fd, i) => { fs.closeSync(fd); fs.renameSync(temps[i], target); });
});
else if (mode === 'inplace') timed(() => {
  const fds = temps.map(() => fs.openSync(target, 'w'));
  writeAll(fds);
  fds.forEach((fd) => fs.closeSync(fd));
});
else throw new Error('unknown mode ' + mode);
`;

const work = await mkdtemp(join(tmpdir(), 'dfos-floors-'));
const { stopAll, tracked } = stopsOnSignal(() => rm(work, { recursive: true, force: true }));

/** A child process started here: its PID, its output so far, a bounded stop. */
interface Child {
  pid: number;
  stdout(): string;
  stderr(): string;
  exited: Promise<number | null>;
  running(): boolean;
  /** SIGTERM, SIGKILL if still running after 5 s; also run by stopAll (SIGINT / SIGTERM). */
  stop(): Promise<void>;
}

/** Spawns `file args` (no shell) and registers its stop, so no path out of the script leaves it running. */
async function startChild(file: string, args: string[]): Promise<Child> {
  const child = spawn(file, args, { cwd: work, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (err = (err + d).slice(-4000)));
  let done = false;
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => ((done = true), r(code))));
  const stop = tracked(async () => {
    if (done) return;
    child.kill('SIGTERM');
    if (await Promise.race([exited.then(() => true), sleep(5000, false)])) return;
    child.kill('SIGKILL');
    await Promise.race([exited, sleep(5000)]);
  });
  const spawned = new Promise<void>((r, j) => child.once('spawn', () => r()).once('error', (e) => ((done = true), j(e))));
  await withTimeout(spawned, START_MS, `spawn ${file}`).catch(async (e: unknown) => {
    await stop();
    throw e;
  });
  return { pid: child.pid!, stdout: () => out, stderr: () => err, exited, running: () => !done, stop };
}

/** A server under test: where it listens, its PID, its measurements. */
interface Target {
  label: string;
  port: number;
  pid: number;
  stop(): Promise<void>;
  rssStartKiB: number;
  rssAfterKiB?: number;
  seconds: number[];
  cpu: number[];
}

/** Starts a child that prints its port as its first line (bounded); the running server. */
async function startPortPrinter(label: string, file: string, args: string[]): Promise<Target> {
  const child = await startChild(file, args);
  try {
    const port = await withTimeout(
      (async () => {
        for (let i = 0; i < START_MS / 20; i++) {
          const m = /^(\d+)\r?\n/.exec(child.stdout());
          if (m) return Number(m[1]);
          if (!child.running()) break;
          await sleep(20);
        }
        throw new Error(`exited or printed no port; stderr: ${child.stderr().trim()}`);
      })(),
      START_MS,
      `${label} start`,
    );
    return { label, port, pid: child.pid, stop: child.stop, rssStartKiB: await rssKiB(child.pid), seconds: [], cpu: [] };
  } catch (err) {
    await child.stop();
    throw err;
  }
}

/** pyftpdlib's version if Debian's python3 can import it, else undefined. */
async function pyftpdlibVersion(): Promise<string | undefined> {
  if (!existsSync(PYTHON)) return undefined;
  const check = await runProgram(PYTHON, ['-c', 'import pyftpdlib; print(pyftpdlib.__ver__)']).catch(() => undefined);
  return check?.code === 0 ? check.stdout.trim() : undefined;
}

/**
 * One round against `target`: LOGINS logins one after another, held open, then all closed.
 * Wall seconds of the logins, and the server's CPU seconds from before the round to 300 ms
 * after the close (so the work of the close counts).
 */
async function loginRound(target: Target): Promise<{ seconds: number; cpu: number }> {
  const [u0, s0] = await cpuSeconds(target.pid);
  const closers: (() => void)[] = [];
  let abandoned = false;
  const t0 = performance.now();
  let seconds: number;
  try {
    await withTimeout(
      (async () => {
        for (let i = 0; i < LOGINS && !abandoned; i++) {
          const close = await rawLogin(target.port);
          if (abandoned) close();
          else closers.push(close);
        }
      })(),
      ROUND_MS,
      `${target.label}: ${LOGINS} logins`,
    );
    seconds = (performance.now() - t0) / 1000;
  } finally {
    abandoned = true; // after a timeout, the loop stops at its next login
    for (const close of closers) close();
  }
  await sleep(300);
  const [u1, s1] = await cpuSeconds(target.pid);
  return { seconds, cpu: u1 + s1 - u0 - s0 };
}

/** Runs a WRITER `mode` in a child (bounded); its JSON line. */
async function writer(mode: 'prepare' | 'atomic' | 'inplace', dir: string, files: number, fileMiB: number): Promise<{ seconds: number; systemSeconds: number }> {
  const child = await startChild(process.execPath, ['-e', WRITER, JSON.stringify({ mode, dir, files, fileMiB, chunk: CHUNK })]);
  try {
    const code = await withTimeout(child.exited, FS_MS, `writer ${mode} ${files} x ${fileMiB} MiB`);
    if (code !== 0) throw new Error(`writer ${mode} exited ${code}: ${child.stderr().trim()}`);
    return JSON.parse(child.stdout()) as { seconds: number; systemSeconds: number };
  } finally {
    await child.stop();
  }
}

/**
 * Removes what a run wrote in `dir` (with `bigTarget`, writes the existing 1.5 GiB target
 * (iii) replaces), then flushes, so the next run starts with no writeback pending.
 */
async function clearDir(dir: string, bigTarget: boolean): Promise<void> {
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir);
  if (bigTarget) await writer('prepare', dir, 1, BIG_MIB);
  execFileSync('sync', { timeout: FS_MS });
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
};

/** 2–3 significant digits. */
const fmt = (x: number): string => (Math.abs(x) >= 100 ? x.toFixed(0) : String(Number(x.toPrecision(3))));
const mib = (kib: number | undefined): string => (kib === undefined ? '-' : fmt(kib / 1024));

/** A Markdown table. */
function markdown(headers: string[], rows: string[][]): string {
  return [headers, headers.map((_, i) => (i === 0 ? '---' : '---:')), ...rows].map((r) => `| ${r.join(' | ')} |`).join('\n');
}

const commit = (() => {
  try {
    return execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: REPO_ROOT, encoding: 'utf8', timeout: 10_000 }).trim();
  } catch {
    return '?';
  }
})();

if (!existsSync(CLI)) {
  console.error(`${CLI} is missing: run npm run build first`);
  await stopAll();
  process.exit(1);
}

console.log(`# Floors: ${new Date().toISOString().slice(0, 19).replace('T', ' ')} UTC, commit ${commit}, Node.js ${process.version}, ${cpus().length} CPUs\n`);

try {
  // Parts 1 and 2: the three servers side by side.
  const targets: Target[] = [];
  targets.push(await startPortPrinter('bare Node.js responder', process.execPath, ['-e', RESPONDER]));
  const pyVersion = await pyftpdlibVersion();
  if (pyVersion === undefined) {
    console.log(`pyftpdlib skipped: ${PYTHON} cannot import pyftpdlib (apt-get install python3-pyftpdlib)\n`);
  } else {
    const home = join(work, 'pyftpdlib-home');
    await mkdir(home);
    targets.push(await startPortPrinter(`pyftpdlib ${pyVersion}`, PYTHON, ['-c', PYFTPDLIB, BENCH_PASSWORD, home]));
  }
  const dfos = await startBenchServer({ args: ['--workers', '1', '--ban-threshold', '0', '--admin-listen', 'off', '--fsync', 'never'] });
  targets.push({ label: 'DFOS, one process', port: dfos.port, pid: dfos.pid, stop: tracked(dfos.stop), rssStartKiB: await rssKiB(dfos.pid), seconds: [], cpu: [] });

  for (const target of targets) await loginRound(target); // warm-up, not counted
  for (let round = 0; round < rounds; round++) {
    for (const target of targets) {
      const { seconds, cpu } = await loginRound(target);
      target.seconds.push(seconds);
      target.cpu.push(cpu);
    }
    console.error(`login round ${round + 1}/${rounds} done`);
  }
  await sleep(2000);
  for (const target of targets) target.rssAfterKiB = await rssKiB(target.pid);
  for (const target of targets) await target.stop();

  console.log(`## Logins: ${LOGINS} one after another, held open, then closed; ${rounds} rounds alternating servers (after 1 warm-up round each)\n`);
  console.log(
    markdown(
      ['server', `median s / ${LOGINS} logins`, 'min s', 'median ms / login', 'server CPU s / round (median)'],
      targets.map((t) => [t.label, fmt(median(t.seconds)), fmt(Math.min(...t.seconds)), fmt((median(t.seconds) * 1000) / LOGINS), fmt(median(t.cpu))]),
    ),
  );
  console.log('\nServer CPU: user + system from /proc/PID/stat (10 ms ticks), before the round to 300 ms after the close. The client is this script, on the same cores.');
  console.log('\n## Idle memory (RSS)\n');
  console.log(
    markdown(
      ['server', 'RSS at start MiB', `RSS after the rounds (+2 s) MiB`],
      targets.map((t) => [t.label, mib(t.rssStartKiB), mib(t.rssAfterKiB)]),
    ),
  );
  console.log('\nThe bare responder at start is an idle `net` server: the least RSS of a Node.js process. DFOS at start: after the one login that shows it is up.\n');

  // Part 3: the filesystem alone.
  const fsDir = join(work, 'fs');
  await mkdir(fsDir);
  const freeBytes = (() => {
    const s = statfsSync(fsDir);
    return s.bavail * s.bsize;
  })();
  if (freeBytes < MIN_FREE) {
    console.log(`## Filesystem floor skipped: ${fmt(freeBytes / 1024 / MIB)} GiB free in ${tmpdir()}, needs 6 GiB`);
  } else {
    type Run = { seconds: number; systemSeconds: number };
    const small: Record<'atomic' | 'inplace', Run[]> = { atomic: [], inplace: [] };
    const big: Record<'atomic' | 'inplace', Run[]> = { atomic: [], inplace: [] };
    for (let run = 0; run < FS_RUNS; run++) {
      for (const mode of ['atomic', 'inplace'] as const) {
        small[mode].push(await writer(mode, fsDir, FILES, FILE_MIB));
        await clearDir(fsDir, false);
      }
    }
    await clearDir(fsDir, true);
    for (let run = 0; run < FS_RUNS; run++) {
      for (const mode of ['atomic', 'inplace'] as const) {
        big[mode].push(await writer(mode, fsDir, 1, BIG_MIB));
        await clearDir(fsDir, true);
      }
    }
    await rm(fsDir, { recursive: true, force: true });

    const cell = (r: Run | undefined, rate?: number): string =>
      r === undefined ? '-' : `${rate === undefined ? fmt(r.seconds) : fmt(rate / r.seconds)} (${fmt(r.systemSeconds)})`;
    console.log(`## Filesystem floor for uploads (no network; ${fsFsType()} under ${tmpdir()}; synchronous 64 KiB writes in a child; wall s or MiB/s, (system CPU s))\n`);
    console.log(
      markdown(
        ['run', `${FILES} x ${FILE_MIB} MiB atomic (temp + rename) s`, `${FILES} x ${FILE_MIB} MiB in place (one file, ${FILES} fds) s`, `${BIG_MIB / 1024} GiB atomic MiB/s`, `${BIG_MIB / 1024} GiB in place MiB/s`],
        Array.from({ length: FS_RUNS }, (_, i) => [String(i + 1), cell(small.atomic[i]), cell(small.inplace[i]), cell(big.atomic[i], BIG_MIB), cell(big.inplace[i], BIG_MIB)]),
      ),
    );
  }
} finally {
  await stopAll();
}

/** The type of the filesystem the temporary directory is on (from /proc/mounts via `findmnt`), or '?'. */
function fsFsType(): string {
  try {
    return execFileSync('findmnt', ['-n', '-o', 'FSTYPE', '-T', tmpdir()], { encoding: 'utf8', timeout: 10_000 }).trim() || '?';
  } catch {
    return '?';
  }
}
