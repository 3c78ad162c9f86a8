import { spawn, type ChildProcess } from 'node:child_process';
import { connect } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort } from './ceph.js';

/**
 * A real redis-server on a free loopback port for the cluster tests (Debian's
 * `redis-server` package): nothing saved to disk, stopped by PID. It can be killed and
 * started again on the same port, empty, to test outages.
 */
export interface RedisServer {
  port: number;
  /** redis://127.0.0.1:PORT */
  url: string;
  /** Whether the process runs. */
  running(): boolean;
  /** Stops it with `signal` (by PID) and waits (bounded) for the exit. */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** Starts it again on the same port (empty: nothing is saved). */
  restart(): Promise<void>;
  /** Stops it (SIGTERM, then SIGKILL) if it runs. */
  stop(): Promise<void>;
}

/** The Debian package that brings the server. */
export const REDIS_PACKAGE = 'redis-server';

/** Resolves true once `port` answers PING with PONG, false after `timeoutMs`. */
async function answers(port: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const ok = await new Promise<boolean>((resolve) => {
      const socket = connect({ host: '127.0.0.1', port });
      const timer = setTimeout(() => done(false), 500);
      const done = (v: boolean) => {
        clearTimeout(timer);
        socket.destroy();
        resolve(v);
      };
      socket.on('error', () => done(false));
      socket.on('connect', () => socket.write('PING\r\n'));
      socket.on('data', (d: Buffer) => done(d.toString().startsWith('+PONG')));
    });
    if (ok) return true;
    await sleep(50);
  }
  return false;
}

function launch(port: number): Promise<ChildProcess> {
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--daemonize', 'no'], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  return new Promise((resolve, reject) => {
    child.once('error', (err: NodeJS.ErrnoException) => {
      reject(err.code === 'ENOENT' ? new Error(`redis-server is needed for the cluster tests: apt-get install -y --no-install-recommends ${REDIS_PACKAGE}`) : err);
    });
    child.once('spawn', () => resolve(child));
  });
}

/** Starts a redis-server on a free loopback port and waits (bounded) until it answers. */
export async function startRedis(): Promise<RedisServer> {
  const port = await freePort();
  let child = await launch(port);
  const up = async () => {
    if (!(await answers(port, 10_000))) throw new Error(`redis-server on port ${port} did not answer PING within 10 s`);
  };
  const exited = (c: ChildProcess) => c.exitCode !== null || c.signalCode !== null;
  const kill = async (signal: NodeJS.Signals = 'SIGTERM') => {
    if (exited(child)) return;
    const gone = new Promise((resolve) => child.once('exit', resolve));
    child.kill(signal);
    await Promise.race([gone, sleep(5000)]);
    if (!exited(child)) {
      child.kill('SIGKILL');
      await Promise.race([gone, sleep(2000)]);
    }
  };
  await up();
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    running: () => !exited(child),
    kill,
    async restart() {
      await kill();
      child = await launch(port);
      await up();
    },
    stop: () => kill('SIGTERM'),
  };
}
