import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, connect, type AddressInfo, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { DfosClient, type DfosConnectOptions } from '../../src/client/index.js';
import type { TestServer } from './testServer.js';

interface Teardown {
  teardown(fn: () => unknown): void;
}

/** Connects a DfosClient to a test server (closed at teardown). */
export async function connectClient(
  t: Teardown,
  srv: TestServer,
  user = 'alice',
  password = `${user}-pw`,
  extra: Partial<DfosConnectOptions> = {},
): Promise<DfosClient> {
  const client = await DfosClient.connect({ host: srv.host, port: srv.port, user, password, timeoutMs: 10_000, ...extra });
  t.teardown(() => client.close());
  return client;
}

/** A temporary directory removed at teardown. */
export async function tempDir(t: Teardown, prefix = 'dfos-client-'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** A Writable that keeps everything written to it. */
export function collector(): Writable & { bytes(): Buffer } {
  const chunks: Buffer[] = [];
  const w = new Writable({
    write(chunk: Buffer, _enc, cb) {
      chunks.push(chunk);
      cb();
    },
  }) as Writable & { bytes(): Buffer };
  w.bytes = () => Buffer.concat(chunks);
  return w;
}

/** A loopback port on which nothing listens (bound, read, then closed). */
export async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/**
 * A loopback TCP relay in front of the real server's control port. Client bytes go through
 * at once. Server bytes go through unchanged, or, while `split` is on, in `chunkSize`-byte
 * pieces, each written `delayMs` after the previous one (default: one event-loop turn), so
 * replies arrive in many TCP segments, as on real networks; while `stalled` is on they are
 * held back (a network that stops delivering). Data connections (EPSV) bypass the relay.
 */
export interface ControlRelay {
  port: number;
  split: boolean;
  stalled: boolean;
  /** How many server-to-client writes the relay made (to check that it really split). */
  writes: number;
  close(): Promise<void>;
}

/** Starts a ControlRelay to `targetPort` on 127.0.0.1. */
export async function startControlRelay(
  targetPort: number,
  options: { split?: boolean; chunkSize?: number; delayMs?: number } = {},
): Promise<ControlRelay> {
  const chunkSize = options.chunkSize ?? 7;
  const delayMs = options.delayMs ?? 0;
  const sockets = new Set<Socket>();
  const relay: ControlRelay = {
    port: 0,
    split: options.split ?? true,
    stalled: false,
    writes: 0,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  const server: Server = createServer((client) => {
    client.setNoDelay(true);
    const upstream = connect({ host: '127.0.0.1', port: targetPort });
    sockets.add(client);
    sockets.add(upstream);
    const pending: Buffer[] = [];
    let pumping = false;
    let upstreamEnded = false;
    const pump = async () => {
      if (pumping) return;
      pumping = true;
      while (pending.length > 0 && !client.destroyed) {
        if (relay.stalled) {
          await new Promise((r) => setTimeout(r, 20));
          continue;
        }
        const data = pending.shift()!;
        if (!relay.split) {
          relay.writes++;
          client.write(data);
          continue;
        }
        for (let at = 0; at < data.length && !client.destroyed; at += chunkSize) {
          relay.writes++;
          client.write(data.subarray(at, at + chunkSize));
          // delayMs 0: yield one event-loop turn (setImmediate), enough for the reader to see each piece alone.
          await new Promise((r) => (delayMs > 0 ? setTimeout(r, delayMs) : setImmediate(r)));
        }
      }
      pumping = false;
      if (upstreamEnded && pending.length === 0) client.end();
    };
    upstream.on('data', (d: Buffer) => {
      pending.push(d);
      void pump();
    });
    upstream.on('end', () => {
      upstreamEnded = true;
      void pump();
    });
    client.on('data', (d: Buffer) => upstream.write(d));
    client.on('end', () => upstream.end());
    client.on('close', () => {
      sockets.delete(client);
      upstream.destroy();
    });
    upstream.on('close', () => {
      sockets.delete(upstream);
      upstreamEnded = true;
      void pump();
    });
    client.on('error', () => undefined);
    upstream.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  relay.port = (server.address() as AddressInfo).port;
  return relay;
}

/** How a `node dist/cli.js …` run ended; stdout is raw bytes (binary-safe). */
export interface CliRun {
  code: number | null;
  stdout: Buffer;
  stderr: string;
}

/** Runs the built CLI with only the given DFOS_* variables set (bounded: killed after 30 s). */
export function runCli(
  cli: string,
  args: string[],
  opts: { env?: Record<string, string>; cwd?: string; input?: string } = {},
): Promise<CliRun> {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('DFOS_')) env[k] = v;
  Object.assign(env, opts.env);
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [cli, ...args], { env, cwd: opts.cwd, stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout: Buffer.concat(out), stderr });
    });
    child.stdin.on('error', () => undefined);
    child.stdin.end(opts.input ?? '');
  });
}

/**
 * Asserts two byte buffers are equal without ava's deep diff (which takes seconds on
 * megabytes and blocks the event loop of every test in the file meanwhile).
 */
export function sameBytes(t: { true(value: boolean, message?: string): void }, actual: Buffer, expected: Buffer, what = 'bytes'): void {
  if (actual.equals(expected)) {
    t.true(true);
    return;
  }
  let at = 0;
  while (at < actual.length && at < expected.length && actual[at] === expected[at]) at++;
  t.true(false, `${what}: got ${actual.length} bytes, expected ${expected.length}; first difference at byte ${at}`);
}
