/**
 * Pieces the benchmarks share: a `dfos serve` process with one user (bench / bench-pw),
 * its memory from /proc, lean raw FTP sessions (a benchmark's client shares the machine
 * with the server, so it should cost little CPU), random payloads with their SHA-256, and
 * a time bound for any step. Loopback only; every wait is bounded.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { Writable } from 'node:stream';
import { freePort, spawnServer, type ServerProcess } from '../test/helpers/serverProcess.js';

export const BENCH_USER = 'bench';
export const BENCH_PASSWORD = 'bench-pw';
export const MIB = 1024 * 1024;

/** A started server and how to stop it. */
export interface BenchServer extends ServerProcess {
  pid: number;
  /** SIGTERM, then SIGKILL if it has not exited within 15 s; removes its temporary directory. */
  stop(): Promise<void>;
}

/**
 * Spawns `node dist/dfos.cjs serve` (build first) on 127.0.0.1, port and passive ports
 * chosen by the system, temporary users file / storage / logs, log level warn. `args`
 * come after the defaults and win (e.g. `--storage s3://BUCKET/PREFIX --s3-endpoint URL`).
 */
export async function startBenchServer(options: { args?: string[]; env?: Record<string, string> } = {}): Promise<BenchServer> {
  // At log level warn the server prints no "listening" line: name the port, poll for a login.
  const port = await freePort();
  const proc = await spawnServer({
    users: [{ name: BENCH_USER, password: BENCH_PASSWORD }],
    // The benchmarks open hundreds of sessions from 127.0.0.1: no connection caps.
    args: ['--port', String(port), '--log-level', 'warn', '--max-sessions', '0', '--max-sessions-per-ip', '0', ...(options.args ?? [])],
    env: options.env,
    noWait: true,
  });
  const pid = proc.child.pid;
  const server: BenchServer = Object.assign(proc, {
    port,
    pid: pid ?? 0,
    async stop() {
      if (proc.running()) {
        proc.child.kill('SIGTERM');
        await proc.waitExit(15_000).catch(() => undefined);
      }
      await proc.cleanup(); // SIGKILL if still running, then the temporary directory
    },
  });
  const deadline = Date.now() + 60_000;
  for (;;) {
    try {
      if (pid === undefined) throw new Error('no PID');
      (await rawLogin(port))();
      return server;
    } catch (err) {
      if (!proc.running() || Date.now() > deadline) {
        await server.stop();
        throw new Error(`server did not start (${(err as Error).message}); stderr: ${proc.stderr().slice(-2000)}`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

/** A field of /proc/PID/status in KiB (VmRSS: resident now; VmHWM: peak resident). */
export async function statusKiB(pid: number, field: 'VmRSS' | 'VmHWM' = 'VmRSS'): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  return Number(new RegExp(`${field}:\\s+(\\d+)`).exec(status)?.[1] ?? 0);
}

/** The resident memory of `pid` now, KiB. */
export const rssKiB = (pid: number): Promise<number> => statusKiB(pid, 'VmRSS');

/**
 * Samples VmRSS of `pid` every `intervalMs` until stopped; `stop()` gives the peak in KiB.
 * It also resets the kernel's peak counter (clear_refs 5) at the start, where allowed, and
 * takes VmHWM at the end, so a spike between two samples is not missed.
 */
export async function sampleRss(pid: number, intervalMs = 50): Promise<{ stop(): Promise<number> }> {
  const hwmReset = await writeFile(`/proc/${pid}/clear_refs`, '5').then(
    () => true,
    () => false,
  );
  let peak = await rssKiB(pid).catch(() => 0);
  const timer = setInterval(() => {
    rssKiB(pid).then(
      (kib) => (peak = Math.max(peak, kib)),
      () => undefined,
    );
  }, intervalMs);
  return {
    async stop() {
      clearInterval(timer);
      peak = Math.max(peak, await rssKiB(pid).catch(() => 0));
      if (hwmReset) peak = Math.max(peak, await statusKiB(pid, 'VmHWM').catch(() => 0));
      return peak;
    },
  };
}

/** CPU seconds `pid` has used so far, [user, system] (from /proc/PID/stat). */
export async function cpuSeconds(pid: number): Promise<[number, number]> {
  const fields = (await readFile(`/proc/${pid}/stat`, 'utf8')).split(') ')[1]!.split(' ');
  return [Number(fields[11]) / 100, Number(fields[12]) / 100];
}

/** Rejects with "WHAT: no result in N s" if `promise` takes longer than `ms`. */
export async function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no result in ${ms / 1000} s`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Logs in on a bare socket (USER, PASS) and resolves with a function that closes it. */
export function rawLogin(port: number): Promise<() => void> {
  return new Promise((resolve, reject) => {
    const s = connect({ port, host: '127.0.0.1' });
    let buf = '';
    let step = 0;
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error('login timeout'));
    }, 30_000);
    s.setEncoding('utf8');
    s.on('data', (d: string) => {
      buf += d;
      if (step === 0 && buf.includes('220 ')) (step = 1), s.write(`USER ${BENCH_USER}\r\n`);
      if (step === 1 && buf.includes('331 ')) (step = 2), s.write(`PASS ${BENCH_PASSWORD}\r\n`);
      if (step === 2 && buf.includes('230 ')) {
        step = 3;
        clearTimeout(timer);
        resolve(() => s.destroy());
      }
      if (buf.includes('530 ')) {
        clearTimeout(timer);
        s.destroy();
        reject(new Error('login refused'));
      }
    });
    s.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

/** A logged-in control connection (TYPE I): one command at a time, its final reply's last line. */
export interface RawSession {
  port: number;
  command(line: string): Promise<string>;
  close(): void;
}

/** Opens a RawSession; each reply is awaited at most `replyTimeoutMs`. */
export async function rawSession(port: number, replyTimeoutMs = 60_000): Promise<RawSession> {
  const s = connect({ port, host: '127.0.0.1' });
  s.setEncoding('utf8');
  let buf = '';
  let waiter: ((reply: string) => void) | undefined;
  s.on('data', (d: string) => {
    buf += d;
    for (;;) {
      const m = /^(\d{3}) .*\r\n/m.exec(buf);
      if (!m) return;
      const end = m.index + m[0].length;
      const reply = buf.slice(0, end);
      buf = buf.slice(end);
      if (m[1] === '150' || m[1] === '220') continue;
      const w = waiter;
      waiter = undefined;
      w?.(reply.trim().split('\r\n').at(-1)!);
    }
  });
  s.on('error', () => undefined);
  const command = (line: string) =>
    new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${line}: no reply in ${replyTimeoutMs / 1000} s`)), replyTimeoutMs);
      waiter = (reply) => {
        clearTimeout(timer);
        resolve(reply);
      };
      s.write(`${line}\r\n`);
    });
  await withTimeout(
    new Promise<void>((r, j) => s.once('connect', () => r()).once('error', j)),
    replyTimeoutMs,
    'connect',
  ).catch((err: unknown) => {
    s.destroy();
    throw err;
  });
  for (const [line, code] of [[`USER ${BENCH_USER}`, '331'], [`PASS ${BENCH_PASSWORD}`, '230'], ['TYPE I', '200']] as const) {
    const reply = await command(line).catch((err: unknown) => {
      s.destroy();
      throw err;
    });
    if (!reply.startsWith(code)) {
      s.destroy();
      throw new Error(`${line}: ${reply}`);
    }
  }
  return { port, command, close: () => s.destroy() };
}

/** Opens an EPSV data connection for `session`. */
export async function epsvData(session: RawSession): Promise<Socket> {
  const reply = await session.command('EPSV');
  const dataPort = Number(/\(\|\|\|(\d+)\|\)/.exec(reply)?.[1]);
  if (!dataPort) throw new Error(`EPSV: ${reply}`);
  const data = connect({ port: dataPort, host: '127.0.0.1' });
  await withTimeout(new Promise<void>((r, j) => data.once('connect', () => r()).once('error', j)), 30_000, 'data connect');
  return data;
}

/** STOR `name` with `payload`; throws unless the server answers 226. */
export async function storBuffer(session: RawSession, name: string, payload: Buffer): Promise<void> {
  const data = await epsvData(session);
  const replied = session.command(`STOR ${name}`);
  data.end(payload);
  const reply = await replied;
  if (!reply.startsWith('226')) throw new Error(`STOR ${name}: ${reply}`);
}

/**
 * RETR `name`, keeping the bytes (hash them after the clock stops, so the client's SHA-256
 * does not compete with the server for the CPU). Throws unless the server answers 226.
 */
export async function retrCollect(session: RawSession, name: string): Promise<Buffer[]> {
  const data = await epsvData(session);
  const chunks: Buffer[] = [];
  data.on('data', (d: Buffer) => chunks.push(d));
  const done = new Promise<void>((r, j) => data.once('end', () => r()).once('error', j));
  const reply = await session.command(`RETR ${name}`);
  await withTimeout(done, 60_000, `RETR ${name} data`);
  if (!reply.startsWith('226')) throw new Error(`RETR ${name}: ${reply}`);
  return chunks;
}

/** SHA-256 (hex) and length of the concatenation of `chunks`. */
export function digest(chunks: Iterable<Buffer>): { bytes: number; sha256: string } {
  const hash = createHash('sha256');
  let bytes = 0;
  for (const chunk of chunks) {
    hash.update(chunk);
    bytes += chunk.length;
  }
  return { bytes, sha256: hash.digest('hex') };
}

export const sha256 = (data: Buffer): string => createHash('sha256').update(data).digest('hex');

/** Writes `sizeMiB` MiB of random bytes to `file`; their SHA-256 (hex). */
export async function writeRandomFile(file: string, sizeMiB: number): Promise<string> {
  const hash = createHash('sha256');
  const out = createWriteStream(file);
  const failed = new Promise<never>((_, reject) => out.once('error', reject));
  for (let i = 0; i < sizeMiB; i++) {
    const block = randomBytes(MIB);
    hash.update(block);
    if (!out.write(block)) await Promise.race([new Promise<void>((r) => out.once('drain', () => r())), failed]);
  }
  await Promise.race([new Promise<void>((r) => out.end(() => r())), failed]);
  return hash.digest('hex');
}

/** A Writable that keeps every chunk (hash them after the clock stops). */
export function collector(): { sink: Writable; chunks: Buffer[] } {
  const chunks: Buffer[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      chunks.push(chunk);
      callback();
    },
  });
  return { sink, chunks };
}

/**
 * Opens `count` sessions ten at a time into `into` (an array the caller closes, also
 * after a failure), bounded by two minutes in all.
 */
export async function openInBatches<T>(into: T[], count: number, open: () => Promise<T>, what: string): Promise<void> {
  await withTimeout(
    (async () => {
      for (let i = 0; i < count; i += 10) {
        into.push(...(await Promise.all(Array.from({ length: Math.min(10, count - i) }, open))));
      }
    })(),
    120_000,
    what,
  );
}

/**
 * The benchmarks' command line: `[singleMiB=256] [sessions=50] [eachMiB=8] [only]`, where
 * `only` (one of `choices`, the `what` to run) limits the run. Throws on a bad value.
 */
export function benchArgs<C extends string>(choices: readonly C[], what: string): { singleMiB: number; sessions: number; eachMiB: number; only: C | undefined } {
  const [singleMiB, sessions, eachMiB] = [256, 50, 8].map((fallback, i) => Number(process.argv[2 + i] ?? fallback)) as [number, number, number];
  for (const [name, value] of [['singleMiB', singleMiB], ['sessions', sessions], ['eachMiB', eachMiB]] as const) {
    if (!Number.isSafeInteger(value) || value < 1) throw new Error(`${name} must be a positive integer (got ${value})`);
  }
  const only = process.argv[5];
  if (only !== undefined && !(choices as readonly string[]).includes(only)) throw new Error(`${what} must be ${choices.join(' or ')} (got ${only})`);
  return { singleMiB, sessions, eachMiB, only: only as C | undefined };
}

/**
 * What a benchmark must stop (servers, clusters), newest first: `stopAll()` runs each (a
 * failure is printed, not thrown), then `last` (e.g. removing the work folder). SIGINT and
 * SIGTERM run it too, then exit 130. `tracked(stop)` registers a stop and returns it
 * wrapped so that it runs once: called by the benchmark, it leaves the list first.
 */
export function stopsOnSignal(last: () => Promise<unknown> = async () => undefined): {
  stopAll: () => Promise<void>;
  tracked: (stop: () => Promise<void>) => () => Promise<void>;
} {
  const stops: (() => Promise<void>)[] = [];
  const stopAll = async () => {
    while (stops.length > 0) await stops.pop()!().catch((err: unknown) => console.error(`cleanup: ${(err as Error).message}`));
    await last();
  };
  const tracked = (stop: () => Promise<void>) => {
    let done = false;
    // Runs once whoever calls it first: the benchmark, or stopAll() (which has already
    // taken it off the list).
    const once = async (): Promise<void> => {
      if (done) return;
      done = true;
      const i = stops.indexOf(once);
      if (i >= 0) stops.splice(i, 1);
      await stop();
    };
    stops.push(once);
    return once;
  };
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      console.error(`${signal}: stopping what the benchmark started`);
      void stopAll().finally(() => process.exit(130));
    });
  }
  return { stopAll, tracked };
}
