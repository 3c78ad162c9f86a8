/**
 * Loopback benchmark of a DFOS server process on local disk storage: single-stream
 * upload/download throughput (basic-ftp and curl), logins per second with N concurrent
 * clients, server memory per idle logged-in session, one upload/download with those N sessions
 * idle around it, N sessions at once each RETR/STOR of 10 MB, and small-file latency: the
 * lines of pyftpdlib's ftpbench (`-b all`). The comparison with other servers is
 * ../shared/bench/compare.sh, which runs ftpbench itself against each of them.
 * Run: `npm run build && npx tsx bench/bench.ts [sizeMiB=256] [sessions=200]` (`npm run bench`
 * runs it with the defaults, then bench/storage.ts).
 * Everything stays on 127.0.0.1; every loop is bounded.
 */
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { Readable, Writable } from 'node:stream';
import { join } from 'node:path';
import { Client } from 'basic-ftp';
import { BENCH_PASSWORD, BENCH_USER, cpuSeconds, epsvData, rawLogin as login, rawSession, rssKiB, startBenchServer, statusKiB, storBuffer, writeRandomFile } from './benchServer.js';

const sizeMiB = Number(process.argv[2] ?? 256);
const sessions = Number(process.argv[3] ?? 200);

/** `n` sessions at once each RETR `name` (counting bytes) or STOR `payload`; seconds for all. */
async function parallel(n: number, kind: 'RETR' | 'STOR', name: string, payload: Buffer): Promise<number> {
  const sessions = await Promise.all(Array.from({ length: n }, () => rawSession(server.port)));
  const t0 = performance.now();
  await Promise.all(
    sessions.map(async (session, i) => {
      if (kind === 'STOR') return storBuffer(session, `par-${i}.bin`, payload);
      const data = await epsvData(session);
      let bytes = 0;
      data.on('data', (d: Buffer) => (bytes += d.length));
      const done = new Promise<void>((r) => data.once('end', () => r()));
      const reply = await session.command(`RETR ${name}`);
      await done;
      if (!reply.startsWith('226') || bytes !== payload.length) throw new Error(`RETR: ${reply} (${bytes} bytes)`);
    }),
  );
  const seconds = (performance.now() - t0) / 1000;
  sessions.forEach((s) => s.close());
  return seconds;
}

const server = await startBenchServer();
const { port } = server;
const dir = server.dir;
const rawLogin = () => login(port);
try {
  const file = join(dir, 'payload.bin');
  const sha = await writeRandomFile(file, sizeMiB);

  const client = new Client(60_000);
  await client.access({ host: '127.0.0.1', port, user: BENCH_USER, password: BENCH_PASSWORD });
  let t = performance.now();
  await client.uploadFrom(file, 'payload.bin');
  const up = (sizeMiB / ((performance.now() - t) / 1000)).toFixed(0);
  t = performance.now();
  await client.downloadTo(join(dir, 'back.bin'), 'payload.bin');
  const down = (sizeMiB / ((performance.now() - t) / 1000)).toFixed(0);
  client.close();
  const same = createHash('sha256').update(await readFile(join(dir, 'back.bin'))).digest('hex') === sha;

  t = performance.now();
  // To /dev/null, as the reference numbers for sendfile servers are measured.
  const curlBytes = Number(execFileSync('curl', ['-s', '-o', '/dev/null', '-w', '%{size_download}', `ftp://${BENCH_USER}:${BENCH_PASSWORD}@127.0.0.1:${port}/payload.bin`], { encoding: 'utf8' }));
  const curlDown = (sizeMiB / ((performance.now() - t) / 1000)).toFixed(0);
  t = performance.now();
  execFileSync('curl', ['-s', '-T', file, `ftp://${BENCH_USER}:${BENCH_PASSWORD}@127.0.0.1:${port}/curl-up.bin`]);
  const curlUp = (sizeMiB / ((performance.now() - t) / 1000)).toFixed(0);
  const curlOk = curlBytes === sizeMiB << 20 && (await stat(join(server.storage, BENCH_USER, 'curl-up.bin'))).size === sizeMiB << 20;

  const before = await rssKiB(server.pid);
  t = performance.now();
  const closers = await Promise.all(Array.from({ length: sessions }, () => rawLogin()));
  const loginSeconds = (performance.now() - t) / 1000;
  await new Promise((r) => setTimeout(r, 500));
  const after = await rssKiB(server.pid);
  // Like ftpbench's "STOR/RETR (1 file with N idle clients)": one transfer while the N sessions stay logged in.
  const busy = new Client(60_000);
  await busy.access({ host: '127.0.0.1', port, user: BENCH_USER, password: BENCH_PASSWORD });
  t = performance.now();
  await busy.uploadFrom(file, 'idle-around.bin');
  const idleUp = (sizeMiB / ((performance.now() - t) / 1000)).toFixed(0);
  t = performance.now();
  await busy.downloadTo(new Writable({ write: (_c, _e, cb) => cb() }), 'idle-around.bin');
  const idleDown = (sizeMiB / ((performance.now() - t) / 1000)).toFixed(0);
  busy.close();
  closers.forEach((c) => c());

  // Latency: one login after another, and small files one after another on one session
  // (what scripts and mirroring clients do; Nagle + delayed ACK would add ~40 ms each).
  t = performance.now();
  for (let i = 0; i < 100; i++) (await rawLogin())();
  const sequentialLoginMs = (performance.now() - t) / 100;
  const latency = new Client(30_000);
  await latency.access({ host: '127.0.0.1', port, user: BENCH_USER, password: BENCH_PASSWORD });
  const tiny = Buffer.alloc(1000, 97);
  t = performance.now();
  for (let i = 0; i < 100; i++) await latency.uploadFrom(Readable.from([tiny]), `tiny-${i}.txt`);
  const smallUploadMs = (performance.now() - t) / 100;
  t = performance.now();
  for (let i = 0; i < 100; i++) await latency.downloadTo(new Writable({ write: (_c, _e, cb) => cb() }), `tiny-${i}.txt`);
  const smallDownloadMs = (performance.now() - t) / 100;
  await mkdir(join(server.storage, BENCH_USER, 'many'));
  await Promise.all(Array.from({ length: 1000 }, (_, i) => writeFile(join(server.storage, BENCH_USER, 'many', `f${i}.txt`), `${i}\n`)));
  await latency.list('many');
  t = performance.now();
  for (let i = 0; i < 20; i++) await latency.list('many');
  const list1000Ms = (performance.now() - t) / 20;
  latency.close();

  // Like pyftpdlib's ftpbench "-b all -n 200": N sessions at once, 10 MB each.
  const small = randomBytes(10_000_000);
  await writeFile(join(server.storage, BENCH_USER, 'ten.bin'), small);
  const peakKiB = () => statusKiB(server.pid, 'VmHWM');
  // Server CPU seconds [user, system], to tell a server bound phase from a client bound one.
  const serverCpu = () => cpuSeconds(server.pid);
  const since = (a: [number, number], b: [number, number]) => ({ user: Number((b[0] - a[0]).toFixed(2)), system: Number((b[1] - a[1]).toFixed(2)) });
  const peakBefore = await peakKiB();
  let cpu = await serverCpu();
  const parallelRetr = await parallel(sessions, 'RETR', 'ten.bin', small);
  const retrCpu = since(cpu, await serverCpu());
  const peakRetr = await peakKiB();
  cpu = await serverCpu();
  const parallelStor = await parallel(sessions, 'STOR', '', small);
  const storCpu = since(cpu, await serverCpu());
  const peakStor = await peakKiB();

  console.log(JSON.stringify({
    payloadMiB: sizeMiB,
    basicFtp: { uploadMiBps: Number(up), downloadMiBps: Number(down), identical: same },
    curl: { uploadMiBps: Number(curlUp), downloadMiBps: Number(curlDown), complete: curlOk },
    withIdleSessions: { idle: sessions, uploadMiBps: Number(idleUp), downloadMiBps: Number(idleDown) },
    parallel10MB: { sessions, retrSeconds: Number(parallelRetr.toFixed(2)), storSeconds: Number(parallelStor.toFixed(2)),
      serverCpuSeconds: { retr: retrCpu, stor: storCpu },
      peakRssMiB: { before: Math.round(peakBefore / 1024), afterRetr: Math.round(peakRetr / 1024), afterStor: Math.round(peakStor / 1024) } },
    latencyMs: { sequentialLogin: Number(sequentialLoginMs.toFixed(1)), smallUpload: Number(smallUploadMs.toFixed(1)), smallDownload: Number(smallDownloadMs.toFixed(1)), list1000Entries: Number(list1000Ms.toFixed(1)) },
    logins: { concurrent: sessions, seconds: Number(loginSeconds.toFixed(3)), perSecond: Math.round(sessions / loginSeconds) },
    memory: { rssBeforeMiB: Math.round(before / 1024), rssWithSessionsMiB: Math.round(after / 1024), perSessionKiB: Math.round((after - before) / sessions) },
  }, null, 2));
} finally {
  await server.stop();
}
