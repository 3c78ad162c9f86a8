/**
 * FTPS throughput of DFOS compared, in the same run on the same machine, with vsftpd
 * (ssl_enable=YES). Both over explicit FTPS (AUTH TLS) with PROT P, TLS session reuse on
 * the data connections (basic-ftp offers the control connection's session; vsftpd runs
 * with require_ssl_reuse=YES and DFOS requires it, so a transfer that succeeds reused it),
 * loopback, basic-ftp clients verifying the server's certificate (ca + servername localhost):
 *   1. one large file (default 256 MiB) uploaded, then downloaded, on one session;
 *   2. N sessions at once (default 50), each uploading one file (default 8 MiB, all
 *      different), then all downloading theirs.
 * An untimed 1 MiB upload and download comes first. Every download is checked byte-exact by
 * SHA-256 (hashed after the clock stops). Logins are not timed.
 *
 * Servers: DFOS is `node dist/dfos.cjs serve --tls on` (startBenchServer; its generated
 * self-signed certificate is <cwd>/state/tls/cert.pem). vsftpd is started by
 * test/helpers/peerServers.ts startVsftpd({ tls }) (needs root: it logs in a system user,
 * `dfosbench`, created if missing, through PAM) with a certificate from openssl
 * (test/helpers/tlsFixtures.ts makeCertificate).
 *
 * Memory and CPU per phase: DFOS is one process (VmRSS sampled every 50 ms plus VmHWM).
 * vsftpd runs a listener plus two processes per session, so its column is the peak of the
 * SUM of VmRSS over all its processes, sampled every 100 ms (shared pages count once per
 * process: an overstatement of what it really uses), and its CPU the sum over its
 * processes (see phase.ts processSetMeter).
 *
 * Run: `npm run build && npx tsx bench/ftps.ts [singleMiB=256] [sessions=50] [eachMiB=8] [dfos|vsftpd]`
 * (the last argument runs one server only). Every process started here is stopped by PID
 * (vsftpd by its process group), temporary directories are removed, every step is time-bounded.
 */
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Readable } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import { Client } from 'basic-ftp';
import { startVsftpd } from '../test/helpers/peerServers.js';
import { makeCertificate } from '../test/helpers/tlsFixtures.js';
import { BENCH_PASSWORD, benchArgs, BENCH_USER, MIB, collector, digest, rssKiB, sha256, openInBatches, startBenchServer, withTimeout, writeRandomFile, stopsOnSignal
} from './benchServer.js';
import { phaseTable, singleStreamPhases, pidMeter, pidsWithCmdline, processSetMeter, summaryTable, timed, type Meter, type RunResult } from './phase.js';

const { singleMiB, sessions, eachMiB, only } = benchArgs(['dfos', 'vsftpd'] as const, 'server');
/** Bound on each phase (one direction of one measurement). */
const PHASE_MS = 10 * 60_000;
/** The system user vsftpd logs in (not the tests' `dfospeer`, whose password they set). */
const VSFTPD_USER = 'dfosbench';

/** A running FTPS server to measure. */
interface Target {
  port: number;
  user: string;
  password: string;
  /** The PEM certificate the clients trust (self-signed, valid for localhost). */
  ca: string;
  meter: Meter;
  idleRssKiB(): Promise<number>;
  /** How memory and CPU were measured. */
  note: string;
}

/** A basic-ftp client logged in over explicit FTPS (AUTH TLS, PBSZ 0, PROT P). */
async function ftpsClient(target: Target): Promise<Client> {
  const client = new Client(60_000);
  try {
    await withTimeout(
      client.access({
        host: '127.0.0.1',
        port: target.port,
        user: target.user,
        password: target.password,
        secure: true,
        secureOptions: { ca: target.ca, servername: 'localhost' },
      }),
      60_000,
      'FTPS login',
    );
  } catch (err) {
    client.close();
    throw err;
  }
  return client;
}

/** The four phases against one running server. */
async function measure(target: Target, bigFile: string, bigSha: string, result: RunResult): Promise<void> {
  result.idleRssMiB = Math.round((await target.idleRssKiB()) / 1024);
  const { meter } = target;

  const client = await ftpsClient(target);
  try {
    const control = client.ftp.socket as TLSSocket;
    result.note = `${target.note}\ncontrol connection: ${control.getProtocol?.() ?? '?'} ${control.getCipher?.()?.name ?? '?'}`;
    // Untimed warm-up (DFOS creates the user's home on the first write).
    await withTimeout(client.uploadFrom(Readable.from([randomBytes(MIB)]), 'warmup.bin'), 60_000, 'warm-up upload');
    await withTimeout(client.downloadTo(collector().sink, 'warmup.bin'), 60_000, 'warm-up download');
    result.phases.push(...(await singleStreamPhases(client, meter, bigFile, bigSha, singleMiB, PHASE_MS)));
  } finally {
    client.close();
  }

  const payloads = Array.from({ length: sessions }, () => randomBytes(eachMiB * MIB));
  const shas = payloads.map(sha256);
  const open: Client[] = [];
  try {
    // Logins (TLS handshakes included) are not part of the timed phases.
    await openInBatches(open, sessions, () => ftpsClient(target), `${sessions} FTPS logins`);
    result.phases.push(
      await timed(meter, `${sessions} parallel upload`, sessions * eachMiB, PHASE_MS, async () => {
        await Promise.all(open.map((c, i) => c.uploadFrom(Readable.from([payloads[i]!]), `par-${i}.bin`)));
        return () => true; // checked by the downloads below
      }),
    );
    result.phases.push(
      await timed(meter, `${sessions} parallel download`, sessions * eachMiB, PHASE_MS, async () => {
        const sinks = open.map(() => collector());
        await Promise.all(open.map((c, i) => c.downloadTo(sinks[i]!.sink, `par-${i}.bin`)));
        return () =>
          sinks.every(({ chunks }, i) => {
            const d = digest(chunks);
            return d.bytes === eachMiB * MIB && d.sha256 === shas[i];
          });
      }),
    );
  } finally {
    for (const c of open) c.close();
  }
}

/** Polls (bounded) until `file` exists. */
async function waitForFile(file: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (let i = 0; i < 10_000 && !existsSync(file); i++) {
    if (Date.now() > deadline) throw new Error(`${file} did not appear within ${timeoutMs / 1000} s`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const work = await mkdtemp(join(tmpdir(), 'dfos-ftps-bench-'));
const { stopAll, tracked } = stopsOnSignal(() => rm(work, { recursive: true, force: true }));

/** Starts a server with `start` (which returns the target and its stop), measures, stops it; the result. */
async function run(label: string, start: () => Promise<{ target: Target; stop: () => Promise<void> }>, bigFile: string, bigSha: string): Promise<RunResult> {
  const result: RunResult = { label, phases: [] };
  let stop: (() => Promise<void>) | undefined;
  try {
    const started = await start();
    stop = tracked(started.stop);
    await measure(started.target, bigFile, bigSha, result);
    console.error(`${label}: done`);
  } catch (err) {
    result.error = (err as Error).message;
  } finally {
    await stop?.();
  }
  console.log(phaseTable(result));
  return result;
}

/** DFOS with FTPS on (explicit AUTH TLS), its own generated certificate. */
async function startDfos(): Promise<{ target: Target; stop: () => Promise<void> }> {
  const server = await startBenchServer({ args: ['--tls', 'on'] });
  try {
    const certFile = join(server.dir, 'state', 'tls', 'cert.pem');
    await waitForFile(certFile, 30_000);
    const target: Target = {
      port: server.port,
      user: BENCH_USER,
      password: BENCH_PASSWORD,
      ca: await readFile(certFile, 'utf8'),
      meter: pidMeter(server.pid),
      idleRssKiB: () => rssKiB(server.pid),
      note: 'peak RSS / CPU: the one DFOS process (VmRSS every 50 ms + VmHWM)',
    };
    return { target, stop: server.stop };
  } catch (err) {
    await server.stop();
    throw err;
  }
}

/** vsftpd requiring explicit FTPS (PROT P, session reuse) with an openssl certificate. */
async function startVsftpdTls(): Promise<{ target: Target; stop: () => Promise<void> }> {
  const certDir = join(work, 'vsftpd-cert');
  await mkdir(certDir, { recursive: true });
  const cert = await makeCertificate(certDir);
  const peer = await startVsftpd({ tls: { cert: cert.cert, key: cert.key }, user: VSFTPD_USER });
  // startVsftpd writes its config as <base>/vsftpd.conf next to the users' root <base>/files;
  // that temporary path is on the command line of the listener and of every session process.
  const conf = join(dirname(peer.root), 'vsftpd.conf');
  const sumRss = async () => {
    let kib = 0;
    for (const pid of await pidsWithCmdline(conf)) kib += await rssKiB(pid).catch(() => 0);
    return kib;
  };
  const target: Target = {
    port: peer.port,
    user: peer.user,
    password: peer.password,
    ca: cert.pem,
    meter: processSetMeter(conf),
    idleRssKiB: sumRss,
    note: 'peak RSS / CPU: SUM over all vsftpd processes (listener + 2 per session), sampled every 100 ms; shared pages are counted once per process',
  };
  return { target, stop: peer.stop };
}

const results: RunResult[] = [];
try {
  const bigFile = join(work, 'big.bin');
  const bigSha = await writeRandomFile(bigFile, singleMiB);
  if (only !== 'vsftpd') results.push(await run('DFOS FTPS', startDfos, bigFile, bigSha));
  if (only !== 'dfos') results.push(await run('vsftpd FTPS', startVsftpdTls, bigFile, bigSha));
} finally {
  await stopAll();
}

console.log(
  summaryTable(
    `Summary (FTPS, explicit AUTH TLS + PROT P): single stream ${singleMiB} MiB; ${sessions} sessions x ${eachMiB} MiB (loopback)`,
    ['single upload', 'single download', `${sessions} parallel upload`, `${sessions} parallel download`],
    results,
  ),
);
console.log('vsftpd memory is a sum over its processes (see its table); DFOS is one process.');
console.log('\n(2-core machine shared with other work, clients and server on the same cores: numbers are noisy.)');
if (results.some((r) => r.error !== undefined)) process.exitCode = 1;
