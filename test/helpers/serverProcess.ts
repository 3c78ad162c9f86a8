import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Writable } from 'node:stream';
import { writeUsersFile, type TestUser } from './testServer.js';

/** The repository root (where package.json, dist/ and pm2.config.js live). */
export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
/** The `dfos` executable (package.json bin; `npm test` builds dist/ before ava runs). */
export const CLI = join(REPO_ROOT, 'dist', 'dfos.cjs');

/** How a spawned server ended. */
export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** Temporary directories and files for one server (spawned or in-process). */
export interface ServerDirs {
  dir: string;
  storage: string;
  logDir: string;
  usersFile: string;
}

/** Creates a temporary directory with a users file (default users alice/alice-pw, bob/bob-pw). */
export async function makeServerDirs(users?: TestUser[]): Promise<ServerDirs> {
  const dir = await mkdtemp(join(tmpdir(), 'dfos-proc-'));
  const dirs = { dir, storage: join(dir, 'storage'), logDir: join(dir, 'logs'), usersFile: join(dir, 'users.json') };
  await writeUsersFile(
    dirs.usersFile,
    users ?? [
      { name: 'alice', password: 'alice-pw' },
      { name: 'bob', password: 'bob-pw' },
    ],
  );
  return dirs;
}

/** A `node dist/dfos.cjs serve` child process. */
export interface ServerProcess extends ServerDirs {
  child: ChildProcess;
  /** The control port it listens on (parsed from its "DFOS listening" line). */
  port: number;
  host: string;
  /** The admin listener's base URL (`http://127.0.0.1:N`), from the same line; undefined when off. */
  adminUrl: string | undefined;
  /** Everything written on stdout / stderr so far. */
  stdout(): string;
  stderr(): string;
  /** Resolves when the process has exited. */
  exited: Promise<ExitInfo>;
  /** Waits (bounded) for the exit; rejects if it is still running after `timeoutMs`. */
  waitExit(timeoutMs: number): Promise<ExitInfo>;
  /** True while the process runs. */
  running(): boolean;
  /** Kills the process if still running (SIGKILL) and removes the temporary directory. */
  cleanup(): Promise<void>;
}

export interface SpawnOptions {
  /** Users for a fresh users file (ignored when `dirs` is given). */
  users?: TestUser[];
  /** Reuse existing directories (e.g. to restart on the same storage). */
  dirs?: ServerDirs;
  /** The --host flag (default 127.0.0.1). */
  host?: string;
  /** Extra flags after the defaults (later flags win in commander). */
  args?: string[];
  /** Replace the default flags entirely (storage, users, log dir, host, port...). */
  noDefaultFlags?: boolean;
  /**
   * Leave the number of workers to the server's default (one per CPU). Otherwise the server
   * runs as a single process (`--workers 1`): most tests are about one process, and the
   * workers have their own tests.
   */
  defaultWorkers?: boolean;
  /** Extra environment. */
  env?: Record<string, string | undefined>;
  /** Open an IPC channel (stdio 'ipc'), as pm2 does. */
  ipc?: boolean;
  /** Do not wait for the listening line (for start-up failures). */
  noWait?: boolean;
  /** Bound on the start-up wait (default 60 s). */
  startTimeoutMs?: number;
  /** A command the server runs under, as an argv prefix (e.g. `['strace', '-f', ...]`); `child` is then that command. */
  wrapper?: string[];
}

/** Environment without any DFOS_* variable inherited from the test runner. */
export function cleanEnv(extra: Record<string, string | undefined> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('DFOS_') && !k.startsWith('PM2_')) env[k] = v;
  for (const [k, v] of Object.entries(extra)) {
    if (v === undefined) delete env[k];
    else env[k] = v;
  }
  // No colours, so console output can be parsed.
  env.NO_COLOR = '1';
  env.FORCE_COLOR = '0';
  return env;
}

const ANSI = /\u001b\[[0-9;]*m/g;

/** Removes ANSI colour codes. */
export function stripAnsi(text: string): string {
  return text.replace(ANSI, '');
}

/** The non-empty lines of a process's output, trimmed, without colour codes. */
export function nonEmptyLines(text: string): string[] {
  return stripAnsi(text)
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '');
}

/**
 * Spawns `node dist/dfos.cjs serve` on 127.0.0.1 port 0 with temporary storage, users and
 * logs, the admin listener on 127.0.0.1 port 0, and waits (bounded) until it logs "DFOS listening ... port=N".
 */
export async function spawnServer(options: SpawnOptions = {}): Promise<ServerProcess> {
  const dirs = options.dirs ?? (await makeServerDirs(options.users));
  const defaults = options.noDefaultFlags
    ? []
    : [
        '--host', options.host ?? '127.0.0.1',
        '--port', '0',
        '--pasv-min', '0',
        '--pasv-max', '0',
        '--storage', dirs.storage,
        '--users', dirs.usersFile,
        '--log-dir', dirs.logDir,
        '--auth-fail-delay', '0.05',
        // Many tests fail logins on purpose; the defender has its own tests (later flags win).
        '--ban-threshold', '0',
        // Tests run in parallel: never the fixed default 127.0.0.1:9121.
        '--admin-listen', '127.0.0.1:0',
        ...(options.defaultWorkers ? [] : ['--workers', '1']),
      ];
  const command = [...(options.wrapper ?? []), process.execPath, CLI, 'serve', ...defaults, ...(options.args ?? [])];
  const child = spawn(command[0]!, command.slice(1), {
    cwd: dirs.dir,
    env: cleanEnv(options.env),
    stdio: options.ipc ? ['ignore', 'pipe', 'pipe', 'ipc'] : ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
  let exitInfo: ExitInfo | undefined;
  const exited = new Promise<ExitInfo>((resolveExit) => {
    child.once('exit', (code, signal) => {
      exitInfo = { code, signal };
      // 'exit' can come before the last stderr line was read from the pipe: wait for both
      // pipes to close (bounded: a worker left behind may hold them open).
      const info = exitInfo;
      const drained = Promise.all([child.stdout!, child.stderr!].map((s) => new Promise<void>((r) => (s.closed ? r() : s.once('close', () => r())))));
      void Promise.race([drained, new Promise((r) => setTimeout(r, 2000))]).then(() => resolveExit(info));
    });
  });
  const proc: ServerProcess = {
    ...dirs,
    child,
    port: 0,
    host: '127.0.0.1',
    adminUrl: undefined,
    stdout: () => out,
    stderr: () => err,
    exited,
    running: () => exitInfo === undefined,
    async waitExit(timeoutMs) {
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`server still running after ${timeoutMs} ms`)), timeoutMs);
      });
      try {
        return await Promise.race([exited, timeout]);
      } finally {
        clearTimeout(timer);
      }
    },
    async cleanup() {
      if (exitInfo === undefined) {
        child.kill('SIGKILL');
        await Promise.race([exited, new Promise((r) => setTimeout(r, 3000))]);
      }
      if (!options.dirs) await rm(dirs.dir, { recursive: true, force: true });
    },
  };
  if (options.noWait) return proc;
  // A bound on startup, not a speed target: test/workers.test.ts starts 8 servers of three
  // processes each at once, 13–18 s apiece on a slow 2-core machine even alone, and the
  // suite runs another file beside it (15 s here failed all 8 in CI with SIGKILL).
  const deadline = Date.now() + (options.startTimeoutMs ?? 60_000);
  for (;;) {
    const m = /DFOS listening\b.*?\bport=(\d+)/.exec(stripAnsi(out));
    if (m) {
      proc.port = Number(m[1]);
      const h = /DFOS listening\b.*?\bhost=(\S+)/.exec(stripAnsi(out));
      if (h) proc.host = h[1]!;
      const admin = /DFOS listening\b.*?\badmin=(http\S+)/.exec(stripAnsi(out));
      if (admin) proc.adminUrl = admin[1]!;
      return proc;
    }
    if (exitInfo !== undefined || Date.now() > deadline) {
      await proc.cleanup();
      throw new Error(
        `server did not start (exit ${JSON.stringify(exitInfo)}); stdout: ${out.slice(-2000)} stderr: ${err.slice(-2000)}`,
      );
    }
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** A TCP port that was free a moment ago (for tests that must name a port). */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  const s = createServer();
  await new Promise<void>((r, j) => {
    s.once('error', j);
    s.listen(0, host, () => r());
  });
  const port = (s.address() as AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

/** Polls `check` every `everyMs` until it returns a truthy value or `timeoutMs` passes. */
export async function pollUntil<T>(check: () => Promise<T> | T, timeoutMs: number, everyMs = 50): Promise<T | undefined> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const v = await check();
      if (v) return v;
    } catch {
      /* not yet */
    }
    if (Date.now() > deadline) return undefined;
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** Files named like DFOS upload temporaries anywhere under `dir`. */
export async function findTemps(dir: string): Promise<string[]> {
  const found: string[] = [];
  const walk = async (d: string, depth: number): Promise<void> => {
    if (depth > 10) return;
    let entries;
    try {
      entries = await readdir(d, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      const full = join(d, e.name);
      if (e.name.startsWith('.dfos-upload-')) found.push(full);
      if (e.isDirectory()) await walk(full, depth + 1);
    }
  };
  await walk(dir, 0);
  return found;
}

/** A Writable that keeps everything (for basic-ftp downloads). */
export function sink(): { stream: Writable; bytes: () => Buffer } {
  const chunks: Buffer[] = [];
  return {
    stream: new Writable({
      write(c: Buffer, _e, cb) {
        chunks.push(c);
        cb();
      },
    }),
    bytes: () => Buffer.concat(chunks),
  };
}

/**
 * Tries to open a control connection and read a 220 within `timeoutMs`. Resolves
 * 'refused' (connect failed), 'no-greeting' (connected but no 220) or 'greeted'.
 */
export async function probeGreeting(port: number, host = '127.0.0.1', timeoutMs = 700): Promise<'refused' | 'no-greeting' | 'greeted'> {
  const { connect } = await import('node:net');
  return new Promise((res) => {
    const socket = connect({ port, host });
    let buf = '';
    let done = false;
    const finish = (r: 'refused' | 'no-greeting' | 'greeted') => {
      if (done) return;
      done = true;
      clearTimeout(t);
      socket.destroy();
      res(r);
    };
    const t = setTimeout(() => finish(buf.startsWith('220') ? 'greeted' : 'no-greeting'), timeoutMs);
    let connected = false;
    socket.once('connect', () => (connected = true));
    socket.on('data', (d) => {
      buf += d.toString('latin1');
      if (/^220[ -]/.test(buf)) finish('greeted');
    });
    socket.on('error', () => finish(connected ? 'no-greeting' : 'refused'));
    socket.on('close', () => finish(connected ? 'no-greeting' : 'refused'));
  });
}

/**
 * Known server bug (reported): a record logged after DfosServer.shutdown() closed the
 * loggers throws "write after end" from an 'error' event nobody listens to, which crashes
 * the test worker. Tests that are not about that bug call this so a late record (e.g. a
 * command finishing after teardown) cannot take the whole file down; shutdown.test.ts
 * proves the bug itself in a child process.
 */
export function tolerateLateLogs(server: { loggers: { log: NodeJS.EventEmitter } }): void {
  const logger = server.loggers.log;
  if (logger.listenerCount('error') === 0) logger.on('error', () => undefined);
}
