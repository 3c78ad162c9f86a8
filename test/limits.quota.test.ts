import test from 'ava';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { auditRecords } from './helpers/logFiles.js';
import { RawFtp } from './helpers/rawFtp.js';
import { rawUpload } from './helpers/dataTransfer.js';
import { startTestServer, type TestServer, type TestUser } from './helpers/testServer.js';

// Quotas and file-size limits (issue 11 item 3) on the local backend; the S3 backend runs
// the same checks in s3Backend.test.ts against Ceph RGW.

const KiB = 1024;
const MiB = 1024 * KiB;

function bytes(n: number, fill = 'x'): Buffer {
  return Buffer.alloc(n, fill);
}

/** A server with one user "q" and the given limits; storage and state under `base` when given (to restart on them). */
async function quotaServer(t: { teardown(fn: () => Promise<void>): void }, limits: Omit<TestUser, 'name' | 'password'>, base?: string): Promise<TestServer> {
  const server = await startTestServer({
    users: [{ name: 'q', password: 'q-pw', ...limits }],
    config: base ? { storage: join(base, 'storage'), stateDir: join(base, 'state') } : {},
  });
  t.teardown(() => server.stop());
  return server;
}

async function login(server: TestServer): Promise<RawFtp> {
  const raw = await RawFtp.login(server.port, 'q', 'q-pw');
  await raw.command('TYPE I');
  return raw;
}

/** SITE QUOTA's lines after the first. */
async function siteQuota(raw: RawFtp): Promise<string> {
  const reply = await raw.command('SITE QUOTA');
  if (reply.code !== 200) throw new Error(`SITE QUOTA: ${reply.raw}`);
  return reply.raw;
}

/** Names in the user's folder, temporaries included (what is really on disk). */
async function onDisk(server: TestServer): Promise<string[]> {
  return (await readdir(join(server.storage, 'q')).catch(() => [] as string[])).sort();
}

test('--max-file-size: an upload stops being accepted past the limit (552), the previous version stays, nothing is left behind', async (t) => {
  const server = await quotaServer(t, { maxFileSize: 1 * MiB });
  const raw = await login(server);
  t.is((await rawUpload(raw, 'STOR exact.bin', bytes(1 * MiB))).code, 226);
  t.is((await rawUpload(raw, 'STOR keep.txt', 'old version')).code, 226);

  const big = await rawUpload(raw, 'STOR keep.txt', bytes(20 * MiB, 'n'));
  t.is(big.code, 552, big.final.raw);
  t.regex(big.final.raw, /^552 \/keep\.txt: File too large: at most 1 MiB per file\r\n$/);
  t.is(await readFile(join(server.storage, 'q', 'keep.txt'), 'utf8'), 'old version');
  const fresh = await rawUpload(raw, 'STOR new.bin', bytes(1 * MiB + 1));
  t.is(fresh.code, 552);
  t.deepEqual(await onDisk(server), ['exact.bin', 'keep.txt']);

  // The session goes on; the audit says what was refused, with how little was written.
  t.is((await raw.command('NOOP')).code, 200);
  const refused = await auditRecords(server.logDir, (r) => r.action === 'upload' && r.result === 'failed', 2);
  t.is(refused.length, 2);
  for (const r of refused) {
    t.is(r.code, 552);
    t.true((r.bytes as number) <= 1 * MiB, `wrote ${String(r.bytes)} bytes`);
  }
  const quota = await siteQuota(raw);
  t.regex(quota, /^200-Quota for q:\r\n Largest file: 1 MiB \(1048576 bytes\)\r\n200 End of quota\r\n$/);
  raw.close();
});

test('--quota: counts what is stored (measured at the first login), refuses the upload that would cross it, DELE gives bytes back', async (t) => {
  const base = await mkdtemp(join(tmpdir(), 'dfos-quota-'));
  t.teardown(() => rm(base, { recursive: true, force: true }));
  // Files already in the home before the first login are measured, temporaries not counted.
  await mkdir(join(base, 'storage', 'q', 'sub'), { recursive: true });
  await writeFile(join(base, 'storage', 'q', 'sub', 'old.bin'), bytes(100 * KiB));
  await writeFile(join(base, 'storage', 'q', '.dfos-upload-stale'), bytes(500 * KiB));
  const server = await quotaServer(t, { quotaBytes: 1 * MiB }, base);
  const raw = await login(server);
  t.regex(await siteQuota(raw), / Bytes: 100 KiB \(102400 bytes\) used of 1 MiB \(9\.7%\)\r\n Files: 1, no limit\r\n/);

  t.is((await rawUpload(raw, 'STOR a.bin', bytes(600 * KiB))).code, 226);
  const over = await rawUpload(raw, 'STOR b.bin', bytes(600 * KiB));
  t.is(over.code, 552, over.final.raw);
  t.regex(over.final.raw, /^552 \/b\.bin: Quota exceeded: 1 MiB allowed, 700 KiB stored; delete some first\r\n$/);
  t.false(existsSync(join(server.storage, 'q', 'b.bin')));
  t.regex(await siteQuota(raw), / Bytes: 700 KiB \(716800 bytes\) used of 1 MiB \(68\.3%\)\r\n Files: 2, no limit\r\n/);

  // Replacing a file counts only its growth.
  t.is((await rawUpload(raw, 'STOR a.bin', bytes(900 * KiB))).code, 226);
  t.regex(await siteQuota(raw), /\(1024000 bytes\) used/);
  t.is((await raw.command('DELE a.bin')).code, 250);
  t.is((await raw.command('DELE sub/old.bin')).code, 250);
  t.regex(await siteQuota(raw), / Bytes: 0 B \(0 bytes\) used of 1 MiB \(0%\)\r\n Files: 0, no limit\r\n/);
  t.is((await rawUpload(raw, 'STOR b.bin', bytes(1 * MiB))).code, 226);

  // STAT shows the same lines.
  const stat = await raw.command('STAT');
  t.is(stat.code, 211, stat.raw);
  t.regex(stat.raw, / Bytes: 1 MiB \(1048576 bytes\) used of 1 MiB \(100%\)\r\n/);
  raw.close();
});

test('--quota: APPE, resumed STOR and STOU are cut at the limit with 552 and the file is left exactly as it was', async (t) => {
  const server = await quotaServer(t, { quotaBytes: 256 * KiB, maxFileSize: 200 * KiB });
  const raw = await login(server);
  t.is((await rawUpload(raw, 'STOR log.txt', bytes(150 * KiB, 'a'))).code, 226);

  const append = await rawUpload(raw, 'APPE log.txt', bytes(100 * KiB, 'b'));
  t.is(append.code, 552, append.final.raw);
  t.regex(append.final.raw, /File too large: at most 200 KiB per file/);
  t.deepEqual(await readFile(join(server.storage, 'q', 'log.txt')), bytes(150 * KiB, 'a'));

  t.is((await raw.command('REST 100')).code, 350);
  const resumed = await rawUpload(raw, 'STOR log.txt', bytes(250 * KiB, 'c'));
  t.is(resumed.code, 552, resumed.final.raw);
  t.deepEqual(await readFile(join(server.storage, 'q', 'log.txt')), bytes(150 * KiB, 'a'));

  // Within the file limit but past the 256 KiB total (150 KiB stored).
  const unique = await rawUpload(raw, 'STOU', bytes(150 * KiB, 'd'));
  t.is(unique.code, 552, unique.final.raw);
  t.regex(unique.final.raw, /Quota exceeded: 256 KiB allowed, 150 KiB stored/);
  t.deepEqual(await onDisk(server), ['log.txt']);

  // What fits still works: an append within both limits, a resume that shrinks the file.
  t.is((await rawUpload(raw, 'APPE log.txt', bytes(50 * KiB, 'e'))).code, 226);
  t.is((await raw.command('REST 1024')).code, 350);
  t.is((await rawUpload(raw, 'STOR log.txt', bytes(1024, 'f'))).code, 226);
  t.regex(await siteQuota(raw), /\(2048 bytes\) used of 256 KiB/);
  raw.close();
});

test('--max-files: a new file past the count is refused before any data (552); replacing one is fine; a rename over a file gives its bytes and slot back', async (t) => {
  const server = await quotaServer(t, { quotaFiles: 2, quotaBytes: 1 * MiB });
  const raw = await login(server);
  t.is((await rawUpload(raw, 'STOR one', bytes(300 * KiB))).code, 226);
  t.is((await rawUpload(raw, 'STOR two', bytes(300 * KiB))).code, 226);
  const third = await rawUpload(raw, 'STOR three', 'x');
  t.is(third.code, 552);
  t.is(third.replies.length, 1, 'refused as the reply to STOR, before the data connection is used');
  t.regex(third.final.raw, /^552 \/three: Quota exceeded: 2 files allowed, 2 stored; delete some first\r\n$/);
  t.is((await rawUpload(raw, 'STOR two', bytes(100 * KiB))).code, 226);

  // Rename over an existing file: the replaced file's bytes and slot are given back.
  t.is((await raw.command('RNFR two')).code, 350);
  t.is((await raw.command('RNTO one')).code, 250);
  t.regex(await siteQuota(raw), / Bytes: 100 KiB \(102400 bytes\) used of 1 MiB \(9\.7%\)\r\n Files: 1 of 2 \(50%\)\r\n/);
  // The way sync clients upload (to a temporary name, then a rename over the target):
  // the temporary is checked like any upload, and the rename keeps the count right.
  t.is((await rawUpload(raw, 'STOR one.part', bytes(800 * KiB))).code, 226);
  t.is((await raw.command('RNFR one.part')).code, 350);
  t.is((await raw.command('RNTO one')).code, 250);
  t.regex(await siteQuota(raw), /\(819200 bytes\) used of 1 MiB .*\r\n Files: 1 of 2/);
  const tooBig = await rawUpload(raw, 'STOR two.part', bytes(300 * KiB));
  t.is(tooBig.code, 552);
  t.deepEqual(await readFile(join(server.storage, 'q', 'one')), bytes(800 * KiB));
  raw.close();
});

test('--quota: parallel uploads of one user cannot together overrun it (bytes in flight are reserved)', async (t) => {
  const server = await quotaServer(t, { quotaBytes: 1 * MiB });
  const sessions = await Promise.all([login(server), login(server), login(server)]);
  const results = await Promise.all(sessions.map((raw, i) => rawUpload(raw, `STOR p${i}.bin`, bytes(400 * KiB))));
  const codes = results.map((r) => r.code).sort();
  t.deepEqual(codes, [226, 226, 552]);
  const stored = (await onDisk(server)).filter((n) => n.startsWith('p'));
  t.is(stored.length, 2);
  t.regex(await siteQuota(sessions[0]!), /\(819200 bytes\) used of 1 MiB/);
  for (const raw of sessions) raw.close();
});

test('usage survives a restart (kept in <state-dir>/usage.json, not walked again) and dfos quota NAME shows it', async (t) => {
  const base = await mkdtemp(join(tmpdir(), 'dfos-quota-'));
  t.teardown(() => rm(base, { recursive: true, force: true }));
  const limits = { quotaBytes: 10 * MiB, quotaFiles: 100, maxFileSize: 5 * MiB };
  const first = await quotaServer(t, limits, base);
  let raw = await login(first);
  t.is((await rawUpload(raw, 'STOR a.bin', bytes(3 * KiB))).code, 226);
  raw.close();
  await first.stop();
  const saved = JSON.parse(await readFile(join(base, 'state', 'usage.json'), 'utf8')) as { users: Record<string, { bytes: number; files: number }> };
  t.like(saved.users.q, { bytes: 3 * KiB, files: 1 });

  // A file put in behind the server's back is not seen: the recorded usage is used as it is.
  await writeFile(join(base, 'storage', 'q', 'behind.bin'), bytes(5 * KiB));
  const second = await quotaServer(t, limits, base);
  raw = await login(second);
  t.regex(await siteQuota(raw), / Bytes: 3 KiB \(3072 bytes\) used of 10 MiB \(0%\)\r\n Files: 1 of 100 \(1%\)\r\n Largest file: 5 MiB/);
  t.is((await rawUpload(raw, 'STOR b.bin', bytes(1 * KiB))).code, 226);
  raw.close();
  await sleep(1500); // the file is written a second after a change

  const cli = fileURLToPath(new URL('../dist/cli.js', import.meta.url));
  const run = (args: string[]) =>
    new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
      const child = spawn(process.execPath, [cli, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      child.on('close', (code) => resolve({ code, stdout, stderr }));
    });
  const shown = await run(['quota', 'q', '--users', second.usersFile, '--state-dir', join(base, 'state')]);
  t.is(shown.code, 0, shown.stderr);
  t.regex(shown.stdout, /^q:\n  Bytes: 4 KiB \(4096 bytes\) used of 10 MiB \(0%\)\n  Files: 2 of 100 \(2%\)\n  Largest file: 5 MiB \(5242880 bytes\)\n  Measured \S+, last changed \S+\n$/);
  const json = await run(['quota', 'q', '--users', second.usersFile, '--state-dir', join(base, 'state'), '--json']);
  t.like(JSON.parse(json.stdout), { user: 'q', limits, usage: { bytes: 4 * KiB, files: 2 } });
  const missing = await run(['quota', 'nobody', '--users', second.usersFile, '--state-dir', join(base, 'state')]);
  t.is(missing.code, 1);
  t.regex(missing.stderr, /there is no user "nobody"/);
});

test('SITE QUOTA without limits, with an argument; HELP SITE lists it', async (t) => {
  const server = await startTestServer();
  t.teardown(() => server.stop());
  const raw = await RawFtp.login(server.port, 'alice', 'alice-pw');
  t.is((await raw.command('SITE QUOTA')).raw, '200 No quota or file-size limit for alice\r\n');
  t.is((await raw.command('SITE QUOTA bob')).code, 501);
  t.regex((await raw.command('HELP SITE')).raw, /SITE QUOTA: show your storage quota/);
  raw.close();
});
