import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { haproxyConfig, type BalancedNode } from '../../deploy/haproxyConfig.js';
import { makeServerDirs, spawnServer, type ServerDirs, type ServerProcess } from './serverProcess.js';
import type { TestUser } from './testServer.js';
import { freePortBlock } from './freePorts.js';

/**
 * Several DFOS nodes behind a real HAProxy (Debian's `haproxy`, which `.ci/run` installs),
 * all on loopback: the balancer on 127.0.0.1, node i on 127.0.0.(i+2), each node with its
 * own passive range that the balancer exposes on 127.0.0.1 and forwards to that node only.
 * Nodes are real `dfos serve` processes, so they can be killed, drained and restarted.
 */

/** Where the balancer listens. */
export const BALANCER_HOST = '127.0.0.1';

/** One node of the cluster and how to (re)start it on the same address, ports and state. */
export interface ClusterNode extends BalancedNode {
  proc: ServerProcess;
  dirs: ServerDirs;
  /** Starts the node again (after it stopped) with the same flags and state. */
  restart(): Promise<ServerProcess>;
}

/** A running HAProxy. */
export interface Balancer {
  port: number;
  child: ChildProcess;
  output(): string;
  stop(): Promise<void>;
}

export interface Cluster {
  balancer: Balancer;
  nodes: ClusterNode[];
  /** Stops the balancer and every node (SIGKILL for what is still running) and removes their folders. */
  stop(): Promise<void>;
}

export interface ClusterOptions {
  nodes: number;
  /** Flags every node gets (storage, S3 endpoint, Redis…). */
  args: string[];
  env?: Record<string, string | undefined>;
  users?: TestUser[];
  /** Passive ports per node (default 20). */
  pasvPorts?: number;
  /** HAProxy sends PROXY v2 headers and the nodes trust it (default true). */
  proxyProtocol?: boolean;
}

/** Starts `nodes` DFOS nodes and HAProxy in front of them; waits until the balancer sees every node ready. */
export async function startCluster(options: ClusterOptions): Promise<Cluster> {
  const proxyProtocol = options.proxyProtocol ?? true;
  const nodes: ClusterNode[] = [];
  const ranges: Array<[number, number]> = [];
  const started: ClusterNode[] = [];
  try {
    for (let i = 0; i < options.nodes; i++) {
      const host = `127.0.0.${i + 2}`;
      const [pasvMin, pasvMax] = await freePortBlock(options.pasvPorts ?? 20, [host, BALANCER_HOST], ranges);
      ranges.push([pasvMin, pasvMax]);
      const [port] = await freePortBlock(1, [host], ranges);
      const [adminPort] = await freePortBlock(1, [host], ranges);
      const dirs = await makeServerDirs(options.users);
      const args = [
        ...options.args,
        '--port', String(port),
        '--pasv-min', String(pasvMin),
        '--pasv-max', String(pasvMax),
        '--pasv-address', BALANCER_HOST,
        '--admin-listen', `${host}:${adminPort}`,
        '--state-dir', join(dirs.dir, 'state'),
        ...(proxyProtocol ? ['--trusted-proxies', BALANCER_HOST] : []),
      ];
      const spawnNode = () => spawnServer({ dirs, host, args, ...(options.env ? { env: options.env } : {}) });
      const node: ClusterNode = {
        name: `node${i + 1}`,
        host,
        port,
        adminPort,
        pasvMin,
        pasvMax,
        dirs,
        proc: await spawnNode(),
        async restart() {
          node.proc = await spawnNode();
          return node.proc;
        },
      };
      nodes.push(node);
      started.push(node);
    }
    const [balancerPort] = await freePortBlock(1, [BALANCER_HOST], ranges);
    const balancer = await startBalancer(haproxyConfig({ bindHost: BALANCER_HOST, port: balancerPort, nodes, proxyProtocol, checkIntervalMs: 300 }), balancerPort);
    const cluster: Cluster = {
      balancer,
      nodes,
      async stop() {
        await balancer.stop();
        for (const n of nodes) {
          await n.proc.cleanup();
          await rm(n.dirs.dir, { recursive: true, force: true });
        }
      },
    };
    return cluster;
  } catch (err) {
    for (const n of started) {
      await n.proc.cleanup();
      await rm(n.dirs.dir, { recursive: true, force: true });
    }
    throw err;
  }
}

/** Runs HAProxy in the foreground (`-db`) on `config`; resolves once its control port accepts. */
export async function startBalancer(config: string, port: number): Promise<Balancer> {
  const dir = await mkdtemp(join(tmpdir(), 'dfos-haproxy-'));
  const file = join(dir, 'haproxy.cfg');
  await writeFile(file, config);
  const child = spawn('haproxy', ['-db', '-f', file], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (out += d));
  let exited = false;
  const exit = new Promise<void>((resolve) => child.once('exit', () => ((exited = true), resolve())));
  child.once('error', () => undefined);
  const balancer: Balancer = {
    port,
    child,
    output: () => out,
    async stop() {
      if (!exited) child.kill('SIGTERM');
      await Promise.race([exit, new Promise((r) => setTimeout(r, 5000))]);
      if (!exited) child.kill('SIGKILL');
      await rm(dir, { recursive: true, force: true });
    },
  };
  const deadline = Date.now() + 10_000;
  while (!(await accepts(BALANCER_HOST, port))) {
    if (exited || Date.now() > deadline) {
      await balancer.stop();
      throw new Error(`haproxy did not start (is the haproxy package installed? .ci/run installs it): ${out.slice(-2000)}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return balancer;
}

/** Whether something accepts TCP connections on host:port. */
function accepts(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = createServer();
    probe.once('error', () => resolve(true)); // in use: someone listens there
    probe.listen({ port, host, exclusive: true }, () => probe.close(() => resolve(false)));
  });
}
