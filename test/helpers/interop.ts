import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import type { Socket } from 'node:net';
import { Writable } from 'node:stream';
import type { Client } from 'basic-ftp';
import { RawFtp, REPLY_MS } from './rawFtp.js';

/**
 * Helpers for transfer tests: upload temporaries on disk, bounded waits, a patient raw
 * login, basic-ftp downloads, and running the real external clients (curl, python3 ftplib)
 * with bounded time. Raw data-connection helpers are in dataTransfer.ts.
 */

/** Matches an upload temporary (`.dfos-upload-*.part`) or append journal (`.dfos-upload-*.undo`). */
export const TEMP_NAME = /^\.dfos-upload-.*\.(part|undo)$/;

export function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Upload temporaries currently in `dir` (names only; [] if the directory is missing). */
export async function tempsIn(dir: string): Promise<string[]> {
  try {
    return (await readdir(dir)).filter((n) => TEMP_NAME.test(n));
  } catch {
    return [];
  }
}

/** Upload temporaries anywhere under `dir` (relative paths). */
export async function tempsUnder(dir: string): Promise<string[]> {
  try {
    const entries = await readdir(dir, { recursive: true });
    return entries.filter((p) => TEMP_NAME.test(p.split('/').pop() ?? ''));
  } catch {
    return [];
  }
}

/** Polls (bounded) until `dir` holds no upload temporary; returns those still there at the end. */
export async function waitNoTemps(dir: string, timeoutMs = 10_000): Promise<string[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const left = await tempsUnder(dir);
    if (left.length === 0 || Date.now() >= deadline) return left;
    await sleep(25);
  }
}

/** Polls (bounded) until `check` returns a value other than undefined; throws on timeout. */
export async function waitFor<T>(what: string, check: () => Promise<T | undefined>, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() >= deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(20);
  }
}

/** Waits (bounded) until a socket is closed; resolves false if it is still open at the end. */
export function socketClosed(socket: Socket, timeoutMs = 10_000): Promise<boolean> {
  if (socket.destroyed) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), timeoutMs);
    socket.resume();
    socket.on('error', () => undefined);
    socket.once('close', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

/**
 * Connects and logs in like RawFtp.login, but waits up to REPLY_MS for each reply (scrypt
 * verification of PASS can take seconds when many test servers share a small machine).
 */
export async function rawLogin(port: number, user: string, password: string): Promise<RawFtp> {
  const raw = await RawFtp.connect(port);
  const u = await raw.command(`USER ${user}`, REPLY_MS);
  if (u.code !== 331 && u.code !== 230) throw new Error(`USER: ${u.raw}`);
  const r = u.code === 230 ? u : await raw.command(`PASS ${password}`, REPLY_MS);
  if (r.code !== 230) {
    raw.close();
    throw new Error(`login failed: ${r.raw}`);
  }
  return raw;
}

/** Downloads a whole file with basic-ftp. */
export async function download(client: Client, name: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  await client.downloadTo(
    new Writable({
      write(chunk: Buffer, _enc, cb) {
        chunks.push(chunk);
        cb();
      },
    }),
    name,
  );
  return Buffer.concat(chunks);
}

/** Records the verb (upper-case) of every command a basic-ftp client sends from now on. */
export function recordSentVerbs(client: Client): string[] {
  const sent: string[] = [];
  client.ftp.verbose = true;
  client.ftp.log = (message: string) => {
    const m = /^> (\w+)/.exec(message);
    if (m) sent.push(m[1]!.toUpperCase());
  };
  return sent;
}

/** Result of running an external program. */
export interface RunResult {
  /** Exit code, or null when killed by a signal (e.g. the time limit). */
  code: number | null;
  stdout: Buffer;
  stderr: string;
}

/** Runs a program with arguments (no shell), bounded in time; never rejects for a non-zero exit. */
export function run(file: string, args: string[], options: { timeoutMs?: number; cwd?: string } = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    execFile(
      file,
      args,
      { timeout: options.timeoutMs ?? 20_000, killSignal: 'SIGKILL', maxBuffer: 64 << 20, encoding: 'buffer', cwd: options.cwd },
      (err, stdout, stderr) => {
        const errno = (err as NodeJS.ErrnoException | null)?.code;
        if (errno === 'ENOENT') return reject(new Error(`${file}: not found`));
        const exit = err ? ((err as { code?: unknown }).code as number | null) : 0;
        resolve({ code: typeof exit === 'number' ? exit : null, stdout, stderr: stderr.toString('utf8') });
      },
    );
  });
}

/**
 * Throws (so the test FAILS, never skips) when a program the interop tests need is not
 * installed, naming the Debian package that provides it.
 */
export async function requireTool(file: string, versionArgs: string[], debianPackage: string): Promise<string> {
  try {
    const r = await run(file, versionArgs, { timeoutMs: 10_000 });
    if (r.code !== 0) throw new Error(`exit code ${r.code}`);
    return (r.stdout.toString('utf8') + r.stderr).split('\n')[0] ?? '';
  } catch (err) {
    throw new Error(
      `${file} is required by this test but is not usable (${(err as Error).message}): install the Debian package "${debianPackage}" (apt-get install -y ${debianPackage})`,
    );
  }
}
