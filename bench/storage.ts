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
import { Readable, Writable } from 'node:stream';
import { Client } from 'basic-ftp';
import { startCephRgw } from '../test/helpers/ceph.js';
import {
  BENCH_PASSWORD,
  BENCH_USER,
  MIB,
  cpuSeconds,
  digest,
  rawSession,
  retrCollect,
  rssKiB,
  sampleRss,
  sha256,
  startBenchServer,
  storBuffer,
  withTimeout,
  writeRandomFile,
  type BenchServer,
  type RawSession,
} from './benchServer.js';

const singleMiB = Number(process.argv[2] ?? 256);
const sessions = Number(process.argv[3] ?? 50);
const eachMiB = Number(process.argv[4] ?? 8);
const only = process.argv[5];
for (const [name, value] of [['singleMiB', singleMiB], ['sessions', sessions], ['eachMiB', eachMiB]] as const) {
  if (!Number.isSafeInteger(value) || value < 1) throw new Error(`${name} must be a positive integer (got ${value})`);
}
if (only !== undefined && only !== 'local' && only !== 's3') throw new Error(`backend must be local or s3 (got ${only})`);
/** Bound on each phase (one direction of one measurement). */
const PHASE_MS = 10 * 60_000;
const BUCKET = 'dfos-bench';

/** One timed direction of one measurement. */
interface Phase {
  name: string;
  mib: number;
  seconds: number;
  peakRssMiB: number;
  /** Server CPU seconds during the phase, user + system. */
  cpuSeconds: number;
  verified: boolean;
}

interface BackendResult {
  backend: string;
  idleRssMiB: number;
  phases: Phase[];
  error?: string;
}

/** Runs `work` with the server's RSS sampled and its CPU time counted; a Phase. */
async function timed(server: BenchServer, name: string, mib: number, work: () => Promise<() => boolean>): Promise<Phase> {
  const sampler = await sampleRss(server.pid);
  const cpu0 = await cpuSeconds(server.pid);
  const t0 = performance.now();
  let verify: () => boolean;
  let peak = 0;
  try {
    verify = await withTimeout(work(), PHASE_MS, name);
  } finally {
    peak = await sampler.stop(); // also when the phase fails
  }
  const seconds = (performance.now() - t0) / 1000;
  const cpu1 = await cpuSeconds(server.pid);
  const verified = verify();
  if (!verified) throw new Error(`${name}: the bytes read back differ from the bytes sent`);
  return {
    name,
    mib,
    seconds,
    peakRssMiB: Math.round(peak / 1024),
    cpuSeconds: cpu1[0] + cpu1[1] - cpu0[0] - cpu0[1],
    verified,
  };
}

/** A Writable that keeps every chunk (hashed after the clock stops). */
function collector(): { sink: Writable; chunks: Buffer[] } {
  const chunks: Buffer[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      chunks.push(chunk);
      callback();
    },
  });
  return { sink, chunks };
}

/** The four phases against one running server. */
async function measure(backend: string, server: BenchServer, bigFile: string, bigSha: string, result: BackendResult): Promise<void> {
  result.idleRssMiB = Math.round((await rssKiB(server.pid)) / 1024);

  const client = new Client(60_000);
  try {
    await withTimeout(client.access({ host: '127.0.0.1', port: server.port, user: BENCH_USER, password: BENCH_PASSWORD }), 60_000, 'login');
    // Untimed warm-up: the first write creates the user's home, and on a fresh RGW the first
    // PUT creates its data pool and the first multipart upload its multipart-metadata pool
    // (~2 s each, once per cluster): 20 MiB is above one 8 MiB part, so both happen here.
    await withTimeout(client.uploadFrom(Readable.from([randomBytes(20 * MIB)]), 'warmup.bin'), 120_000, 'warm-up upload');
    await withTimeout(client.downloadTo(collector().sink, 'warmup.bin'), 60_000, 'warm-up download');
    result.phases.push(
      await timed(server, 'single upload', singleMiB, async () => {
        await client.uploadFrom(bigFile, 'big.bin');
        return () => true; // checked by the download below
      }),
    );
    const back = collector();
    result.phases.push(
      await timed(server, 'single download', singleMiB, async () => {
        await client.downloadTo(back.sink, 'big.bin');
        return () => {
          const got = digest(back.chunks);
          back.chunks.length = 0;
          return got.bytes === singleMiB * MIB && got.sha256 === bigSha;
        };
      }),
    );
  } finally {
    client.close();
  }

  const payloads = Array.from({ length: sessions }, () => randomBytes(eachMiB * MIB));
  const shas = payloads.map(sha256);
  const open: RawSession[] = [];
  try {
    // Logins are not part of the timed phases.
    await withTimeout(
      (async () => {
        for (let i = 0; i < sessions; i += 10) {
          open.push(...(await Promise.all(Array.from({ length: Math.min(10, sessions - i) }, () => rawSession(server.port)))));
        }
      })(),
      120_000,
      `${sessions} logins`,
    );
    result.phases.push(
      await timed(server, `${sessions} parallel upload`, sessions * eachMiB, async () => {
        await Promise.all(open.map((session, i) => storBuffer(session, `par-${i}.bin`, payloads[i]!)));
        return () => true; // checked by the downloads below
      }),
    );
    result.phases.push(
      await timed(server, `${sessions} parallel download`, sessions * eachMiB, async () => {
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

function table(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, c) => Math.max(h.length, ...rows.map((r) => (r[c] ?? '').length)));
  const line = (cells: string[]) => cells.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join('  ');
  return [line(headers), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

const mibps = (p: Phase) => (p.mib / p.seconds).toFixed(1);

function backendTable(result: BackendResult): string {
  const rows = result.phases.map((p) => [
    p.name,
    String(p.mib),
    p.seconds.toFixed(2),
    mibps(p),
    String(p.peakRssMiB),
    p.cpuSeconds.toFixed(2),
    p.verified ? 'sha256 ok' : 'MISMATCH',
  ]);
  const title = `${result.backend} (server idle RSS ${result.idleRssMiB} MiB)`;
  const body = table(['phase', 'MiB', 'seconds', 'MiB/s', 'peak RSS MiB', 'server CPU s', 'check'], rows);
  return `\n${title}\n${body}${result.error ? `\nFAILED: ${result.error}` : ''}`;
}

function summary(results: BackendResult[]): string {
  const phaseNames = ['single upload', 'single download', `${sessions} parallel upload`, `${sessions} parallel download`];
  const cell = (r: BackendResult, name: string, f: (p: Phase) => string) => {
    const p = r.phases.find((x) => x.name === name);
    return p ? f(p) : '-';
  };
  const rows: string[][] = [];
  for (const name of phaseNames) {
    rows.push([`${name} MiB/s`, ...results.map((r) => cell(r, name, mibps))]);
    if (name.includes('parallel')) rows.push([`${name} wall s`, ...results.map((r) => cell(r, name, (p) => p.seconds.toFixed(2)))]);
    rows.push([`${name} peak RSS MiB`, ...results.map((r) => cell(r, name, (p) => String(p.peakRssMiB)))]);
  }
  rows.push(['server idle RSS MiB', ...results.map((r) => (r.phases.length > 0 ? String(r.idleRssMiB) : '-'))]);
  return `\nSummary: single stream ${singleMiB} MiB; ${sessions} sessions x ${eachMiB} MiB (loopback)\n${table(['', ...results.map((r) => r.backend)], rows)}`;
}

const work = await mkdtemp(join(tmpdir(), 'dfos-storage-bench-'));
/** What to stop, newest first, also on SIGINT/SIGTERM. */
const stops: (() => Promise<void>)[] = [];
const stopAll = async () => {
  while (stops.length > 0) await stops.pop()!().catch((err: unknown) => console.error(`cleanup: ${(err as Error).message}`));
  await rm(work, { recursive: true, force: true });
};
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    console.error(`${signal}: stopping what the benchmark started`);
    void stopAll().finally(() => process.exit(130));
  });
}

/** Starts a server, measures, stops it; the result (with `error` set if something failed). */
async function run(backend: string, args: string[], env: Record<string, string>, bigFile: string, bigSha: string): Promise<BackendResult> {
  const result: BackendResult = { backend, idleRssMiB: 0, phases: [] };
  let server: BenchServer | undefined;
  let stop: (() => Promise<void>) | undefined;
  try {
    server = await startBenchServer({ args, env });
    stop = server.stop;
    stops.push(stop);
    await measure(backend, server, bigFile, bigSha, result);
  } catch (err) {
    result.error = (err as Error).message;
  } finally {
    if (stop) {
      stops.splice(stops.indexOf(stop), 1);
      await stop();
    }
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
      const c = ceph;
      stops.push(() => c.stop());
      await withTimeout(ceph.createBucket(BUCKET), 60_000, 'create bucket');
    } catch (err) {
      results.push({ backend: 'S3 (Ceph RGW)', idleRssMiB: 0, phases: [], error: (err as Error).message });
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
