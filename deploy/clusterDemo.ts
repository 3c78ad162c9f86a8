/**
 * `npm run cluster:demo`: several DFOS nodes behind HAProxy on one machine, to try the
 * multi-node setup without writing any configuration. It starts, all on loopback:
 *
 * - a single-node Ceph cluster with the S3 API (deploy/ceph-rgw.sh) and a bucket;
 * - Redis for the shared state (bans, session counts, quota usage);
 * - N DFOS nodes (default 2) on 127.0.0.2, 127.0.0.3, … with their own passive ranges;
 * - HAProxy on 127.0.0.1 (control port 2100 unless --port), sending PROXY v2 headers.
 *
 * Its state lives under ./.cluster-demo (node logs are kept between runs; Ceph keeps
 * objects in memory, so the bucket starts empty each time) and everything stops on
 * Ctrl-C, each process by its PID.
 *
 *     npm run cluster:demo -- [--nodes N] [--port P]
 */
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { mkdir, writeFile, access } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { haproxyConfig, type BalancedNode } from './haproxyConfig.js';

const run = promisify(execFile);
const ROOT = resolve(import.meta.dirname, '..');
const DIR = join(ROOT, '.cluster-demo');
const BUCKET = 'dfos-demo';

function flag(name: string, fallback: number): number {
  const i = process.argv.indexOf(name);
  if (i === -1) return fallback;
  const value = Number(process.argv[i + 1]);
  if (!Number.isInteger(value) || value < 1 || value > 65535) {
    console.error(`cluster:demo: ${name} needs a whole number (got ${JSON.stringify(process.argv[i + 1])})`);
    process.exit(2);
  }
  return value;
}

const nodesWanted = flag('--nodes', 2);
const balancerPort = flag('--port', 2100);
const children: ChildProcess[] = [];

async function freePort(host: string): Promise<number> {
  return new Promise((done, fail) => {
    const server = createServer();
    server.once('error', fail);
    server.listen(0, host, () => {
      const address = server.address();
      server.close(() => done(typeof address === 'object' && address ? address.port : 0));
    });
  });
}

function start(name: string, command: string, args: string[], env: NodeJS.ProcessEnv = process.env): ChildProcess {
  const child = spawn(command, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout!.on('data', () => undefined);
  child.stderr!.on('data', (d: Buffer) => process.stderr.write(`[${name}] ${d.toString()}`));
  child.once('exit', (code, signal) => {
    if (!stopping) console.error(`[${name}] exited (${signal ?? code})`);
  });
  children.push(child);
  return child;
}

async function waitForLine(child: ChildProcess, pattern: RegExp, timeoutMs: number, what: string): Promise<string> {
  return new Promise((done, fail) => {
    let out = '';
    const timer = setTimeout(() => fail(new Error(`${what} did not start within ${timeoutMs / 1000} s`)), timeoutMs);
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = pattern.exec(out);
      if (m) {
        clearTimeout(timer);
        done(m[0]);
      }
    });
    child.once('exit', () => fail(new Error(`${what} exited: ${out.slice(-500)}`)));
  });
}

let stopping = false;
async function stopAll(): Promise<void> {
  stopping = true;
  for (const child of children.reverse()) if (child.exitCode === null) child.kill('SIGTERM');
  await run('bash', [join(ROOT, 'deploy', 'ceph-rgw.sh'), 'stop', join(DIR, 'ceph')]).catch(() => undefined);
}

async function main(): Promise<void> {
  for (const program of ['haproxy', 'redis-server', 'radosgw']) {
    await run('sh', ['-c', `command -v ${program}`]).catch(() => {
      throw new Error(`${program} is missing: apt-get install haproxy redis-server ceph-mon ceph-osd ceph-mgr radosgw ceph-common uuid-runtime`);
    });
  }
  await access(join(ROOT, 'dist', 'dfos.cjs')).catch(() => {
    throw new Error('dist/ is missing: run npm install first');
  });
  await mkdir(DIR, { recursive: true });

  console.log('Booting Ceph RGW (about 30 s)…');
  const { stdout } = await run('bash', [join(ROOT, 'deploy', 'ceph-rgw.sh'), 'start', join(DIR, 'ceph'), String(await freePort('127.0.0.1')), String(await freePort('127.0.0.1'))], { timeout: 180_000 });
  const s3 = new Map([...stdout.matchAll(/(\w+)=(\S+)/g)].map((m) => [m[1]!, m[2]!]));
  const endpoint = s3.get('DFOS_S3_ENDPOINT')!;
  const credentials = { accessKeyId: s3.get('AWS_ACCESS_KEY_ID')!, secretAccessKey: s3.get('AWS_SECRET_ACCESS_KEY')! };
  const client = new S3Client({ region: 'us-east-1', endpoint, forcePathStyle: true, credentials });
  await client.send(new CreateBucketCommand({ Bucket: BUCKET })).catch((err: { name?: string }) => {
    if (err.name !== 'BucketAlreadyOwnedByYou' && err.name !== 'BucketAlreadyExists') throw err;
  });
  client.destroy();

  const redisPort = await freePort('127.0.0.1');
  const redis = start('redis', 'redis-server', ['--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no']);
  await waitForLine(redis, /Ready to accept connections/, 10_000, 'redis-server');

  const env = { ...process.env, AWS_ACCESS_KEY_ID: credentials.accessKeyId, AWS_SECRET_ACCESS_KEY: credentials.secretAccessKey, AWS_EC2_METADATA_DISABLED: 'true' };
  const nodes: BalancedNode[] = [];
  for (let i = 0; i < nodesWanted; i++) {
    const host = `127.0.0.${i + 2}`;
    const node: BalancedNode = { name: `node${i + 1}`, host, port: 2121, adminPort: 9121, pasvMin: 51000 + i * 100, pasvMax: 51000 + i * 100 + 99 };
    const state = join(DIR, node.name);
    await mkdir(state, { recursive: true });
    const child = start(node.name, process.execPath, [
      join(ROOT, 'dist', 'dfos.cjs'), 'serve',
      '--host', host, '--port', String(node.port),
      '--pasv-min', String(node.pasvMin), '--pasv-max', String(node.pasvMax), '--pasv-address', '127.0.0.1',
      '--trusted-proxies', '127.0.0.1',
      '--admin-listen', `${host}:${node.adminPort}`,
      '--storage', `s3://${BUCKET}/dfos`, '--s3-endpoint', endpoint,
      '--redis', `redis://127.0.0.1:${redisPort}`,
      '--users', join(ROOT, 'users.json'),
      '--state-dir', state, '--log-dir', join(state, 'logs'),
    ], env);
    await waitForLine(child, /DFOS listening/, 20_000, node.name);
    nodes.push(node);
  }

  const config = haproxyConfig({ bindHost: '127.0.0.1', port: balancerPort, nodes });
  await writeFile(join(DIR, 'haproxy.cfg'), config);
  start('haproxy', 'haproxy', ['-db', '-f', join(DIR, 'haproxy.cfg')]);

  console.log(`
DFOS cluster running: ${nodes.length} nodes behind HAProxy, on Ceph RGW (${endpoint}) and Redis (127.0.0.1:${redisPort}).

  curl -T README.md ftp://demo:demo@127.0.0.1:${balancerPort}/       # lands on one node
  curl ftp://demo:demo@127.0.0.1:${balancerPort}/README.md | head -3  # maybe served by another
${nodes.map((n) => `  ${n.name}: ftp ${n.host}:${n.port}, status page http://${n.host}:${n.adminPort}/, logs ${join(DIR, n.name, 'logs')}`).join('\n')}

Ctrl-C stops everything (node logs stay in ${DIR}; the bucket lives in Ceph's memory and goes with it).`);
}

process.once('SIGINT', () => void stopAll().then(() => process.exit(0)));
process.once('SIGTERM', () => void stopAll().then(() => process.exit(0)));
main().catch(async (err: Error) => {
  console.error(`cluster:demo: ${err.message}`);
  await stopAll();
  process.exit(1);
});
