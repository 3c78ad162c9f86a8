import type { ServerConfig } from '../config/serverConfig.js';
import { isDfosMessage, type MetricsReply, type StatusReply, type WorkerReady } from '../core/shared/ipc/protocol.js';
import { forwardLogsToPrimary } from '../logging/logSink.js';
import { DfosServer, type WorkerInfo } from './DfosServer.js';
import { passiveSlice, workerInfoFromEnv } from './workers.js';
import type { RunOptions } from './runOptions.js';

export type { RunOptions } from './runOptions.js';

/**
 * Runs the DFOS server in the foreground: SIGTERM/SIGINT drain gracefully and exit 0, a
 * second signal exits at once, SIGHUP re-reads the configuration (applying what can change
 * while running), reopens the log files and reloads users and the TLS certificate. Tells a
 * process manager (pm2 `wait_ready`) it is ready with process.send('ready'). A fatal error
 * exits 1 with one clear log line.
 */
export async function runServer(config: ServerConfig, options: RunOptions = {}): Promise<void> {
  // A worker of `--workers N` (forked by runWorkers): its slice of the passive range, its
  // log lines written by the primary, signals and the shared state through the primary.
  const worker = workerInfoFromEnv();
  const ownSlice = (c: ServerConfig): ServerConfig => (worker ? { ...c, ...passiveSlice(c.pasvMin, c.pasvMax, worker.index, worker.count) } : c);
  if (worker) forwardLogsToPrimary();
  let server: DfosServer;
  try {
    server = await DfosServer.start(ownSlice(config), undefined, worker);
  } catch (err) {
    console.error(`dfos: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  }
  const { log } = server.loggers;

  const fatal = (err: unknown) => {
    log.error(`Fatal error, exiting: ${err instanceof Error ? err.stack ?? err.message : String(err)}`);
    server.abortNow();
    void server.loggers.close().finally(() => process.exit(1));
    setTimeout(() => process.exit(1), 2000).unref();
  };
  process.on('uncaughtException', fatal);
  process.on('unhandledRejection', fatal);

  let signals = 0;
  const onStop = (signal: NodeJS.Signals) => {
    signals++;
    if (signals > 1) {
      log.warn(`Second ${signal}: exiting now; uploads in flight are discarded`);
      server.abortNow();
      process.exit(1);
    }
    log.info(`${signal} received: draining`);
    server.shutdown().then(
      () => process.exit(0),
      (err: unknown) => fatal(err),
    );
  };
  process.on('SIGTERM', onStop);
  if (worker) {
    // The primary decides (Ctrl-C reaches the whole process group): it sends SIGTERM.
    process.on('SIGINT', () => undefined);
    // The primary is gone: drain and exit rather than serve on alone.
    process.on('disconnect', () => onStop('SIGTERM'));
    serveWorker(server, worker);
  } else {
    process.on('SIGINT', onStop);
  }
  // One SIGHUP at a time, in order: a second one waits for the first reload to finish.
  let reloading: Promise<unknown> = Promise.resolve();
  const onHangUp = async () => {
    let next: ServerConfig | undefined;
    if (options.reloadConfig) {
      try {
        next = ownSlice(await options.reloadConfig());
      } catch (err) {
        log.error('Config invalid; keeping the running configuration', { why: 'SIGHUP', error: err instanceof Error ? err.message : String(err) });
      }
    }
    await server.reload(next);
  };
  process.on('SIGHUP', () => {
    reloading = reloading.then(onHangUp).catch((err: unknown) => log.error('Reload failed', { why: 'SIGHUP', error: err instanceof Error ? err.message : String(err) }));
  });
  process.send?.('ready');
}

/** A worker's side of the IPC channel: its listening address, and its metrics and status picture on request. */
function serveWorker(server: DfosServer, worker: WorkerInfo): void {
  const ready: WorkerReady = { dfos: 'ready', host: server.address.host, port: server.address.port };
  process.send?.(ready);
  const reply = (msg: MetricsReply | StatusReply) => {
    if (process.connected) process.send?.(msg);
  };
  process.on('message', (msg: unknown) => {
    if (!isDfosMessage(msg)) return;
    const id = (msg as unknown as { id: number }).id;
    if (msg.dfos === 'status') {
      reply({ dfos: 'status-reply', id, snapshot: server.board?.snapshot() });
      return;
    }
    if (msg.dfos !== 'metrics') return;
    const metrics = server.metrics;
    void (metrics ? metrics.registry.getMetricsAsJSON() : Promise.resolve([])).then(
      (list) => reply({ dfos: 'metrics-reply', id, metrics: list }),
      () => undefined,
    );
  });
  void worker;
}
