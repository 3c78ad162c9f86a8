import test, { type ExecutionContext } from 'ava';
import { randomBytes } from 'node:crypto';
import { cp, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sha256 } from './helpers/interop.js';
import { FAMILIES, requireClient, runProgram, startServer, testWithClient, treeHashes, writeInteropTree, type ProgramResult } from './helpers/protocolFixtures.js';
import type { TestServer } from './helpers/testServer.js';

/**
 * Issue 9, interop matrix: GNU `wget` (Debian package "wget") over IPv4 and IPv6, in
 * passive mode (its default: PASV over IPv4, EPSV over IPv6) and active mode
 * (--no-passive-ftp: PORT over IPv4, EPRT over IPv6): an `ftp://` download of one binary
 * file, byte-exact, and a recursive download (`wget -r -nH`, which lists each directory
 * with LIST and parses the Unix-style listing) of a small tree, compared file by file.
 */

const wgetTest = testWithClient('wget', ['--version']);

async function prepare(t: ExecutionContext, host: string): Promise<{ srv: TestServer; work: string; home: string; wget: (args: string[], cwd?: string) => Promise<ProgramResult> }> {
  requireClient('wget', ['--version'], 'wget');
  const srv = await startServer({ config: { host } });
  const work = await mkdtemp(join(tmpdir(), 'dfos-wget-'));
  t.teardown(async () => {
    await srv.stop();
    await rm(work, { recursive: true, force: true });
  });
  const home = join(srv.storage, 'alice');
  await mkdir(home, { recursive: true });
  // No wgetrc (--no-config), one try, bounded network waits and run time; HOME in the test's directory.
  const wget = (args: string[], cwd = work) => runProgram('wget', ['--no-config', '--tries=1', '--timeout=20', ...args], { cwd, env: { HOME: work }, timeoutMs: 60_000 });
  return { srv, work, home, wget };
}

/** The verbs wget sent (from `-d` output: `--> VERB ...`). */
function sent(stderr: string): string[] {
  return [...stderr.matchAll(/^--> (\S+)/gm)].map((m) => m[1]!.toUpperCase());
}

const MODES = [
  { mode: 'passive', args: [] as string[], expect: { IPv4: 'PASV', IPv6: 'EPSV' } },
  { mode: 'active', args: ['--no-passive-ftp'], expect: { IPv4: 'PORT', IPv6: 'EPRT' } },
] as const;

for (const family of FAMILIES) {
  for (const m of MODES) {
    (family.available ? wgetTest : test.skip)(`wget (${family.name}, ${m.mode}): one file byte-exact, recursive download (-r, LIST) of a tree identical`, async (t) => {
      const { srv, work, home, wget } = await prepare(t, family.host);
      const base = `ftp://alice:alice-pw@${family.urlHost}:${srv.port}`;
      const verb = m.expect[family.name];
      const others = ['PASV', 'EPSV', 'PORT', 'EPRT'].filter((v) => v !== verb);

      // One file, into a file of another name.
      const big = randomBytes(1_500_000);
      await writeFile(join(home, 'big.bin'), big);
      const one = await wget([...m.args, '-d', '-O', 'got.bin', `${base}/big.bin`]);
      t.is(one.code, 0, `wget failed:\n${one.stderr.slice(-4000)}`);
      const verbs = sent(one.stderr);
      t.true(verbs.includes(verb), `wget used ${verb}: ${verbs.join(' ')}`);
      t.false(others.some((v) => verbs.includes(v)), `and only ${verb}: ${verbs.join(' ')}`);
      t.true(verbs.includes('RETR'), verbs.join(' '));
      t.is(sha256(await readFile(join(work, 'got.bin'))), sha256(big), 'the download is byte-exact');

      // A tree, recursively: wget CWDs into each directory, LISTs it, RETRs each file.
      const src = join(work, 'src');
      await writeInteropTree(src);
      await cp(src, join(home, 'tree'), { recursive: true });
      const mirror = join(work, 'mirror');
      await mkdir(mirror);
      const rec = await wget([...m.args, '-d', '-r', '-nH', `${base}/tree/`], mirror);
      t.is(rec.code, 0, `wget -r failed:\n${rec.stderr.slice(-4000)}`);
      const recVerbs = sent(rec.stderr);
      t.true(recVerbs.includes('LIST'), `wget -r lists with LIST: ${[...new Set(recVerbs)].join(' ')}`);
      t.false(others.some((v) => recVerbs.includes(v)), `only ${verb}: ${[...new Set(recVerbs)].join(' ')}`);
      t.deepEqual(await treeHashes(join(mirror, 'tree')), await treeHashes(src), 'the recursive download is identical, file by file');
      t.deepEqual(await readdir(mirror), ['tree'], 'nothing else downloaded (no .listing left: wget removes them)');
    });
  }
}
