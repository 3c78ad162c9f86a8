/**
 * Loopback benchmark of a DFOS server process: single-stream upload/download throughput
 * (basic-ftp and curl), logins per second with N concurrent clients, and server memory
 * per idle logged-in session. Run: `npm run build && npx tsx bench/bench.ts [sizeMiB] [sessions]`.
 * Everything stays on 127.0.0.1; every loop is bounded.
 */
import { spawn, execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { Readable, Writable } from 'node:stream';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from 'basic-ftp';
import { hashPassword } from '../src/users/passwordHash.js';

const sizeMiB = Number(process.argv[2] ?? 256);
const sessions = Number(process.argv[3] ?? 200);
const port = 20000 + Math.floor(Math.random() * 10000);

async function rssKiB(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
}

function rawLogin(): Promise<() => void> {
  return new Promise((resolve, reject) => {
    const s = connect({ port, host: '127.0.0.1' });
    let buf = '';
    let step = 0;
    const timer = setTimeout(() => reject(new Error('login timeout')), 30_000);
    s.setEncoding('utf8');
    s.on('data', (d: string) => {
      buf += d;
      if (step === 0 && buf.includes('220 ')) (step = 1), s.write('USER bench\r\n');
      if (step === 1 && buf.includes('331 ')) (step = 2), s.write('PASS bench-pw\r\n');
      if (step === 2 && buf.includes('230 ')) {
        step = 3;
        clearTimeout(timer);
        resolve(() => s.destroy());
      }
      if (buf.includes('530 ')) reject(new Error('login refused'));
    });
    s.on('error', reject);
  });
}

/** A minimal raw FTP session for the parallel benchmark: one command, one final reply. */
async function rawSession(): Promise<{ command(line: string): Promise<string>; close(): void }> {
  const s = connect({ port, host: '127.0.0.1' });
  s.setEncoding('utf8');
  let buf = '';
  let waiter: ((reply: string) => void) | undefined;
  s.on('data', (d: string) => {
    buf += d;
    for (;;) {
      const m = /^(\d{3}) .*\r\n/m.exec(buf);
      if (!m) return;
      const end = m.index + m[0].length;
      const reply = buf.slice(0, end);
      buf = buf.slice(end);
      if (m[1] === '150' || m[1] === '220') continue;
      const w = waiter;
      waiter = undefined;
      w?.(reply.trim().split('\r\n').at(-1)!);
    }
  });
  s.on('error', () => undefined);
  const command = (line: string) =>
    new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${line}: no reply in 60 s`)), 60_000);
      waiter = (reply) => {
        clearTimeout(timer);
        resolve(reply);
      };
      s.write(`${line}\r\n`);
    });
  await new Promise<void>((r) => s.once('connect', () => r()));
  for (const [line, code] of [['USER bench', '331'], ['PASS bench-pw', '230'], ['TYPE I', '200']] as const) {
    const reply = await command(line);
    if (!reply.startsWith(code)) throw new Error(`${line}: ${reply}`);
  }
  return { command, close: () => s.destroy() };
}

/** Opens an EPSV data connection on `session`. */
async function epsvData(session: { command(line: string): Promise<string> }): Promise<import('node:net').Socket> {
  const reply = await session.command('EPSV');
  const dataPort = Number(/\(\|\|\|(\d+)\|\)/.exec(reply)?.[1]);
  const data = connect({ port: dataPort, host: '127.0.0.1' });
  await new Promise<void>((r, j) => data.once('connect', () => r()).once('error', j));
  return data;
}

/** `n` sessions at once each RETR `name` (counting bytes) or STOR `payload`; seconds for all. */
async function parallel(n: number, kind: 'RETR' | 'STOR', name: string, payload: Buffer): Promise<number> {
  const sessions = await Promise.all(Array.from({ length: n }, () => rawSession()));
  const t0 = performance.now();
  await Promise.all(
    sessions.map(async (session, i) => {
      const data = await epsvData(session);
      if (kind === 'RETR') {
        let bytes = 0;
        data.on('data', (d: Buffer) => (bytes += d.length));
        const done = new Promise<void>((r) => data.once('end', () => r()));
        const reply = await session.command(`RETR ${name}`);
        await done;
        if (!reply.startsWith('226') || bytes !== payload.length) throw new Error(`RETR: ${reply} (${bytes} bytes)`);
      } else {
        const replied = session.command(`STOR par-${i}.bin`);
        data.end(payload);
        const reply = await replied;
        if (!reply.startsWith('226')) throw new Error(`STOR: ${reply}`);
      }
    }),
  );
  const seconds = (performance.now() - t0) / 1000;
  sessions.forEach((s) => s.close());
  return seconds;
}

const dir = await mkdtemp(join(tmpdir(), 'dfos-bench-'));
await writeFile(join(dir, 'users.json'), JSON.stringify({ users: { bench: { password: await hashPassword('bench-pw') } } }));
const server = spawn(process.execPath, ['dist/dfos.cjs', 'serve', '--host', '127.0.0.1', '--port', String(port), '--pasv-min', '0', '--pasv-max', '0',
  '--storage', join(dir, 'storage'), '--users', join(dir, 'users.json'), '--log-dir', join(dir, 'logs'), '--log-level', 'warn'], { stdio: 'inherit' });
try {
  for (let i = 0; i < 100; i++) {
    try {
      (await rawLogin())();
      break;
    } catch {
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  const file = join(dir, 'payload.bin');
  const out = createWriteStream(file);
  for (let i = 0; i < sizeMiB; i++) out.write(randomBytes(1 << 20));
  await new Promise((r) => out.end(r));
  const sha = createHash('sha256').update(await readFile(file)).digest('hex');

  const client = new Client(60_000);
  await client.access({ host: '127.0.0.1', port, user: 'bench', password: 'bench-pw' });
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
  const curlBytes = Number(execFileSync('curl', ['-s', '-o', '/dev/null', '-w', '%{size_download}', `ftp://bench:bench-pw@127.0.0.1:${port}/payload.bin`], { encoding: 'utf8' }));
  const curlDown = (sizeMiB / ((performance.now() - t) / 1000)).toFixed(0);
  t = performance.now();
  execFileSync('curl', ['-s', '-T', file, `ftp://bench:bench-pw@127.0.0.1:${port}/curl-up.bin`]);
  const curlUp = (sizeMiB / ((performance.now() - t) / 1000)).toFixed(0);
  const curlOk = curlBytes === sizeMiB << 20 && (await stat(join(dir, 'storage', 'bench', 'curl-up.bin'))).size === sizeMiB << 20;

  const before = await rssKiB(server.pid!);
  t = performance.now();
  const closers = await Promise.all(Array.from({ length: sessions }, () => rawLogin()));
  const loginSeconds = (performance.now() - t) / 1000;
  await new Promise((r) => setTimeout(r, 500));
  const after = await rssKiB(server.pid!);
  closers.forEach((c) => c());

  // Latency: one login after another, and small files one after another on one session
  // (what scripts and mirroring clients do; Nagle + delayed ACK would add ~40 ms each).
  t = performance.now();
  for (let i = 0; i < 100; i++) (await rawLogin())();
  const sequentialLoginMs = (performance.now() - t) / 100;
  const latency = new Client(30_000);
  await latency.access({ host: '127.0.0.1', port, user: 'bench', password: 'bench-pw' });
  const tiny = Buffer.alloc(1000, 97);
  t = performance.now();
  for (let i = 0; i < 100; i++) await latency.uploadFrom(Readable.from([tiny]), `tiny-${i}.txt`);
  const smallUploadMs = (performance.now() - t) / 100;
  t = performance.now();
  for (let i = 0; i < 100; i++) await latency.downloadTo(new Writable({ write: (_c, _e, cb) => cb() }), `tiny-${i}.txt`);
  const smallDownloadMs = (performance.now() - t) / 100;
  await mkdir(join(dir, 'storage', 'bench', 'many'));
  await Promise.all(Array.from({ length: 1000 }, (_, i) => writeFile(join(dir, 'storage', 'bench', 'many', `f${i}.txt`), `${i}\n`)));
  await latency.list('many');
  t = performance.now();
  for (let i = 0; i < 20; i++) await latency.list('many');
  const list1000Ms = (performance.now() - t) / 20;
  latency.close();

  // Like pyftpdlib's ftpbench "-b all -n 200": N sessions at once, 10 MB each.
  const small = randomBytes(10_000_000);
  await writeFile(join(dir, 'storage', 'bench', 'ten.bin'), small);
  const peakKiB = async () => Number(/VmHWM:\s+(\d+)/.exec(await readFile(`/proc/${server.pid}/status`, 'utf8'))?.[1] ?? 0);
  // Server CPU seconds [user, system], to tell a server bound phase from a client bound one.
  const cpuSeconds = async (): Promise<[number, number]> => {
    const fields = (await readFile(`/proc/${server.pid}/stat`, 'utf8')).split(') ')[1]!.split(' ');
    return [Number(fields[11]) / 100, Number(fields[12]) / 100];
  };
  const since = (a: [number, number], b: [number, number]) => ({ user: Number((b[0] - a[0]).toFixed(2)), system: Number((b[1] - a[1]).toFixed(2)) });
  const peakBefore = await peakKiB();
  let cpu = await cpuSeconds();
  const parallelRetr = await parallel(sessions, 'RETR', 'ten.bin', small);
  const retrCpu = since(cpu, await cpuSeconds());
  const peakRetr = await peakKiB();
  cpu = await cpuSeconds();
  const parallelStor = await parallel(sessions, 'STOR', '', small);
  const storCpu = since(cpu, await cpuSeconds());
  const peakStor = await peakKiB();

  console.log(JSON.stringify({
    payloadMiB: sizeMiB,
    basicFtp: { uploadMiBps: Number(up), downloadMiBps: Number(down), identical: same },
    curl: { uploadMiBps: Number(curlUp), downloadMiBps: Number(curlDown), complete: curlOk },
    parallel10MB: { sessions, retrSeconds: Number(parallelRetr.toFixed(2)), storSeconds: Number(parallelStor.toFixed(2)),
      serverCpuSeconds: { retr: retrCpu, stor: storCpu },
      peakRssMiB: { before: Math.round(peakBefore / 1024), afterRetr: Math.round(peakRetr / 1024), afterStor: Math.round(peakStor / 1024) } },
    latencyMs: { sequentialLogin: Number(sequentialLoginMs.toFixed(1)), smallUpload: Number(smallUploadMs.toFixed(1)), smallDownload: Number(smallDownloadMs.toFixed(1)), list1000Entries: Number(list1000Ms.toFixed(1)) },
    logins: { concurrent: sessions, seconds: Number(loginSeconds.toFixed(3)), perSecond: Math.round(sessions / loginSeconds) },
    memory: { rssBeforeMiB: Math.round(before / 1024), rssWithSessionsMiB: Math.round(after / 1024), perSessionKiB: Math.round((after - before) / sessions) },
  }, null, 2));
} finally {
  server.kill('SIGTERM');
  await new Promise((r) => server.once('exit', r));
  await rm(dir, { recursive: true, force: true });
}
