import cluster, { type Worker } from 'node:cluster';
import { hostname } from 'node:os';
import { resolve, join } from 'node:path';
import { AggregatorRegistry } from 'prom-client';
import { RateLimiterClusterMaster } from 'rate-limiter-flexible';
import { workerCount, type ServerConfig } from '../config/serverConfig.js';
import { MemoryStore } from '../core/shared/ipc/MemoryStore.js';
import { isDfosMessage, type LogLine, type MetricsReply, type StateReply, type StateRequest, type StatusReply, type WorkerReady } from '../core/shared/ipc/protocol.js';
import { usageFilePath } from '../core/UsageLedger.js';
import { createLoggers, type Loggers } from '../logging/createLogger.js';
import type { LogSink } from '../logging/logSink.js';
import { RotatingFile, type LogRotation } from '../logging/RotatingFile.js';
import { AdminServer } from '../ops/AdminServer.js';
import { adminRoutes, type Readiness } from '../ops/adminRoutes.js';
import { readAdminToken } from '../ops/adminToken.js';
import { mergeStatusSnapshots } from '../status/mergeStatus.js';
import type { StatusSnapshot } from '../status/StatusBoard.js';
import { formatListenAddress, parseListenAddress } from '../util/listenAddress.js';
import { allocatorEnv } from './allocator.cjs';
import type { WorkerInfo } from './DfosServer.js';
import type { RunOptions } from './runOptions.js';

/** The environment the primary gives each worker: its index (1..N) and N. */
const INDEX_ENV = 'DFOS_WORKER_INDEX';
const COUNT_ENV = 'DFOS_WORKER_COUNT';
/** Time a drained worker gets beyond the shutdown grace (aborting, flushing) before it is killed. */
const DRAIN_MARGIN_MS = 10_000;
/** How long the primary waits for a worker's metrics or status picture. */
const ASK_TIMEOUT_MS = 2000;
/** A worker that crashes within this long of its start is restarted only after RESTART_DELAY_MS. */
const QUICK_CRASH_MS = 5000;
const RESTART_DELAY_MS = 1000;

/** This process's place among `--workers N`, or undefined when it is not a worker. */
export function workerInfoFromEnv(): WorkerInfo | undefined {
  if (!cluster.isWorker) return undefined;
  const index = Number(process.env[INDEX_ENV]);
  const count = Number(process.env[COUNT_ENV]);
  return Number.isInteger(index) && Number.isInteger(count) && index >= 1 && index <= count ? { index, count } : undefined;
}

/**
 * Worker `index` (1..count)'s equal, contiguous slice of the passive range min..max (the
 * first slices take one port more when it does not divide evenly); 0..0 stays 0..0 (every
 * worker lets the system pick a free port).
 */
export function passiveSlice(min: number, max: number, index: number, count: number): { pasvMin: number; pasvMax: number } {
  if (max === 0) return { pasvMin: 0, pasvMax: 0 };
  const size = max - min + 1;
  const base = Math.floor(size / count);
  const extra = size % count;
  const start = min + (index - 1) * base + Math.min(index - 1, extra);
  const length = base + (index <= extra ? 1 : 0);
  return { pasvMin: start, pasvMax: start + length - 1 };
}

function rotationOf(config: ServerConfig): LogRotation {
  return { mode: config.logRotate, maxSize: config.logMaxSize, maxFiles: config.logMaxFiles };
}

/**
 * `dfos serve --workers N` (N > 1): the primary process. It forks N workers (node:cluster,
 * round-robin on the shared control port), each serving FTP on its own slice of the passive
 * range; holds the shared state the workers ask for (bans, session counts, quota usage)
 * unless Redis does; writes every worker's log lines (one writer per file); serves the admin
 * listener (/healthz, /readyz, /metrics summed over the workers); restarts a worker that
 * crashed; and on SIGTERM/SIGINT drains every worker and exits 0 once all have exited.
 */
export async function runWorkers(config: ServerConfig, options: RunOptions = {}): Promise<void> {
  const count = workerCount(config.workers);
  let loggers: Loggers;
  let store: MemoryStore | undefined;
  try {
    loggers = createLoggers({ logDir: config.logDir, level: config.logLevel, console: config.console, rotation: rotationOf(config), fields: { worker: 0 } });
    store = config.redis === undefined ? await MemoryStore.open(usageFilePath(resolve(config.stateDir)), (m, f) => loggers.log.warn(m, f)) : undefined;
  } catch (err) {
    console.error(`dfos: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  }
  const { log } = loggers;
  let running = config;
  // Failed-login scores for the workers' cluster rate limiters (unused with Redis).
  new RateLimiterClusterMaster();

  // One writer per log file: the workers send their lines here.
  let xferlog: RotatingFile | undefined;
  const xferPath = () => (running.xferlog === undefined ? undefined : resolve(running.xferlog));
  const sinkFor = (path: string): LogSink | undefined => {
    if (path === resolve(join(config.logDir, 'dfos.log'))) return loggers.files.dfos;
    if (path === resolve(join(config.logDir, 'audit.log'))) return loggers.files.audit;
    const x = xferPath();
    if (x !== undefined && path === x) {
      if (xferlog?.path !== x) {
        void xferlog?.close();
        xferlog = new RotatingFile(x, rotationOf(running));
      }
      return xferlog;
    }
    return undefined;
  };

  cluster.schedulingPolicy = cluster.SCHED_RR;
  const workers = new Map<number, Worker>();
  const names = new Map<Worker, number>();
  let draining = false;
  let listening = false;
  let ready = 0;
  let address: WorkerReady | undefined;
  let stopped: () => void = () => undefined;
  const allExited = new Promise<void>((done) => (stopped = done));
  /** Answers awaited from workers (metrics, status), by request id. */
  const waiting = new Map<number, (answer: unknown) => void>();
  let nextRequest = 1;

  // Workers run on jemalloc when installed (see allocator.cts); a DFOS_ALLOCATOR mistake was refused at start (dfos.cts).
  const allocator = allocatorEnv();
  const allocatorAdd = 'add' in allocator ? allocator.add : {};
  const fork = (index: number) => {
    const worker = cluster.fork({ ...allocatorAdd, [INDEX_ENV]: String(index), [COUNT_ENV]: String(count) });
    const started = Date.now();
    workers.set(index, worker);
    names.set(worker, index);
    worker.on('message', (msg: unknown) => {
      if (!isDfosMessage(msg)) return;
      switch (msg.dfos) {
        case 'state': {
          const req = msg as StateRequest;
          let reply: StateReply;
          try {
            reply = { dfos: 'state-reply', id: req.id, ok: true, value: store?.handle(`w${index}`, req.op, req.args) };
          } catch (err) {
            reply = { dfos: 'state-reply', id: req.id, ok: false, error: err instanceof Error ? err.message : String(err) };
          }
          if (worker.isConnected()) worker.send(reply);
          break;
        }
        case 'log': {
          const line = msg as LogLine;
          sinkFor(line.path)?.write(line.line);
          break;
        }
        case 'ready':
          address ??= msg as WorkerReady;
          if (!listening && ++ready === count) {
            listening = true;
            log.info('DFOS listening', {
              host: address.host,
              port: address.port,
              workers: count,
              pasv: running.pasvMax > 0 ? `${running.pasvMin}-${running.pasvMax}` : 'any free port',
              admin: admin ? admin.url : 'off',
              state: running.redis === undefined ? 'primary' : 'redis',
            });
            process.send?.('ready');
          }
          break;
        case 'metrics-reply': {
          const reply = msg as MetricsReply;
          waiting.get(reply.id)?.(reply.metrics);
          break;
        }
        case 'status-reply': {
          const reply = msg as StatusReply;
          waiting.get(reply.id)?.(reply.snapshot);
          break;
        }
      }
    });
    worker.on('exit', (code, signal) => {
      workers.delete(index);
      store?.workerGone(`w${index}`);
      if (draining) {
        log.info('Worker exited', { worker: index, pid: worker.process.pid, code, signal });
        if (workers.size === 0) stopped();
        return;
      }
      if (!listening) {
        // A worker that cannot start (port in use, bad users file…) said why on stderr.
        log.error('Worker failed to start; stopping', { worker: index, code, signal });
        draining = true;
        for (const w of workers.values()) w.process.kill('SIGKILL');
        void loggers.close().finally(() => process.exit(1));
        return;
      }
      const quick = Date.now() - started < QUICK_CRASH_MS;
      log.error('Worker exited unexpectedly; restarting it', { worker: index, pid: worker.process.pid, code, signal });
      setTimeout(() => {
        if (!draining) fork(index);
      }, quick ? RESTART_DELAY_MS : 0).unref();
    });
  };

  // The admin listener: health and readiness of the whole server, metrics summed and the
  // status page merged over the workers.
  let admin: AdminServer | undefined;
  const adminListen = config.adminListen === 'off' ? undefined : parseListenAddress(config.adminListen);
  if (adminListen) {
    const token = config.adminTokenFile === undefined ? undefined : await readAdminToken(resolve(config.adminTokenFile));
    /** Asks every worker (bounded: a worker that does not answer in time is left out). */
    const askAll = (kind: 'metrics' | 'status') =>
      Promise.all(
        [...workers.values()].map(
          (worker) =>
            new Promise<unknown>((done) => {
              const id = nextRequest++;
              const timer = setTimeout(() => {
                waiting.delete(id);
                done(undefined);
              }, ASK_TIMEOUT_MS);
              waiting.set(id, (answer) => {
                clearTimeout(timer);
                waiting.delete(id);
                done(answer);
              });
              if (worker.isConnected()) worker.send({ dfos: kind, id });
            }),
        ),
      );
    const metrics = {
      async exposition() {
        const all = await askAll('metrics');
        const registry = AggregatorRegistry.aggregate(all.filter((m): m is Parameters<typeof AggregatorRegistry.aggregate>[0][number] => Array.isArray(m)));
        return { contentType: registry.contentType, text: await registry.metrics() };
      },
    };
    const status = {
      get title() {
        return `${hostname()} ftp ${address?.host ?? config.host}:${address?.port ?? config.port} (${count} workers)`;
      },
      async snapshot() {
        const all = await askAll('status');
        return mergeStatusSnapshots(all.filter((s): s is StatusSnapshot => typeof s === 'object' && s !== null));
      },
    };
    const readiness = (): Readiness => (draining ? 'draining' : listening ? 'ready' : 'starting');
    try {
      admin = await AdminServer.listen({
        listen: adminListen,
        ...(token !== undefined ? { token } : {}),
        log,
        routes: adminRoutes({ metrics, readiness, status }),
      });
    } catch (err) {
      console.error(`dfos: Cannot listen on ${formatListenAddress(adminListen)} for the admin listener: ${err instanceof Error ? err.message : String(err)}`);
      process.exit(1);
    }
  }

  for (let i = 1; i <= count; i++) fork(i);

  let signals = 0;
  const onStop = (signal: NodeJS.Signals) => {
    signals++;
    if (signals > 1) {
      log.warn(`Second ${signal}: stopping every worker now; uploads in flight are discarded`);
      for (const w of workers.values()) w.process.kill('SIGTERM');
      setTimeout(() => process.exit(1), 2000).unref();
      return;
    }
    draining = true;
    log.info(`${signal} received: draining every worker`, { workers: workers.size });
    for (const w of workers.values()) w.process.kill('SIGTERM');
    if (workers.size === 0) stopped();
    const limit = setTimeout(() => {
      for (const w of workers.values()) {
        log.warn('Worker did not exit after the shutdown grace; killing it', { worker: names.get(w), pid: w.process.pid });
        w.process.kill('SIGKILL');
      }
    }, running.shutdownGrace * 1000 + DRAIN_MARGIN_MS);
    limit.unref();
    void allExited.then(async () => {
      clearTimeout(limit);
      await store?.flush();
      await admin?.close();
      log.info('Shutdown complete', { workers: count });
      await Promise.all([loggers.close(), xferlog?.close()]);
      process.exit(0);
    });
  };
  process.on('SIGTERM', onStop);
  process.on('SIGINT', onStop);
  process.on('SIGHUP', () => {
    void (async () => {
      if (options.reloadConfig) {
        try {
          running = await options.reloadConfig();
          log.level = running.logLevel;
        } catch {
          // Each worker reads the file again and logs why it is invalid.
        }
      }
      const rotation = rotationOf(running);
      loggers.reopen(rotation);
      xferlog?.reopen(rotation);
      for (const w of workers.values()) w.process.kill('SIGHUP');
    })();
  });
}
