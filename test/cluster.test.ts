import test from 'ava';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { GetObjectCommand, ListMultipartUploadsCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import { Client } from 'basic-ftp';
import { startCephRgw, type CephRgw } from './helpers/ceph.js';
import { startCluster, type Cluster } from './helpers/cluster.js';
import { startRedis, type RedisServer } from './helpers/redis.js';
import { auditLog, recordsOnceThere } from './helpers/logFiles.js';
import { pollUntil, REPO_ROOT } from './helpers/serverProcess.js';

// Several nodes (issue 13): real DFOS processes on 127.0.0.2, 127.0.0.3 behind a real
// HAProxy on 127.0.0.1 (PROXY v2 headers), on one Ceph RGW bucket, sharing state through
// Redis. Ceph and Redis start once for the file; each test gets its own nodes, balancer,
// bucket prefix and Redis key prefix.

const run = promisify(execFile);
const BUCKET = 'dfos-cluster';
let ceph: CephRgw;
let redis: RedisServer;

test.before(async () => {
  [ceph, redis] = await Promise.all([startCephRgw(), startRedis()]);
  await ceph.createBucket(BUCKET);
});

test.after.always(async () => {
  await Promise.all([ceph?.stop(), redis?.stop()]);
});

function s3Env(): Record<string, string> {
  return { AWS_ACCESS_KEY_ID: ceph.accessKeyId, AWS_SECRET_ACCESS_KEY: ceph.secretAccessKey, AWS_EC2_METADATA_DISABLED: 'true' };
}

/** Two nodes on a fresh prefix of the bucket, behind HAProxy. */
async function cluster(t: { teardown(fn: () => Promise<void>): void }, extraArgs: string[] = []): Promise<{ cluster: Cluster; prefix: string }> {
  const prefix = `c-${randomBytes(5).toString('hex')}`;
  const c = await startCluster({
    nodes: 2,
    args: ['--storage', `s3://${BUCKET}/${prefix}`, '--s3-endpoint', ceph.endpoint, '--shutdown-grace', '20', '--redis', redis.url, '--redis-prefix', `${prefix}:`, ...extraArgs],
    env: s3Env(),
  });
  t.teardown(() => c.stop());
  return { cluster: c, prefix };
}

/** A basic-ftp session through the balancer. */
async function session(c: Cluster, user = 'alice', password = 'alice-pw'): Promise<Client> {
  const client = new Client(20_000);
  await client.access({ host: '127.0.0.1', port: c.balancer.port, user, password });
  return client;
}

async function download(client: Client, path: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  await client.downloadTo(new Writable({ write: (chunk: Buffer, _e, cb) => (chunks.push(chunk), cb()) }), path);
  return Buffer.concat(chunks);
}

/** The stored object, or undefined. */
async function stored(prefix: string, user: string, path: string): Promise<Buffer | undefined> {
  try {
    const object = await ceph.client.send(new GetObjectCommand({ Bucket: BUCKET, Key: `${prefix}/${user}/${path}` }));
    return Buffer.from(await object.Body!.transformToByteArray());
  } catch (err) {
    if ((err as { name?: string }).name === 'NoSuchKey') return undefined;
    throw err;
  }
}

async function multipartUploads(prefix: string): Promise<string[]> {
  const answer = await ceph.client.send(new ListMultipartUploadsCommand({ Bucket: BUCKET, Prefix: `${prefix}/` }));
  return (answer.Uploads ?? []).map((u) => u.Key ?? '');
}

/** Which nodes logged a successful login of `user` (from their audit logs). */
async function nodesThatServed(c: Cluster, action: string): Promise<string[]> {
  const served: string[] = [];
  for (const n of c.nodes) {
    if ((await auditLog(n.dirs.logDir)).some((r) => r.action === action && r.result === 'ok')) served.push(n.name);
  }
  return served;
}

test('deploy/haproxy.cfg is a valid HAProxy configuration', async (t) => {
  const { stdout, stderr } = await run('haproxy', ['-c', '-f', join(REPO_ROOT, 'deploy', 'haproxy.cfg')], { timeout: 30_000 });
  t.regex(stdout + stderr, /Configuration file is valid/);
});

test.serial('two nodes on one bucket: what one session uploads, sessions on the other node download and preview; lftp mirror up and back is identical', async (t) => {
  t.timeout(180_000);
  const { cluster: c } = await cluster(t);
  const content = randomBytes(300_000);
  const text = Buffer.from('first line\nsecond line\n'.repeat(100));
  const up = await session(c);
  await up.uploadFrom(Readable.from([content]), 'shared.bin');
  await up.uploadFrom(Readable.from([text]), 'notes.txt');
  up.close();
  // Round-robin: successive sessions alternate between the nodes.
  for (let i = 0; i < 4; i++) {
    const down = await session(c);
    t.deepEqual(await download(down, 'shared.bin'), content, `session ${i}`);
    const view = await down.send('SITE VIEW notes.txt');
    t.is(view.code, 200);
    t.regex(view.message, /first line/);
    down.close();
  }
  t.deepEqual((await nodesThatServed(c, 'download')).sort(), ['node1', 'node2'], 'both nodes served downloads');
  t.deepEqual((await nodesThatServed(c, 'upload')).length, 1, 'one node took the uploads');

  // lftp mirror through the balancer (passive mode through HAProxy's per-node frontends).
  const local = await mkdtemp(join(tmpdir(), 'dfos-mirror-'));
  t.teardown(() => rm(local, { recursive: true, force: true }));
  const files = new Map<string, Buffer>();
  await mkdir(join(local, 'up', 'sub', 'deeper'), { recursive: true });
  for (const [name, size] of [['a.bin', 1], ['b.bin', 70_000], ['sub/c.bin', 1_500_000], ['sub/deeper/d.txt', 12]] as const) {
    const data = randomBytes(size);
    files.set(name, data);
    await writeFile(join(local, 'up', name), data);
  }
  const lftp = (commands: string) =>
    run('lftp', ['-c', `set cmd:fail-exit yes; set net:max-retries 2; set net:timeout 20; set ftp:ssl-allow no; open -u alice,alice-pw ftp://127.0.0.1:${c.balancer.port}; ${commands}`], { timeout: 120_000 });
  await lftp(`mirror -R ${join(local, 'up')} mirrored`);
  await lftp(`mirror mirrored ${join(local, 'back')}`);
  for (const [name, data] of files) t.deepEqual(await readFile(join(local, 'back', name)), data, name);
  t.deepEqual((await readdir(join(local, 'back'))).sort(), ['a.bin', 'b.bin', 'sub']);
});

/** Content for upload `i` of a test (so each stored object can be checked byte for byte). */
function body(tag: string, i: number, size: number): Buffer {
  const seed = Buffer.from(`${tag}-${i}-`);
  const out = Buffer.alloc(size);
  for (let o = 0; o < size; o += seed.length) seed.copy(out, o);
  return out;
}

/** A Readable that yields `data` in 64 KiB chunks, `delayMs` apart (a slow client). */
function slowly(data: Buffer, delayMs: number): Readable {
  return Readable.from(
    (async function* () {
      for (let o = 0; o < data.length; o += 64 * 1024) {
        yield data.subarray(o, o + 64 * 1024);
        await sleep(delayMs);
      }
    })(),
  );
}

test.serial('kill -9 of a node during 10 uploads: each upload is complete or absent, nothing is left half-uploaded, new sessions go to the other node', async (t) => {
  t.timeout(180_000);
  const { cluster: c, prefix } = await cluster(t);
  const size = 3 * 1024 * 1024;
  // Every client logs in before any upload starts: the kill must cut uploads, not a login
  // still under way on a slow machine (which failed the test, not an upload).
  const clients = await Promise.all(Array.from({ length: 10 }, () => session(c)));
  const uploads = clients.map(async (client, i) => {
    try {
      await client.uploadFrom(slowly(body('kill', i, size), 40), `k${i}.bin`);
      return 'ok' as const;
    } catch {
      return 'failed' as const;
    } finally {
      client.close();
    }
  });
  // Once every upload runs (each takes about 2 s), kill node1 without warning.
  await sleep(800);
  c.nodes[0]!.proc.child.kill('SIGKILL');
  const results = await Promise.all(uploads);
  t.true(results.includes('failed'), 'the uploads on the killed node failed');
  t.true(results.includes('ok'), 'the uploads on the other node completed');
  for (let i = 0; i < 10; i++) {
    const object = await stored(prefix, 'alice', `k${i}.bin`);
    if (results[i] === 'ok') t.deepEqual(object, body('kill', i, size), `k${i}.bin complete`);
    else t.true(object === undefined || object.equals(body('kill', i, size)), `k${i}.bin absent or complete`);
  }
  // New sessions go to the surviving node (once the balancer's one-second check has seen
  // node1 gone, a connection it still sends there is retried on node2).
  const served = await pollUntil(async () => {
    const client = await session(c).catch(() => undefined);
    client?.close();
    return client !== undefined || undefined;
  }, 15_000);
  t.true(served, 'a new session is served by the surviving node');
  // Until the balancer's check has marked node1 down, a connection it still sends there may
  // be closed at once (its retries used up): each new session gets the same bounded wait.
  for (let i = 0; i < 3; i++) {
    const client = await pollUntil(() => session(c), 15_000);
    if (!client) return t.fail(`new session ${i} not served within 15 s`);
    await client.uploadFrom(Readable.from([Buffer.from(`after ${i}`)]), `after${i}.txt`);
    client.close();
  }
  // The killed node, started again on its state, aborts the multipart uploads it left.
  await c.nodes[0]!.restart();
  t.deepEqual(await pollUntil(async () => ((await multipartUploads(prefix)).length === 0 ? [] : undefined), 20_000), [], 'no multipart upload left');
});

test.serial('rolling restart (SIGTERM node1, start it, then node2) during a steady stream of uploads: every 226 is complete in the bucket, every other upload absent', async (t) => {
  t.timeout(240_000);
  const { cluster: c, prefix } = await cluster(t);
  const outcomes = new Map<string, { ok: boolean; data: Buffer }>();
  let running = true;
  const writers = Array.from({ length: 4 }, async (_, w) => {
    for (let i = 0; running && i < 500; i++) {
      const name = `r${w}-${i}.bin`;
      const data = body('roll', w * 1000 + i, 256 * 1024 + ((w * 7919 + i * 104729) % 65536));
      let ok = false;
      let client: Client | undefined;
      try {
        client = await session(c);
        await client.uploadFrom(slowly(data, 20), name);
        ok = true;
      } catch {
        ok = false;
      } finally {
        client?.close();
      }
      outcomes.set(name, { ok, data });
    }
  });
  for (const node of c.nodes) {
    await sleep(1500);
    node.proc.child.kill('SIGTERM');
    t.deepEqual(await node.proc.waitExit(60_000), { code: 0, signal: null }, `${node.name} drained and exited 0`);
    await node.restart();
    await sleep(1000); // the balancer's check sees it ready again
  }
  await sleep(1500);
  running = false;
  await Promise.all(writers);
  const ok = [...outcomes.values()].filter((o) => o.ok).length;
  t.true(ok > 20, `${ok} uploads completed during the restarts`);
  for (const [name, outcome] of outcomes) {
    const object = await stored(prefix, 'alice', name);
    if (outcome.ok) t.deepEqual(object, outcome.data, `${name}: 226, so complete`);
    else t.is(object, undefined, `${name}: failed, so absent`);
  }
  const keys = await ceph.client.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: `${prefix}/alice/` }));
  const files = (keys.Contents ?? []).filter((k) => !(k.Key ?? '').endsWith('/')); // not the home's marker
  t.is(files.length, ok, 'nothing else is stored');
  t.deepEqual(await multipartUploads(prefix), []);
});

test.serial('through the balancer the nodes see the client\'s own address: audit records, and a ban earned on one node refuses that address on both while others are served', async (t) => {
  t.timeout(120_000);
  const { cluster: c } = await cluster(t, ['--ban-threshold', '3', '--ban-time', '60']);
  const url = `ftp://127.0.0.1:${c.balancer.port}/`;
  // curl binds its connections (control and data) to 127.0.0.9; HAProxy itself connects from 127.0.0.1.
  const curl = (args: string[]) => run('curl', ['-sS', '--interface', '127.0.0.9', '--max-time', '20', ...args], { timeout: 30_000 }).then(
    () => 0,
    (err: { code?: number }) => err.code ?? -1,
  );
  const local = await mkdtemp(join(tmpdir(), 'dfos-curl-'));
  t.teardown(() => rm(local, { recursive: true, force: true }));
  await writeFile(join(local, 'mine.txt'), 'from 127.0.0.9\n');
  t.is(await curl(['-T', join(local, 'mine.txt'), '--user', 'alice:alice-pw', url]), 0);
  const allAudits = async () => (await Promise.all(c.nodes.map((n) => auditLog(n.dirs.logDir)))).flat();
  const uploads = await recordsOnceThere(allAudits, (r) => r.action === 'upload');
  t.deepEqual(uploads.map((r) => [r.client, r.result]), [['127.0.0.9', 'ok']]);

  // Three wrong passwords (round-robin: they land on both nodes) ban 127.0.0.9 everywhere.
  for (let i = 0; i < 3; i++) t.not(await curl(['--user', 'alice:wrong', url]), 0);
  const banned = await pollUntil(async () => {
    const refused = await Promise.all([0, 1].map(() => curl(['--user', 'alice:alice-pw', url])));
    return refused.every((code) => code !== 0) ? refused : undefined;
  }, 10_000);
  t.truthy(banned, 'two sessions in a row (one per node) are refused for 127.0.0.9');
  // Another address is still served by both nodes.
  for (let i = 0; i < 2; i++) {
    const client = await session(c);
    t.deepEqual(await download(client, 'mine.txt'), Buffer.from('from 127.0.0.9\n'));
    client.close();
  }
  const records = (await Promise.all(c.nodes.map((n) => auditLog(n.dirs.logDir)))).flat();
  t.true(records.some((r) => r.action === 'ban' && r.client === '127.0.0.9'), 'the ban names the client, not the balancer');
  t.false(records.some((r) => r.action === 'ban' && r.client === '127.0.0.1'));
});
