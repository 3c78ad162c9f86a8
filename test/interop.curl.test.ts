import test, { type ExecutionContext } from 'ava';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodePreview, PREVIEW_LIMIT } from '../src/preview/previewFormat.js';
import { startTestServer, type TestServer } from './helpers/testServer.js';
import { requireTool, run, sha256, tempsUnder, type RunResult } from './helpers/interop.js';
import { FAMILIES, startServer, testWithClient } from './helpers/protocolFixtures.js';

/**
 * Issue 2, point 12: the real `curl` binary (Debian package "curl") against the server:
 * upload, list, SITE VIEW, download and delete, over EPSV (curl's default) and PASV.
 */

async function prepare(t: ExecutionContext): Promise<{ srv: TestServer; work: string; curl: (...args: string[]) => Promise<RunResult> }> {
  await requireTool('curl', ['--version'], 'curl');
  const srv = await startTestServer();
  const work = await mkdtemp(join(tmpdir(), 'dfos-curl-'));
  t.teardown(async () => {
    await srv.stop();
    await rm(work, { recursive: true, force: true });
  });
  const curl = (...args: string[]) => run('curl', ['--silent', '--show-error', '--max-time', '20', '--user', 'alice:alice-pw', ...args], { timeoutMs: 30_000, cwd: work });
  return { srv, work, curl };
}

/** The server reply lines curl -v printed (`< ...`), CR removed. */
function serverLines(stderr: string): string[] {
  return stderr
    .split('\n')
    .filter((l) => l.startsWith('< '))
    .map((l) => l.slice(2).replace(/\r$/, ''));
}

/** The SITE VIEW reply as curl -v showed it, from `200-VIEW` to `200 VIEW end`. */
function viewReply(stderr: string): string {
  const lines = serverLines(stderr);
  const start = lines.findIndex((l) => l.startsWith('200-VIEW '));
  const end = lines.indexOf('200 VIEW end', start);
  if (start === -1 || end === -1) throw new Error(`no SITE VIEW reply in curl output:\n${stderr}`);
  return lines.slice(start, end + 1).join('\r\n');
}

function clientCommands(stderr: string): string[] {
  return stderr
    .split('\n')
    .filter((l) => l.startsWith('> '))
    .map((l) => l.slice(2).replace(/\r$/, '').split(' ')[0]!);
}

for (const mode of ['EPSV', 'PASV'] as const) {
  test(`curl (${mode}): upload -T, list, SITE VIEW via -Q (raw reply in -v output), download, delete via -Q`, async (t) => {
    const { srv, work, curl } = await prepare(t);
    const base = `ftp://127.0.0.1:${srv.port}`;
    const modeArgs = mode === 'PASV' ? ['--disable-epsv'] : [];
    const text = Buffer.from('first line\r\nsecond\tline with ünïcode\n\nlast line without newline');
    const binary = randomBytes(300_000);
    await writeFile(join(work, 'notes.txt'), text);
    await writeFile(join(work, 'data.bin'), binary);

    // Upload.
    for (const name of ['notes.txt', 'data.bin']) {
      const up = await curl(...modeArgs, '-v', '-T', name, `${base}/${name}`);
      t.is(up.code, 0, `curl -T ${name}: ${up.stderr}`);
      const used = clientCommands(up.stderr);
      t.true(used.includes(mode), `curl used ${mode}: ${used.join(' ')}`);
      t.false(used.includes(mode === 'PASV' ? 'EPSV' : 'PASV'), `curl used only ${mode}: ${used.join(' ')}`);
      t.true(serverLines(up.stderr).some((l) => l.startsWith('226 ')), 'upload answered 226');
    }
    t.deepEqual(await readFile(join(srv.storage, 'alice', 'notes.txt')), text);
    t.deepEqual(await readFile(join(srv.storage, 'alice', 'data.bin')), binary);

    // List (LIST) and names only (NLST).
    const list = await curl(...modeArgs, `${base}/`);
    t.is(list.code, 0, list.stderr);
    const listing = list.stdout.toString('utf8');
    t.regex(listing, /notes\.txt\r?\n/);
    t.regex(listing, new RegExp(`\\b${binary.length}\\b.*data\\.bin`), `LIST shows the size: ${listing}`);
    const nlst = await curl(...modeArgs, '--list-only', `${base}/`);
    t.is(nlst.code, 0, nlst.stderr);
    t.deepEqual(nlst.stdout.toString('utf8').split(/\r?\n/).filter(Boolean).sort(), ['data.bin', 'notes.txt']);

    // SITE VIEW: the raw multi-line reply, decoded, is the file's first bytes.
    const viewText = await curl(...modeArgs, '-v', '--list-only', '-Q', 'SITE VIEW notes.txt', `${base}/`);
    t.is(viewText.code, 0, viewText.stderr);
    const textReply = viewReply(viewText.stderr);
    t.regex(textReply, /^200-VIEW text bytes=\d+ size=\d+ eol=(lf|crlf)\r\n/);
    for (const line of textReply.split('\r\n').slice(1, -1)) t.true(line.startsWith(' '), `content line starts with a space: ${JSON.stringify(line)}`);
    const decodedText = decodePreview(textReply);
    t.is(decodedText.mode, 'text');
    t.deepEqual(decodedText.bytes, text);
    t.is(decodedText.fileSize, text.length);

    const viewBin = await curl(...modeArgs, '-v', '--list-only', '-Q', 'SITE VIEW data.bin', `${base}/`);
    t.is(viewBin.code, 0, viewBin.stderr);
    const binReply = viewReply(viewBin.stderr);
    t.regex(binReply, new RegExp(`^200-VIEW hex bytes=${PREVIEW_LIMIT} size=${binary.length}\\r\\n`));
    const decodedBin = decodePreview(binReply);
    t.deepEqual(decodedBin.bytes, binary.subarray(0, PREVIEW_LIMIT));

    // SITE VIEW of a missing file makes curl's quote command fail (exit 21, QUOTE error).
    const viewMissing = await curl(...modeArgs, '--list-only', '-Q', 'SITE VIEW nope.txt', `${base}/`);
    t.is(viewMissing.code, 21, viewMissing.stderr);
    t.regex(viewMissing.stderr, /550/);

    // Download, byte for byte.
    for (const [name, expected] of [['data.bin', binary], ['notes.txt', text]] as const) {
      const down = await curl(...modeArgs, '-o', `got-${name}`, `${base}/${name}`);
      t.is(down.code, 0, down.stderr);
      t.is(sha256(await readFile(join(work, `got-${name}`))), sha256(expected), `${name} downloaded intact`);
    }
    const toStdout = await curl(...modeArgs, `${base}/data.bin`);
    t.is(sha256(toStdout.stdout), sha256(binary));

    // Delete via -Q, then the listing no longer has it.
    const del = await curl(...modeArgs, '-v', '--list-only', '-Q', 'DELE data.bin', `${base}/`);
    t.is(del.code, 0, del.stderr);
    t.true(serverLines(del.stderr).some((l) => l.startsWith('250 ')), 'DELE answered 250');
    t.deepEqual(del.stdout.toString('utf8').split(/\r?\n/).filter(Boolean), ['notes.txt'], 'the listing after DELE');
    const delAgain = await curl(...modeArgs, '--list-only', '-Q', 'DELE data.bin', `${base}/`);
    t.is(delAgain.code, 21, 'deleting a missing file fails the quote command');
    const del2 = await curl(...modeArgs, '--list-only', '-Q', 'DELE notes.txt', `${base}/`);
    t.is(del2.code, 0, del2.stderr);
    t.is(del2.stdout.toString('utf8').trim(), '');
    t.deepEqual(await tempsUnder(srv.storage), []);
  });
}

test('curl: a bad password or an unknown user gives exit code 67 (login denied)', async (t) => {
  const { srv, work } = await prepare(t);
  for (const user of ['alice:wrong-password', 'nobody:alice-pw']) {
    const r = await run('curl', ['--silent', '--show-error', '--max-time', '20', '--user', user, `ftp://127.0.0.1:${srv.port}/`], { timeoutMs: 30_000, cwd: work });
    t.is(r.code, 67, `${user}: ${r.stderr}`);
    t.regex(r.stderr, /530/);
  }
  // The right password still works afterwards.
  const ok = await run('curl', ['--silent', '--show-error', '--max-time', '20', '--user', 'alice:alice-pw', `ftp://127.0.0.1:${srv.port}/`], { timeoutMs: 30_000, cwd: work });
  t.is(ok.code, 0, ok.stderr);
});

// ---------------------------------------------------------------------------------------
// Issue 4, interop matrix: curl over IPv4 and IPv6, with EPSV, PASV (IPv4 only: PASV is
// refused over IPv6) and active mode (-P, i.e. --ftp-port: EPRT or PORT); mkdir through
// --ftp-create-dirs, upload, list, download, an interrupted download resumed with -C -,
// rename and delete through -Q, SITE VIEW through -Q.

async function prepareAt(t: ExecutionContext, host: string): Promise<{ srv: TestServer; work: string; curl: (...args: string[]) => Promise<RunResult>; base: string }> {
  await requireTool('curl', ['--version'], 'curl');
  const srv = await startServer({ config: { host } });
  const work = await mkdtemp(join(tmpdir(), 'dfos-curl-'));
  t.teardown(async () => {
    await srv.stop();
    await rm(work, { recursive: true, force: true });
  });
  const curl = (...args: string[]) => run('curl', ['--silent', '--show-error', '--max-time', '20', '--user', 'alice:alice-pw', ...args], { timeoutMs: 30_000, cwd: work });
  return { srv, work, curl, base: `ftp://${host.includes(':') ? `[${host}]` : host}:${srv.port}` };
}

/** Skipped (not failed) only with DFOS_SKIP_MISSING_CLIENTS=1 and no curl. */
const curlTest = testWithClient('curl', ['--version']);

const CURL_MODES = [
  { mode: 'EPSV', args: () => [] as string[], expect: ['EPSV'], families: ['IPv4', 'IPv6'] },
  { mode: 'PASV', args: () => ['--disable-epsv'], expect: ['PASV'], families: ['IPv4'] },
  { mode: 'active', args: (host: string) => ['-P', host], expect: ['EPRT', 'PORT'], families: ['IPv4', 'IPv6'] },
] as const;

for (const family of FAMILIES) {
  for (const m of CURL_MODES) {
    if (!(m.families as readonly string[]).includes(family.name)) continue;
    (family.available ? curlTest : test.skip)(`curl (${family.name}, ${m.mode}): --ftp-create-dirs upload, list, download, interrupted download resumed with -C -, rename, SITE VIEW and delete via -Q`, async (t) => {
      const { srv, work, curl, base } = await prepareAt(t, family.host);
      const modeArgs = [...m.args(family.host)];
      const home = join(srv.storage, 'alice');
      const text = Buffer.from('curl over the matrix\n second line\n');
      const big = randomBytes(2_000_000);
      await writeFile(join(work, 'f.txt'), text);
      await writeFile(join(work, 'big.bin'), big);

      // mkdir (two levels) + upload.
      const up = await curl(...modeArgs, '-v', '--ftp-create-dirs', '-T', 'f.txt', `${base}/dir/sub/f.txt`);
      t.is(up.code, 0, up.stderr);
      const used = clientCommands(up.stderr);
      t.true(m.expect.some((v) => used.includes(v)), `curl used ${m.expect.join('/')}: ${used.join(' ')}`);
      if (m.mode !== 'PASV') t.false(used.includes('PASV'), `no PASV: ${used.join(' ')}`);
      t.true(used.includes('MKD'), `--ftp-create-dirs sent MKD: ${used.join(' ')}`);
      t.deepEqual(await readFile(join(home, 'dir', 'sub', 'f.txt')), text);
      const upBig = await curl(...modeArgs, '-T', 'big.bin', `${base}/dir/big.bin`);
      t.is(upBig.code, 0, upBig.stderr);

      // List.
      const list = await curl(...modeArgs, `${base}/dir/sub/`);
      t.is(list.code, 0, list.stderr);
      t.regex(list.stdout.toString('utf8'), new RegExp(`\\b${text.length}\\b.*f\\.txt\\r?\\n`));

      // Download.
      const down = await curl(...modeArgs, '-o', 'got.txt', `${base}/dir/sub/f.txt`);
      t.is(down.code, 0, down.stderr);
      t.deepEqual(await readFile(join(work, 'got.txt')), text);

      // Interrupted download (only the first 700 000 bytes arrive), then resumed with -C -.
      const half = await curl(...modeArgs, '--range', '0-699999', '-o', 'big-got.bin', `${base}/dir/big.bin`);
      t.is(half.code, 0, half.stderr);
      t.is((await readFile(join(work, 'big-got.bin'))).length, 700_000);
      const resumed = await curl(...modeArgs, '-v', '-C', '-', '-o', 'big-got.bin', `${base}/dir/big.bin`);
      t.is(resumed.code, 0, resumed.stderr);
      t.true(resumed.stderr.split('\n').some((l) => l.startsWith('> REST 700000')), 'curl resumed with REST 700000');
      t.is(sha256(await readFile(join(work, 'big-got.bin'))), sha256(big), 'the resumed download is byte-exact');

      // Rename via -Q, then SITE VIEW via -Q.
      const mv = await curl(...modeArgs, '-v', '--list-only', '-Q', 'RNFR dir/sub/f.txt', '-Q', 'RNTO dir/sub/g.txt', '-Q', 'SITE VIEW dir/sub/g.txt', `${base}/dir/sub/`);
      t.is(mv.code, 0, mv.stderr);
      t.deepEqual(mv.stdout.toString('utf8').split(/\r?\n/).filter(Boolean), ['g.txt']);
      t.deepEqual(decodePreview(viewReply(mv.stderr)).bytes, text);

      // Delete via -Q (files, then the directories).
      const del = await curl(...modeArgs, '--list-only', '-Q', 'DELE dir/sub/g.txt', '-Q', 'DELE dir/big.bin', '-Q', 'RMD dir/sub', '-Q', 'RMD dir', `${base}/`);
      t.is(del.code, 0, del.stderr);
      t.is(del.stdout.toString('utf8').trim(), '');
      t.deepEqual(await readdir(home), []);
      t.deepEqual(await tempsUnder(srv.storage), []);
    });
  }
}

curlTest('curl --use-ascii (TYPE A) does not corrupt a text file, up or down', async (t) => {
  const { srv, work, curl, base } = await prepareAt(t, '127.0.0.1');
  const text = Buffer.from('line one\nline two\n\nlast line\n');
  await writeFile(join(work, 't.txt'), text);
  const up = await curl('-v', '--use-ascii', '-T', 't.txt', `${base}/t.txt`);
  t.is(up.code, 0, up.stderr);
  t.true(clientCommands(up.stderr).includes('TYPE'), 'curl switched the type');
  t.regex(up.stderr, /^> TYPE A/m);
  t.deepEqual(await readFile(join(srv.storage, 'alice', 't.txt')), text, 'stored exactly');
  const down = await curl('--use-ascii', '-o', 'back.txt', `${base}/t.txt`);
  t.is(down.code, 0, down.stderr);
  t.deepEqual(await readFile(join(work, 'back.txt')), text, 'downloaded in ASCII mode, same text');
  const bin = await curl(`${base}/t.txt`);
  t.deepEqual(bin.stdout, text, 'and in binary mode');
});
