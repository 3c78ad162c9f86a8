import test, { type ExecutionContext } from 'ava';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodePreview, PREVIEW_LIMIT } from '../src/preview/previewFormat.js';
import { startTestServer, type TestServer } from './helpers/testServer.js';
import { requireTool, run, sha256, tempsUnder, type RunResult } from './helpers/interop.js';

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
