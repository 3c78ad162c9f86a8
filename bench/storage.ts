/**
 * Upload/download throughput of a DFOS server process on each storage backend: local disk
 * (a temporary directory) and S3 (a single-node Ceph RGW booted for the run with
 * test/helpers/ceph.ts, one bucket). For each, over loopback with real FTP clients:
 *   1. one large file (default 256 MiB) uploaded, then downloaded, with basic-ftp;
 *   2. N sessions at once (default 50) each uploading one file (default 8 MiB, all
 *      different), then all downloading theirs, on raw FTP sessions.
 * An untimed 1 MiB upload and download comes first (a fresh RGW creates its data pool on
 * the first write). Every download is checked byte-exact by SHA-256 (hashed after the clock stops, so the
 * client's hashing does not take CPU from the server). The server's peak resident memory
 * (VmRSS sampled every 50 ms, plus the kernel's VmHWM after resetting it) and CPU time
 * are reported per phase. Prints one table per backend and a side-by-side summary.
 *
 * Run: `npm run build && npx tsx bench/storage.ts [singleMiB=256] [sessions=50] [eachMiB=8] [local|s3]`
 * (the last argument runs one backend only). The S3 run needs the Ceph packages (see
 * .ci/run); its OSD keeps objects in memory with a 2 GiB cap, so singleMiB + sessions x
 * eachMiB must stay well below that. Every process started here is stopped by PID (Ceph
 * through its stop()), temporary directories are removed, every step is time-bounded.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { Client } from 'basic-ftp';
import { startCephRgw } from '../test/helpers/ceph.js';
import {
  BENCH_PASSWORD,
  benchArgs,
  BENCH_USER,
  MIB,
  collector,
  digest,
  openInBatches,
  rawSession,
  retrCollect,
  rssKiB,
  sha256,
  startBenchServer,
  storBuffer,
  withTimeout,
  writeRandomFile,
  type BenchServer,
  type RawSession,
  stopsOnSignal,
} from './benchServer.js';
import { phaseTable, singleStreamPhases, pidMeter, summaryTable, timed, type RunResult } from './phase.js';

const { singleMiB, sessions, eachMiB, only } = benchArgs(['local', 's3'] as const, 'backend');
/** Bound on each phase (one direction of one measurement). */
const PHASE_MS = 10 * 60_000;
const BUCKET = 'dfos-bench';

interface BackendResult extends RunResult {
  idleRssMiB: number;
}

/** The four phases against one running server. */
async function measure(backend: string, server: BenchServer, bigFile: string, bigSha: string, result: BackendResult): Promise<void> {
  result.idleRssMiB = Math.round((await rssKiB(server.pid)) / 1024);
  const meter = pidMeter(server.pid);

  const client = new Client(60_000);
  try {
    await withTimeout(client.access({ host: '127.0.0.1', port: server.port, user: BENCH_USER, password: BENCH_PASSWORD }), 60_000, 'login');
    // Untimed warm-up: the first write creates the user's home, and on a fresh RGW the first
    // PUT creates its data pool and the first multipart upload its multipart-metadata pool
    // (~2 s each, once per cluster): 20 MiB is above one 8 MiB part, so both happen here.
    await withTimeout(client.uploadFrom(Readable.from([randomBytes(20 * MIB)]), 'warmup.bin'), 120_000, 'warm-up upload');
    await withTimeout(client.downloadTo(collector().sink, 'warmup.bin'), 60_000, 'warm-up download');
    result.phases.push(...(await singleStreamPhases(client, meter, bigFile, bigSha, singleMiB, PHASE_MS)));
  } finally {
    client.close();
  }

  const payloads = Array.from({ length: sessions }, () => randomBytes(eachMiB * MIB));
  const shas = payloads.map(sha256);
  const open: RawSession[] = [];
  try {
    // Logins are not part of the timed phases.
    await openInBatches(open, sessions, () => rawSession(server.port), `${sessions} logins`);
    result.phases.push(
      await timed(meter, `${sessions} parallel upload`, sessions * eachMiB, PHASE_MS, async () => {
        await Promise.all(open.map((session, i) => storBuffer(session, `par-${i}.bin`, payloads[i]!)));
        return () => true; // checked by the downloads below
      }),
    );
    result.phases.push(
      await timed(meter, `${sessions} parallel download`, sessions * eachMiB, PHASE_MS, async () => {
        const got = await Promise.all(open.map((session, i) => retrCollect(session, `par-${i}.bin`)));
        return () => got.every((chunks, i) => {
          const d = digest(chunks);
          return d.bytes === eachMiB * MIB && d.sha256 === shas[i];
        });
      }),
    );
  } finally {
    for (const session of open) session.close();
  }
  console.error(`${backend}: done`);
}

const backendTable = (result: BackendResult): string => phaseTable(result);

const summary = (results: BackendResult[]): string =>
  summaryTable(
    `Summary: single stream ${singleMiB} MiB; ${sessions} sessions x ${eachMiB} MiB (loopback)`,
    ['single upload', 'single download', `${sessions} parallel upload`, `${sessions} parallel download`],
    results,
  );

const work = await mkdtemp(join(tmpdir(), 'dfos-storage-bench-'));
const { stopAll, tracked } = stopsOnSignal(() => rm(work, { recursive: true, force: true }));

/** Starts a server, measures, stops it; the result (with `error` set if something failed). */
async function run(backend: string, args: string[], env: Record<string, string>, bigFile: string, bigSha: string): Promise<BackendResult> {
  const result: BackendResult = { label: backend, idleRssMiB: 0, phases: [] };
  let stop: (() => Promise<void>) | undefined;
  try {
    const server = await startBenchServer({ args, env });
    stop = tracked(server.stop);
    await measure(backend, server, bigFile, bigSha, result);
  } catch (err) {
    result.error = (err as Error).message;
  } finally {
    await stop?.();
  }
  console.log(backendTable(result));
  return result;
}

const results: BackendResult[] = [];
try {
  const bigFile = join(work, 'big.bin');
  const bigSha = await writeRandomFile(bigFile, singleMiB);

  if (only !== 's3') results.push(await run('local disk', [], {}, bigFile, bigSha));

  if (only !== 'local') {
    console.error('booting Ceph RGW (15-40 s)...');
    let ceph: Awaited<ReturnType<typeof startCephRgw>> | undefined;
    try {
      ceph = await startCephRgw();
      tracked(ceph.stop);
      await withTimeout(ceph.createBucket(BUCKET), 60_000, 'create bucket');
    } catch (err) {
      results.push({ label: 'S3 (Ceph RGW)', idleRssMiB: 0, phases: [], error: (err as Error).message });
      console.log(backendTable(results.at(-1)!));
    }
    if (ceph) {
      const env = { AWS_ACCESS_KEY_ID: ceph.accessKeyId, AWS_SECRET_ACCESS_KEY: ceph.secretAccessKey, AWS_EC2_METADATA_DISABLED: 'true' };
      const args = ['--storage', `s3://${BUCKET}/bench`, '--s3-endpoint', ceph.endpoint];
      results.push(await run('S3 (Ceph RGW)', args, env, bigFile, bigSha));
    }
  }
} finally {
  await stopAll();
}

console.log(summary(results));
console.log('\n(2-core machine shared with other work, client and server on the same cores: numbers are noisy.)');
if (results.some((r) => r.error !== undefined)) process.exitCode = 1;
