import test, { type ExecutionContext } from 'ava';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodePreview } from '../src/preview/previewFormat.js';
import { sha256, tempsUnder } from './helpers/interop.js';
import { FAMILIES, interruptDownload, requireClient, runProgram, startProgram, startServer, testWithClient, type ProgramResult } from './helpers/protocolFixtures.js';
import type { TestServer } from './helpers/testServer.js';

/**
 * Issue 4, interop matrix: NetBSD's ftp client `tnftp` (Debian package "tnftp") in a
 * scripted session (`tnftp -n -v` reading commands from stdin) over IPv4 and IPv6:
 * login, mkdir, put, ls (LIST) and mlsd, get, an interrupted get resumed with reget,
 * rename, `quote SITE VIEW`, delete.
 */

/** tnftp has no --version: `tnftp -n -e` with an empty script (stdin /dev/null) just exits 0. */
const TNFTP_CHECK = ['-n', '-e'];
const tnftpTest = testWithClient('tnftp', TNFTP_CHECK);

async function prepare(t: ExecutionContext, host: string): Promise<{ srv: TestServer; work: string; session: (lines: string[]) => Promise<ProgramResult>; script: (lines: string[]) => string }> {
  requireClient('tnftp', TNFTP_CHECK, 'tnftp');
  const srv = await startServer({ config: { host } });
  const work = await mkdtemp(join(tmpdir(), 'dfos-tnftp-'));
  t.teardown(async () => {
    await srv.stop();
    await rm(work, { recursive: true, force: true });
  });
  const script = (lines: string[]) => [`open ${host} ${srv.port}`, 'user alice alice-pw', 'binary', ...lines, 'bye', ''].join('\n');
  const session = (lines: string[]) => runProgram('tnftp', ['-n', '-v'], { cwd: work, env: { HOME: work }, input: script(lines), timeoutMs: 40_000 });
  return { srv, work, session, script };
}

/** The reply lines (`NNN text` / `NNN-text`) tnftp printed, in order. */
function replies(stdout: string): string[] {
  return stdout.split('\n').filter((l) => /^\d{3}[ -]/.test(l));
}

for (const family of FAMILIES) {
  (family.available ? tnftpTest : test.skip)(`tnftp (${family.name}): scripted put, ls, mlsd, get, rename, quote SITE VIEW, delete`, async (t) => {
    const { srv, work, session } = await prepare(t, family.host);
    const text = Buffer.from('tnftp line one\n second line\n');
    const binary = randomBytes(5000);
    await writeFile(join(work, 'notes.txt'), text);
    await writeFile(join(work, 'data.bin'), binary);

    const r = await session([
      'mkdir tn',
      'put notes.txt tn/notes.txt',
      'put data.bin tn/data.bin',
      'ls tn',
      'mlsd tn',
      'get tn/data.bin got-data.bin',
      'get tn/notes.txt got-notes.txt',
      'quote SITE VIEW tn/notes.txt',
      'rename tn/data.bin tn/renamed.bin',
      'ls tn',
      'delete tn/renamed.bin',
      'delete tn/notes.txt',
      'rmdir tn',
    ]);
    t.is(r.code, 0, `tnftp exited with ${r.code}:\n${r.stdout}\n${r.stderr}`);
    const codes = replies(r.stdout);
    t.true(codes.includes('230 Login successful') || codes.some((l) => l.startsWith('230 ')), `login: ${codes.join(' | ')}`);
    t.true(codes.some((l) => l.startsWith('257 ')), 'mkdir answered 257');
    // Two uploads, two LISTs, one MLSD, two downloads: seven 226.
    t.is(codes.filter((l) => l.startsWith('226 ')).length, 7, `transfers completed:\n${r.stdout}`);
    if (family.name === 'IPv6') t.false(codes.some((l) => l.startsWith('227 ')), 'IPv6: no PASV');
    t.true(codes.some((l) => l.startsWith('229 ')), 'tnftp used EPSV');
    t.false(codes.some((l) => /^(4|5)\d\d /.test(l)), `no error replies:\n${codes.join('\n')}`);
    t.false(/not connected|Login failed|Connection refused/i.test(r.stdout + r.stderr), r.stdout + r.stderr);

    // Uploads on the server, downloads locally, byte for byte.
    t.is(sha256(await readFile(join(work, 'got-data.bin'))), sha256(binary));
    t.is(sha256(await readFile(join(work, 'got-notes.txt'))), sha256(text));
    // ls shows the files with their sizes; mlsd shows the facts.
    t.regex(r.stdout, /\b5000\b.*data\.bin/, 'ls lists data.bin with its size');
    t.regex(r.stdout, /type=file;size=5000;[^\n]* data\.bin/, 'mlsd lists data.bin with type and size facts');
    t.regex(r.stdout, /renamed\.bin/, 'the second ls shows the renamed file');

    // SITE VIEW: tnftp prints the raw multi-line reply.
    const lines = r.stdout.split('\n');
    const start = lines.findIndex((l) => l.startsWith('200-VIEW '));
    const end = lines.indexOf('200 VIEW end', start);
    t.true(start >= 0 && end > start, `SITE VIEW reply in the output:\n${r.stdout}`);
    t.is(decodePreview(lines.slice(start, end + 1).join('\r\n')).bytes.toString(), text.toString());

    t.deepEqual(await readdir(join(srv.storage, 'alice')), [], 'everything deleted');
    t.deepEqual(await tempsUnder(srv.storage), []);
  });

  (family.available ? tnftpTest : test.skip)(`tnftp (${family.name}): a get killed mid-way is resumed with reget, byte-exact`, async (t) => {
    const { srv, work, session, script } = await prepare(t, family.host);
    const big = randomBytes(2_000_000);
    await mkdir(join(srv.storage, 'alice'), { recursive: true });
    await writeFile(join(srv.storage, 'alice', 'big.bin'), big);
    const local = join(work, 'got.bin');
    // `rate get` throttles tnftp so the kill lands mid-transfer.
    const first = startProgram('tnftp', ['-n', '-v'], { cwd: work, env: { HOME: work }, input: script(['rate get 262144', 'get big.bin got.bin']), timeoutMs: 40_000 });
    const partial = await interruptDownload(first, local, 100_000);
    t.true(partial > 0 && partial < big.length, `interrupted after ${partial} bytes`);
    const r = await session(['reget big.bin got.bin']);
    t.is(r.code, 0, r.stdout + r.stderr);
    t.regex(r.stdout, /^350 /m, `reget sent REST (350 reply):\n${r.stdout}`);
    t.is(sha256(await readFile(local)), sha256(big), 'the resumed download is byte-exact');
  });
}
