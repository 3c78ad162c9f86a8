import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { requireTool } from './interop.js';
import { runProgram, type Run } from './peerServers.js';
import { freePort, pollUntil } from './serverProcess.js';

/**
 * Debian's Prometheus server and promtool for the metrics tests: a Prometheus on a free
 * loopback port scraping a DFOS admin listener every second, queried through its HTTP API,
 * and promtool's checks. Started and stopped by PID; every wait is bounded.
 */

export const PROMETHEUS = '/usr/bin/prometheus';
export const PROMTOOL = '/usr/bin/promtool';

/** Throws (the test fails, never skips) when Debian's prometheus package is missing. */
export async function requirePrometheus(): Promise<void> {
  try {
    await requireTool(PROMETHEUS, ['--version'], 'prometheus');
    await requireTool(PROMTOOL, ['--version'], 'prometheus');
  } catch (err) {
    throw new Error(`${(err as Error).message}; .ci/run must install it (the "prometheus" package on its apt-get install line)`);
  }
}

/** Runs promtool with `args` and `input` on stdin (bounded). */
export function promtool(args: string[], input = ''): Promise<Run> {
  return runProgram(PROMTOOL, args, input, 30_000);
}

/** One result of an instant query. */
export interface QuerySample {
  metric: Record<string, string>;
  value: [number, string];
}

/** A running Prometheus. */
export interface Prometheus {
  /** http://127.0.0.1:PORT */
  url: string;
  /** An instant query through /api/v1/query; rejects unless the API says success. */
  query(expr: string): Promise<QuerySample[]>;
  /** GETs an API path (e.g. /api/v1/rules) and returns its `data`. */
  api(path: string): Promise<unknown>;
  /** Its output so far (for failure messages). */
  output(): string;
  /** SIGTERM by PID (SIGKILL after 10 s) and removes its directory. */
  stop(): Promise<void>;
}

export interface PrometheusOptions {
  /** `HOST:PORT` of the admin listener to scrape. */
  target: string;
  /** A file holding the bearer token the target wants (its --admin-token-file). */
  tokenFile?: string;
  /** Rule files to load (alerts are evaluated every second). */
  ruleFiles?: string[];
}

/** Starts Prometheus (scrape and evaluation interval 1 s, job "dfos") and waits until /-/ready answers. */
export async function startPrometheus(options: PrometheusOptions): Promise<Prometheus> {
  await requirePrometheus();
  const dir = await mkdtemp(join(tmpdir(), 'dfos-prometheus-'));
  const port = await freePort();
  const config = {
    global: { scrape_interval: '1s', scrape_timeout: '1s', evaluation_interval: '1s' },
    rule_files: options.ruleFiles ?? [],
    scrape_configs: [
      {
        job_name: 'dfos',
        static_configs: [{ targets: [options.target] }],
        ...(options.tokenFile ? { authorization: { type: 'Bearer', credentials_file: options.tokenFile } } : {}),
      },
    ],
  };
  const configFile = join(dir, 'prometheus.yml');
  // JSON is YAML.
  await writeFile(configFile, JSON.stringify(config, null, 2));
  const child = spawn(PROMETHEUS, [`--config.file=${configFile}`, `--storage.tsdb.path=${join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (output += d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (output += d));
  let exited = false;
  const exit = new Promise<void>((resolve) => child.once('exit', () => ((exited = true), resolve())));
  const url = `http://127.0.0.1:${port}`;
  const get = async (path: string): Promise<Response> => fetch(`${url}${path}`, { signal: AbortSignal.timeout(5000) });
  const prometheus: Prometheus = {
    url,
    output: () => output,
    async api(path) {
      const response = await get(path);
      const body = (await response.json()) as { status: string; data: unknown; error?: string };
      if (body.status !== 'success') throw new Error(`${path}: ${body.error ?? response.status}`);
      return body.data;
    },
    async query(expr) {
      const data = (await prometheus.api(`/api/v1/query?query=${encodeURIComponent(expr)}`)) as { result: QuerySample[] };
      return data.result;
    },
    async stop() {
      if (!exited && child.pid !== undefined) {
        process.kill(child.pid, 'SIGTERM');
        await Promise.race([exit, new Promise((r) => setTimeout(r, 10_000))]);
        if (!exited) process.kill(child.pid, 'SIGKILL');
        await Promise.race([exit, new Promise((r) => setTimeout(r, 5000))]);
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
  const ready = await pollUntil(async () => !exited && (await get('/-/ready')).status === 200, 30_000, 200);
  if (!ready) {
    await prometheus.stop();
    throw new Error(`prometheus did not become ready within 30 s: ${output.slice(-2000)}`);
  }
  return prometheus;
}
