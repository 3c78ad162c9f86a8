import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, stat, utimes, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { connect, createServer, isIPv6, type AddressInfo, type Server, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import test from 'ava';
import type { ServerConfigInput } from '../../src/config/serverConfig.js';
import { RawFtp, REPLY_MS, type RawReply } from './rawFtp.js';
import { startTestServer, type TestServer, type TestUser } from './testServer.js';
import { freePortBlock } from './freePorts.js';

/**
 * Helpers for the protocol conformance and interop tests of issue 4: exactly-one-reply
 * checks, passive/active data connections by hand, a free passive port range, IPv6
 * detection, and the "client program missing" rule (fail naming the Debian package,
 * unless DFOS_SKIP_MISSING_CLIENTS=1).
 */

/** Every verb of RFC 959, 2389, 2428 and 3659 that a walk over the verbs must cover. */
export const RFC_VERBS = [
  'ABOR', 'ACCT', 'ALLO', 'APPE', 'CDUP', 'CWD', 'DELE', 'EPRT', 'EPSV', 'FEAT', 'HELP', 'LIST', 'MDTM', 'MKD',
  'MLSD', 'MLST', 'MODE', 'NLST', 'NOOP', 'OPTS', 'PASS', 'PASV', 'PORT', 'PWD', 'QUIT', 'REIN', 'REST', 'RETR',
  'RMD', 'RNFR', 'RNTO', 'SITE', 'SIZE', 'SMNT', 'STAT', 'STOR', 'STOU', 'STRU', 'SYST', 'TYPE', 'USER', 'XCUP',
  'XCWD', 'XMKD', 'XPWD', 'XRMD',
] as const;

/** The verbs a HELP reply lists (upper-case words of 3–4 letters on its content lines). */
export function helpVerbs(help: RawReply): string[] {
  const words = new Set<string>();
  for (const line of help.lines.slice(1, -1)) {
    for (const w of line.trim().split(/\s+/)) if (/^[A-Z]{3,4}$/.test(w)) words.add(w);
  }
  return [...words].sort();
}

/**
 * Sends `line` and reads its replies: at most one 1xx preliminary reply when
 * `allowPreliminary`, then exactly one final reply; afterwards the connection must stay
 * silent for 300 ms. Throws (with what arrived) when that does not hold.
 */
export async function oneReply(raw: RawFtp, line: string, options: { allowPreliminary?: boolean; timeoutMs?: number } = {}): Promise<{ final: RawReply; preliminary?: RawReply }> {
  raw.write(`${line}\r\n`);
  return readOneReply(raw, line, options);
}

/** Like oneReply, for bytes already written. */
export async function readOneReply(raw: RawFtp, what: string, options: { allowPreliminary?: boolean; timeoutMs?: number } = {}): Promise<{ final: RawReply; preliminary?: RawReply }> {
  let first: RawReply;
  try {
    first = await raw.read(options.timeoutMs ?? REPLY_MS);
  } catch (err) {
    throw new Error(`${JSON.stringify(what)}: no reply (${(err as Error).message})`);
  }
  let preliminary: RawReply | undefined;
  let final = first;
  if (first.code < 200 && options.allowPreliminary) {
    preliminary = first;
    try {
      final = await raw.read(options.timeoutMs ?? REPLY_MS);
    } catch (err) {
      throw new Error(`${JSON.stringify(what)}: preliminary ${JSON.stringify(first.raw)} but no final reply (${(err as Error).message})`);
    }
  }
  if (!(await raw.silentFor(300))) {
    throw new Error(`${JSON.stringify(what)}: more than one reply: ${JSON.stringify((preliminary?.raw ?? '') + final.raw)} then ${JSON.stringify(raw.pending)}`);
  }
  return { final, preliminary };
}

/** The class of a reply code: 1..5. */
export function codeClass(code: number): number {
  return Math.floor(code / 100);
}

/** `h1,h2,h3,h4,p1,p2` for PORT. */
export function portArgument(host: string, port: number): string {
  return `${host.split('.').join(',')},${port >> 8},${port & 255}`;
}

/** `|1|host|port|` or `|2|host|port|` for EPRT. */
export function eprtArgument(host: string, port: number): string {
  return `|${isIPv6(host) ? 2 : 1}|${host}|${port}|`;
}

/** Host and port of a `227 Entering Passive Mode (h1,h2,h3,h4,p1,p2)` reply. */
export function parsePasv(reply: RawReply): { host: string; port: number } {
  const m = /(\d{1,3}),(\d{1,3}),(\d{1,3}),(\d{1,3}),(\d{1,3}),(\d{1,3})/.exec(reply.raw);
  if (reply.code !== 227 || !m) throw new Error(`not a PASV reply: ${reply.raw}`);
  const n = m.slice(1).map(Number);
  return { host: n.slice(0, 4).join('.'), port: n[4]! * 256 + n[5]! };
}

/** The port of a `229 ... (|||port|)` reply. */
export function parseEpsv(reply: RawReply): number {
  const m = /\(\|\|\|(\d+)\|\)/.exec(reply.raw);
  if (reply.code !== 229 || !m) throw new Error(`not an EPSV reply: ${reply.raw}`);
  return Number(m[1]);
}

/** Opens a TCP connection (rejects on error or after `timeoutMs`). */
export function openSocket(host: string, port: number, timeoutMs = 5000): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host, port });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`connect to ${host}:${port} timed out`));
    }, timeoutMs);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.on('error', () => undefined);
      resolve(socket);
    });
    socket.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

/** 'refused' if nothing listens on host:port, 'open' if a connection was accepted (it is closed at once). */
export async function probePort(host: string, port: number): Promise<'refused' | 'open' | string> {
  try {
    const s = await openSocket(host, port, 3000);
    s.destroy();
    return 'open';
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return code === 'ECONNREFUSED' ? 'refused' : (code ?? (err as Error).message);
  }
}

/** Polls (bounded) until connecting to host:port is refused; returns the last probe result. */
export async function waitRefused(host: string, port: number, timeoutMs = 5000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const r = await probePort(host, port);
    if (r === 'refused' || Date.now() >= deadline) return r;
    await sleep(100);
  }
}

/**
 * A listener for active mode (PORT/EPRT): the test plays the client's data side.
 * `accepted()` resolves with the first connection the server opens (bounded).
 */
export interface ActiveListener {
  host: string;
  port: number;
  accepted(timeoutMs?: number): Promise<Socket>;
  /** How many connections arrived so far. */
  count(): number;
  close(): Promise<void>;
}

export async function activeListener(host = '127.0.0.1'): Promise<ActiveListener> {
  const sockets: Socket[] = [];
  const waiters: ((s: Socket) => void)[] = [];
  const server: Server = createServer((s) => {
    s.on('error', () => undefined);
    sockets.push(s);
    const w = waiters.shift();
    if (w) w(s);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  let taken = 0;
  return {
    host,
    port,
    count: () => sockets.length,
    accepted(timeoutMs = REPLY_MS) {
      if (taken < sockets.length) return Promise.resolve(sockets[taken++]!);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`the server opened no active data connection to ${host}:${port} within ${timeoutMs} ms`)), timeoutMs);
        waiters.push((s) => {
          clearTimeout(timer);
          taken++;
          resolve(s);
        });
      });
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** True if a TCP listener can be opened on `host` (e.g. '::1'). */
export async function canListen(host: string): Promise<boolean> {
  const server = createServer();
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, host, () => resolve());
    });
    await new Promise<void>((resolve) => server.close(() => resolve()));
    return true;
  } catch {
    return false;
  }
}

/** Whether ::1 is configured (the IPv6 halves of the tests run only then). */
export const HAS_IPV6 = await canListen('::1');

/** A passive port range of `size` ports, all free at the time of the call (outside the kernel's ephemeral range). */
export async function freePortRange(size: number, host = '127.0.0.1'): Promise<{ pasvMin: number; pasvMax: number }> {
  const [pasvMin, pasvMax] = await freePortBlock(size, [host]);
  return { pasvMin, pasvMax };
}

/**
 * Starts a test server with a configuration that may hold keys this version of the schema
 * does not declare yet (such as `dataTimeout`): they are passed through as they are.
 */
export function startServer(options: { users?: TestUser[]; config?: Record<string, unknown> } = {}): Promise<TestServer> {
  return startTestServer({ users: options.users, config: options.config as ServerConfigInput | undefined });
}

/**
 * Whether `program` runs (spawned with `versionArgs`, no shell) and exits with one of
 * `okCodes` (0 by default; ncftpput/ncftpget have no version flag and exit 8 on -h).
 */
export function programAvailable(program: string, versionArgs: string[], okCodes: readonly number[] = [0]): boolean {
  const r = spawnSync(program, versionArgs, { timeout: 10_000, stdio: 'ignore' });
  return !r.error && r.status !== null && okCodes.includes(r.status);
}

/**
 * `test`, or `test.skip` when `program` is missing AND DFOS_SKIP_MISSING_CLIENTS=1 is set.
 * Without the switch a missing program makes the test run and FAIL (requireTool names the
 * Debian package). CI never sets the switch.
 */
export function testWithClient(program: string, versionArgs: string[], okCodes: readonly number[] = [0]): typeof test {
  if (process.env.DFOS_SKIP_MISSING_CLIENTS === '1' && !programAvailable(program, versionArgs, okCodes)) return test.skip as unknown as typeof test;
  return test;
}

/** The hosts of the interop matrix: IPv4 always, IPv6 when ::1 is configured. */
export const FAMILIES = [
  { name: 'IPv4', host: '127.0.0.1', urlHost: '127.0.0.1', available: true },
  { name: 'IPv6', host: '::1', urlHost: '[::1]', available: HAS_IPV6 },
] as const;

/** Connects to host:port and logs in, waiting up to REPLY_MS for each reply. */
export async function loginAt(port: number, host: string, user = 'alice', password = 'alice-pw'): Promise<RawFtp> {
  const raw = await RawFtp.connect(port, host);
  const u = await raw.command(`USER ${user}`, REPLY_MS);
  const p = u.code === 331 ? await raw.command(`PASS ${password}`, REPLY_MS) : u;
  if (p.code !== 230) {
    raw.close();
    throw new Error(`login as ${user} failed: ${u.raw}${p.raw}`);
  }
  return raw;
}

/** Result of an external client run. */
export interface ProgramResult {
  /** Exit code, or null when killed (time limit or on purpose). */
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** A running external client: its pid (to kill only it) and its completion. */
export interface RunningProgram {
  child: ChildProcess;
  done: Promise<ProgramResult>;
  kill(): void;
}

/**
 * Starts a program (no shell) with optional stdin text and extra environment; it is
 * killed (SIGKILL, by pid) after `timeoutMs`. Rejects only if the program cannot start.
 * With `openStdin`, stdin stays open for the caller to write (and end) as the run goes on.
 */
export function startProgram(file: string, args: string[], options: { cwd?: string; env?: Record<string, string>; input?: string; openStdin?: boolean; timeoutMs?: number } = {}): RunningProgram {
  const child = spawn(file, args, { cwd: options.cwd, env: { ...process.env, ...options.env }, stdio: ['pipe', 'pipe', 'pipe'] });
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  child.stdout!.on('data', (c: Buffer) => out.push(c));
  child.stderr!.on('data', (c: Buffer) => err.push(c));
  child.stdin!.on('error', () => undefined);
  if (options.input !== undefined) child.stdin!.end(options.input);
  else if (!options.openStdin) child.stdin!.end();
  const kill = () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  };
  const timer = setTimeout(kill, options.timeoutMs ?? 30_000);
  const done = new Promise<ProgramResult>((resolve, reject) => {
    child.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') });
    });
  });
  return { child, done, kill };
}

/** Runs a program to completion (bounded); see startProgram. */
export function runProgram(file: string, args: string[], options: { cwd?: string; env?: Record<string, string>; input?: string; timeoutMs?: number } = {}): Promise<ProgramResult> {
  return startProgram(file, args, options).done;
}

/**
 * Starts `program` downloading into `localFile`, kills it (by pid) once at least
 * `minBytes` arrived, and returns how many bytes were there. The caller limits the
 * client's rate so the kill lands mid-transfer. Throws if that never happens.
 */
export async function interruptDownload(program: RunningProgram, localFile: string, minBytes: number, timeoutMs = 20_000): Promise<number> {
  try {
    await waitForBytes(program, localFile, minBytes, timeoutMs);
  } finally {
    program.kill();
  }
  await program.done.catch(() => undefined);
  return statSize(localFile);
}

/**
 * Waits (polling, bounded by `timeoutMs`) until `localFile` holds at least `minBytes`,
 * i.e. until `program`'s download is really running. Throws, naming the sizes and the
 * client's last words, if the program exits first or the time runs out.
 */
export async function waitForBytes(program: RunningProgram, localFile: string, minBytes: number, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let exited = false;
  void program.done.then(() => (exited = true), () => (exited = true));
  for (;;) {
    const size = await statSize(localFile);
    if (size >= minBytes) return;
    if (exited) {
      const r = await program.done;
      throw new Error(`the client exited (code ${r.code}) before ${minBytes} bytes arrived (${size}): ${r.stderr.slice(-2000)}`);
    }
    if (Date.now() >= deadline) throw new Error(`no ${minBytes} bytes in ${localFile} within ${timeoutMs} ms (${size})`);
    await sleep(20);
  }
}

async function statSize(file: string): Promise<number> {
  try {
    return (await stat(file)).size;
  } catch {
    return 0;
  }
}

/** sha256 of every file under `dir`, by relative path (for comparing trees). */
export async function treeHashes(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  for (const e of entries) {
    if (!e.isFile()) continue;
    const full = join(e.parentPath ?? (e as unknown as { path: string }).path, e.name);
    out[relative(dir, full)] = createHash('sha256').update(await readFile(full)).digest('hex');
  }
  return out;
}

/** Modification time of every file under `dir`, in whole seconds since the epoch, by relative path. */
export async function treeMtimes(dir: string): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  for (const e of entries) {
    if (!e.isFile()) continue;
    const full = join(e.parentPath ?? (e as unknown as { path: string }).path, e.name);
    out[relative(dir, full)] = Math.floor((await stat(full)).mtimeMs / 1000);
  }
  return out;
}

/**
 * Writes the small tree the tree-sync interop tests (rclone, wget, ncftp) send around:
 * nested directories, text files (one empty, one with spaces in its name) and binary
 * files, each with its own whole-second modification time in the past (so a client that
 * keeps times can be told from one that stamps "now"). Returns the times by relative path.
 */
export async function writeInteropTree(dir: string): Promise<Record<string, number>> {
  const files: [string, Buffer, string][] = [
    ['a.txt', Buffer.from('alpha line\n  indented line\nlast\n'), '2021-03-04T05:06:07Z'],
    ['empty.txt', Buffer.alloc(0), '2020-01-02T03:04:05Z'],
    ['name with spaces.txt', Buffer.from('spaces\n'), '2018-07-08T09:10:11Z'],
    ['sub/b.bin', randomBytes(150_000), '2019-12-31T23:59:58Z'],
    ['sub/deeper/c.txt', Buffer.from('deep\r\nwith CRLF\r\n'), '2022-11-12T13:14:15Z'],
    ['sub/deeper/d.bin', randomBytes(3000), '2017-05-06T07:08:09Z'],
  ];
  const times: Record<string, number> = {};
  for (const [rel, data, iso] of files) {
    const full = join(dir, rel);
    await mkdir(join(full, '..'), { recursive: true });
    await writeFile(full, data);
    const seconds = Date.parse(iso) / 1000;
    await utimes(full, seconds, seconds);
    times[rel] = seconds;
  }
  return times;
}

/**
 * Throws (so the test FAILS, never skips) when `program` cannot run (or exits with a code
 * not in `okCodes`), naming the Debian package that provides it. Runs it with stdin from
 * /dev/null (for clients that would otherwise wait for commands).
 */
export function requireClient(program: string, versionArgs: string[], debianPackage: string, okCodes: readonly number[] = [0]): void {
  const r = spawnSync(program, versionArgs, { timeout: 10_000, stdio: 'ignore' });
  if (r.error || r.status === null || !okCodes.includes(r.status)) {
    const why = r.error ? r.error.message : `exit code ${r.status}`;
    throw new Error(`${program} is required by this test but is not usable (${why}): install the Debian package "${debianPackage}" (apt-get install -y ${debianPackage})`);
  }
}
