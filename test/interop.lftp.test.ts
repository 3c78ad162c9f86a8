import test, { type ExecutionContext } from 'ava';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodePreview } from '../src/preview/previewFormat.js';
import { sha256, tempsUnder } from './helpers/interop.js';
import { FAMILIES, interruptDownload, requireClient, runProgram, startProgram, startServer, testWithClient, treeHashes, type ProgramResult } from './helpers/protocolFixtures.js';
import type { TestServer } from './helpers/testServer.js';

/**
 * Issue 4, interop matrix: the real `lftp` (Debian package "lftp") against the server over
 * IPv4 and IPv6: login in clear (`ftp:ssl-allow no`: FTPS with lftp is in ftps.test.ts; lftp sends FEAT, OPTS UTF8 ON before USER), mkdir,
 * `mirror -R` up and `mirror` back (identical trees), `cls` (MLSD), `quote SITE VIEW`,
 * an interrupted download resumed with `get -c` (REST), rename, delete.
 */

const lftpTest = testWithClient('lftp', ['--version']);

const SETTINGS = 'set ftp:ssl-allow no; set ftp:passive-mode on; set net:max-retries 1; set net:timeout 10; set net:reconnect-interval-base 1; set cmd:fail-exit yes; set xfer:clobber on';

async function prepare(t: ExecutionContext, host: string): Promise<{ srv: TestServer; work: string; lftp: (commands: string, options?: { debug?: boolean }) => Promise<ProgramResult>; url: string; env: Record<string, string> }> {
  requireClient('lftp', ['--version'], 'lftp');
  const srv = await startServer({ config: { host } });
  const work = await mkdtemp(join(tmpdir(), 'dfos-lftp-'));
  t.teardown(async () => {
    await srv.stop();
    await rm(work, { recursive: true, force: true });
  });
  const url = `ftp://${host.includes(':') ? `[${host}]` : host}:${srv.port}`;
  // lftp reads and writes its settings and history under HOME: keep it in the test's directory.
  const env = { HOME: work, XDG_CONFIG_HOME: join(work, '.config'), XDG_DATA_HOME: join(work, '.local'), XDG_CACHE_HOME: join(work, '.cache'), LFTP_HOME: join(work, '.lftp') };
  const lftp = (commands: string, options: { debug?: boolean } = {}) =>
    runProgram('lftp', [...(options.debug ? ['-d'] : []), '-c', `${SETTINGS}; open -u alice,alice-pw ${url}; ${commands}`], { cwd: work, env, timeoutMs: 40_000 });
  return { srv, work, lftp, url, env };
}

/** Splits lftp's stdout at `echo @@name` markers. */
function sections(stdout: string): Record<string, string> {
  const out: Record<string, string> = {};
  let current = '';
  for (const line of stdout.split('\n')) {
    const m = /^@@(\S+)$/.exec(line);
    if (m) {
      current = m[1]!;
      out[current] = '';
    } else if (current) out[current] += `${line}\n`;
  }
  return out;
}

/** Names printed by `cls -1` (directories lose their trailing slash), sorted. */
function names(text: string | undefined): string[] {
  return (text ?? '').split('\n').filter(Boolean).map((l) => l.replace(/\/$/, '').split('/').pop()!).sort();
}

/** The commands lftp sent (from `-d` output: `---> VERB ...`). */
function sent(stderr: string): string[] {
  return stderr
    .split('\n')
    .map((l) => /^---> (\S+)/.exec(l.replace(/\r$/, ''))?.[1]?.toUpperCase())
    .filter((v): v is string => Boolean(v));
}

for (const family of FAMILIES) {
  (family.available ? lftpTest : test.skip)(`lftp (${family.name}): mkdir, mirror -R up, cls (MLSD), quote SITE VIEW, mirror back (identical trees), mv, rm`, async (t) => {
    const { srv, work, lftp } = await prepare(t, family.host);
    const up = join(work, 'up');
    await mkdir(join(up, 'sub', 'deeper'), { recursive: true });
    await writeFile(join(up, 'a.txt'), 'alpha line\n  indented line\nlast\n');
    await writeFile(join(up, 'empty.txt'), '');
    await writeFile(join(up, 'name with spaces.txt'), 'spaces\n');
    await writeFile(join(up, 'sub', 'b.bin'), randomBytes(4000));
    await writeFile(join(up, 'sub', 'deeper', 'c.txt'), 'deep\n');

    const r = await lftp(
      [
        'mkdir -p tree',
        'mirror -R up tree',
        'echo @@cls',
        'cls -1 tree',
        'echo @@clsl',
        'cls -l tree/sub',
        'echo @@view',
        'quote SITE VIEW tree/a.txt',
        'echo @@end',
        'mirror tree down',
      ].join('; '),
      { debug: true },
    );
    t.is(r.code, 0, `lftp failed:\n${r.stdout}\n${r.stderr.slice(-4000)}`);
    const out = sections(r.stdout);
    const verbs = sent(r.stderr);
    t.true(verbs.includes('MLSD'), `lftp lists with MLSD when the server offers MLST: ${[...new Set(verbs)].join(' ')}`);
    t.false(verbs.includes('LIST'), `and never falls back to LIST: ${[...new Set(verbs)].join(' ')}`);
    if (family.name === 'IPv6') t.true(verbs.includes('EPSV') && !verbs.includes('PASV'), `IPv6: EPSV, never PASV: ${[...new Set(verbs)].join(' ')}`);
    else t.true(verbs.includes('PASV') || verbs.includes('EPSV'), `passive mode: ${[...new Set(verbs)].join(' ')}`);

    const expected = await treeHashes(up);
    t.deepEqual(await treeHashes(join(srv.storage, 'alice', 'tree')), expected, 'mirror -R uploaded an identical tree');
    t.deepEqual(await treeHashes(join(work, 'down')), expected, 'mirror back gives an identical tree (sha256 of each file)');

    t.deepEqual(names(out.cls), ['a.txt', 'empty.txt', 'name with spaces.txt', 'sub'], `cls -1: ${out.cls}`);
    t.regex(out.clsl ?? '', /\b4000\b.*b\.bin/, `cls -l shows the size: ${out.clsl}`);
    t.regex(out.clsl ?? '', /deeper/);

    // lftp prints the multi-line reply without the leading space of each content line.
    const viewLines = (out.view ?? '').replace(/\n$/, '').split('\n');
    t.regex(viewLines[0] ?? '', /^200-VIEW text bytes=\d+ size=\d+ eol=lf$/, out.view);
    t.is(viewLines.at(-1), '200 VIEW end');
    const rebuilt = [viewLines[0], ...viewLines.slice(1, -1).map((l) => ` ${l}`), viewLines.at(-1)].join('\r\n');
    t.is(decodePreview(rebuilt).bytes.toString(), 'alpha line\n  indented line\nlast\n', 'SITE VIEW through quote shows the file');

    // Rename and delete.
    const r2 = await lftp(['mv tree/a.txt tree/renamed.txt', 'echo @@afterMv', 'cls -1 tree', 'rm tree/renamed.txt', 'rm -r tree/sub', 'echo @@afterRm', 'cls -1 tree'].join('; '));
    t.is(r2.code, 0, `lftp failed:\n${r2.stdout}\n${r2.stderr.slice(-4000)}`);
    const out2 = sections(r2.stdout);
    t.deepEqual(names(out2.afterMv), ['empty.txt', 'name with spaces.txt', 'renamed.txt', 'sub']);
    t.deepEqual(names(out2.afterRm), ['empty.txt', 'name with spaces.txt']);
    t.deepEqual((await readdir(join(srv.storage, 'alice', 'tree'))).sort(), ['empty.txt', 'name with spaces.txt']);
    t.deepEqual(await tempsUnder(srv.storage), []);
  });

  (family.available ? lftpTest : test.skip)(`lftp (${family.name}): a download killed mid-way is resumed with get -c (REST), byte-exact`, async (t) => {
    const { srv, work, url, env, lftp } = await prepare(t, family.host);
    const big = randomBytes(2_000_000);
    await mkdir(join(srv.storage, 'alice'), { recursive: true });
    await writeFile(join(srv.storage, 'alice', 'big.bin'), big);
    const local = join(work, 'got.bin');
    // Rate-limited so the kill lands mid-transfer.
    const first = startProgram('lftp', ['-c', `${SETTINGS}; set net:limit-rate 262144; open -u alice,alice-pw ${url}; get big.bin -o got.bin`], { cwd: work, env, timeoutMs: 40_000 });
    const partial = await interruptDownload(first, local, 100_000);
    t.true(partial > 0 && partial < big.length, `interrupted after ${partial} bytes`);
    const r = await lftp('get -c big.bin -o got.bin', { debug: true });
    t.is(r.code, 0, r.stderr.slice(-3000));
    const rest = /^---> REST (\d+)/m.exec(r.stderr);
    t.truthy(rest, `lftp resumed with REST: ${sent(r.stderr).join(' ')}`);
    t.true(Number(rest?.[1]) > 0, `REST offset ${rest?.[1]}`);
    t.is(sha256(await readFile(local)), sha256(big), 'the resumed download is byte-exact');
    t.is((await stat(local)).size, big.length);
  });
}
