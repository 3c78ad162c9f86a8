/**
 * One node vs two nodes behind HAProxy, on one Ceph RGW bucket, on this machine: N
 * sessions at once (default 200) each upload one file (default 10 MiB, all different),
 * then all download theirs, through the balancer (HAProxy on 127.0.0.1, nodes on
 * 127.0.0.2 and 127.0.0.3, PROXY v2 headers, passive ranges per node). The same balancer
 * path is used for one node and for two, so the difference is the second node. Every
 * download is checked byte-exact (SHA-256, after the clock stops). Peak RSS and CPU are
 * summed over the node processes. Ceph's memstore OSD is given room for both runs' objects
 * (CEPH_MEMSTORE_BYTES); each run deletes its files afterwards.
 *
 * Run: `npm run build && npx tsx bench/cluster.ts [unused] [sessions=200] [eachMiB=10]`
 * (needs haproxy and the Ceph packages, see .ci/run). Everything started here is stopped
 * by PID; every step is time-bounded.
 */
import { randomBytes } from 'node:crypto';
import { DeleteObjectsCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import { startCephRgw, type CephRgw } from '../test/helpers/ceph.js';
import { startCluster, type Cluster } from '../test/helpers/cluster.js';
import { BENCH_PASSWORD, benchArgs, BENCH_USER, MIB, digest, openInBatches, rawSession, retrCollect, sha256, stopsOnSignal, storBuffer, type RawSession } from './benchServer.js';
import { phaseTable, processSetMeter, summaryTable, timed, type RunResult } from './phase.js';

const argv = process.argv;
if (argv[3] === undefined) argv[3] = '200';
if (argv[4] === undefined) argv[4] = '10';
const { sessions, eachMiB } = benchArgs([] as const, 'unused');
const PHASE_MS = 10 * 60_000;
const BUCKET = 'dfos-bench-cluster';

process.env.CEPH_MEMSTORE_BYTES ??= String(Math.max(2, Math.ceil((sessions * eachMiB * 2.5) / 1024)) * 1024 ** 3);
const ceph: CephRgw = await startCephRgw();
const { stopAll, tracked } = stopsOnSignal();
tracked(() => ceph.stop());

async function emptyPrefix(prefix: string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const page = await ceph.client.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: `${prefix}/` }));
    const keys = (page.Contents ?? []).map((o) => ({ Key: o.Key! }));
    if (keys.length === 0) return;
    await ceph.client.send(new DeleteObjectsCommand({ Bucket: BUCKET, Delete: { Objects: keys } }));
  }
}

async function measure(nodes: number): Promise<RunResult> {
  const label = `${nodes} node${nodes > 1 ? 's' : ''} behind HAProxy`;
  const result: RunResult = { label, phases: [] };
  const prefix = `bench-${nodes}-${randomBytes(4).toString('hex')}`;
  let stopCluster: (() => Promise<void>) | undefined;
  const open: RawSession[] = [];
  try {
    const running: Cluster = await startCluster({
      nodes,
      users: [{ name: BENCH_USER, password: BENCH_PASSWORD }],
      pasvPorts: Math.ceil((sessions / nodes) * 1.5) + 20,
      args: ['--storage', `s3://${BUCKET}/${prefix}`, '--s3-endpoint', ceph.endpoint, '--max-sessions', '0', '--max-sessions-per-ip', '0'],
      env: { AWS_ACCESS_KEY_ID: ceph.accessKeyId, AWS_SECRET_ACCESS_KEY: ceph.secretAccessKey, AWS_EC2_METADATA_DISABLED: 'true' },
    });
    stopCluster = tracked(() => running.stop());
    const meter = processSetMeter(prefix);
    const payloads = Array.from({ length: sessions }, () => randomBytes(eachMiB * MIB));
    const shas = payloads.map(sha256);
    await openInBatches(open, sessions, () => rawSession(running.balancer.port), `${sessions} logins`);
    // Untimed warm-up: a fresh RGW creates its pools on the first (multipart) writes.
    await storBuffer(open[0]!, 'warmup.bin', randomBytes(20 * MIB));
    result.phases.push(
      await timed(meter, `${sessions} parallel upload`, sessions * eachMiB, PHASE_MS, async () => {
        await Promise.all(open.map((s, i) => storBuffer(s, `par-${i}.bin`, payloads[i]!)));
        return () => true; // checked by the downloads
      }),
    );
    result.phases.push(
      await timed(meter, `${sessions} parallel download`, sessions * eachMiB, PHASE_MS, async () => {
        const got = await Promise.all(open.map((s, i) => retrCollect(s, `par-${i}.bin`)));
        return () => got.every((chunks, i) => digest(chunks).sha256 === shas[i]);
      }),
    );
  } catch (err) {
    result.error = (err as Error).message;
  } finally {
    for (const s of open) s.close();
    await stopCluster?.();
    await emptyPrefix(prefix).catch(() => undefined);
  }
  console.error(`${label}: done`);
  return result;
}

try {
  await ceph.createBucket(BUCKET);
  const results = [await measure(1), await measure(2)];
  for (const r of results) {
    console.log(`\n${r.label}\n${phaseTable(r)}`);
    if (r.error) console.log(`error: ${r.error}`);
  }
  console.log(`\n${summaryTable(`Summary: ${sessions} sessions x ${eachMiB} MiB through HAProxy on Ceph RGW (loopback, 2 cores shared by everything)`, [`${sessions} parallel upload`, `${sessions} parallel download`], results)}`);
} finally {
  await stopAll();
}
