import test, { type ExecutionContext } from 'ava';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { tempsUnder } from './helpers/interop.js';
import { FAMILIES, requireClient, runProgram, startServer, testWithClient, treeHashes, treeMtimes, writeInteropTree, type ProgramResult } from './helpers/protocolFixtures.js';
import type { TestServer } from './helpers/testServer.js';

/**
 * Issue 9, interop matrix: `rclone` (Debian package "rclone") with its FTP backend
 * configured from the environment (RCLONE_FTP_*, remote `:ftp:`), over IPv4 and IPv6:
 * `rclone sync` a tree up (nested directories, text and binary files), `rclone sync` it
 * back down, `rclone check --download` (byte for byte) says identical, and modification
 * times are kept both ways: rclone sets them with MFMT after each upload (its FTP library
 * offers that when FEAT lists MFMT) and reads them from MLSD's modify fact, so a second
 * sync up copies nothing.
 *
 * Passive only: rclone's FTP backend (github.com/jlaffaye/ftp) has no active mode; it
 * uses EPSV, or PASV with --ftp-disable-epsv (both tested; PASV over IPv4 only). IPv6: rclone 1.60 (Debian 12)
 * joins host and port without brackets, so the host is given as `[::1]`.
 */

const rcloneTest = testWithClient('rclone', ['version']);

/** rclone's obscured form of "alice-pw" (RCLONE_FTP_PASS must be obscured). */
async function obscure(password: string): Promise<string> {
  const r = await runProgram('rclone', ['obscure', password], { timeoutMs: 20_000 });
  if (r.code !== 0) throw new Error(`rclone obscure failed: ${r.stderr}`);
  return r.stdout.trim();
}

async function prepare(t: ExecutionContext, host: string): Promise<{ srv: TestServer; work: string; rclone: (...args: string[]) => Promise<ProgramResult> }> {
  requireClient('rclone', ['version'], 'rclone');
  const srv = await startServer({ config: { host } });
  const work = await mkdtemp(join(tmpdir(), 'dfos-rclone-'));
  t.teardown(async () => {
    await srv.stop();
    await rm(work, { recursive: true, force: true });
  });
  const env = {
    HOME: work,
    XDG_CONFIG_HOME: join(work, '.config'),
    XDG_CACHE_HOME: join(work, '.cache'),
    RCLONE_FTP_HOST: host.includes(':') ? `[${host}]` : host,
    RCLONE_FTP_PORT: String(srv.port),
    RCLONE_FTP_USER: 'alice',
    RCLONE_FTP_PASS: await obscure('alice-pw'),
  };
  const rclone = (...args: string[]) =>
    runProgram('rclone', ['--config', '/dev/null', '--retries', '1', '--low-level-retries', '1', '--contimeout', '10s', '--timeout', '20s', ...args], { cwd: work, env, timeoutMs: 60_000 });
  return { srv, work, rclone };
}

/** The verbs rclone sent (from `--dump headers` output: `FTP Tx: "VERB ..."`). */
function sent(stderr: string): string[] {
  return [...stderr.matchAll(/FTP Tx: "(\S+?)[ "]/g)].map((m) => m[1]!.toUpperCase());
}

/** Relative paths rclone reported as copied (`INFO  : path: Copied (new|replaced ...)`). */
function copied(stderr: string): string[] {
  return [...stderr.matchAll(/INFO\s+: (.+?): Copied \(/g)].map((m) => m[1]!).sort();
}

const MODES = [
  { mode: 'EPSV', args: [] as string[], families: ['IPv4', 'IPv6'] },
  // PASV carries only IPv4 addresses (the server refuses it over IPv6).
  { mode: 'PASV', args: ['--ftp-disable-epsv'], families: ['IPv4'] },
] as const;

for (const family of FAMILIES) {
  for (const m of MODES) {
    if (!(m.families as readonly string[]).includes(family.name)) continue;
    (family.available ? rcloneTest : test.skip)(`rclone (${family.name}, passive ${m.mode}): sync up, sync down, check --download identical, mtimes kept both ways (MFMT, MLSD), a second sync copies nothing`, async (t) => {
      const { srv, work, rclone: run } = await prepare(t, family.host);
      const rclone = (...args: string[]) => run(...m.args, ...args);
      const up = join(work, 'up');
      const times = await writeInteropTree(up);
      const expected = await treeHashes(up);

      // Up: into a directory that does not exist yet.
      const r1 = await rclone('sync', up, ':ftp:tree', '-v', '--dump', 'headers');
      t.is(r1.code, 0, `rclone sync up failed:\n${r1.stderr.slice(-4000)}`);
      const verbs = sent(r1.stderr);
      const verbSet = [...new Set(verbs)].join(' ');
      t.deepEqual(copied(r1.stderr), Object.keys(expected).sort(), 'every file copied');
      t.true(verbs.includes('MLSD'), `rclone lists with MLSD: ${verbSet}`);
      const other = m.mode === 'EPSV' ? 'PASV' : 'EPSV';
      t.true(verbs.includes(m.mode), `passive mode with ${m.mode}: ${verbSet}`);
      t.false(verbs.includes(other) || verbs.includes('PORT') || verbs.includes('EPRT'), `only ${m.mode}: ${verbSet}`);
      t.is(verbs.filter((v) => v === 'STOR').length, Object.keys(expected).length, `one STOR per file: ${verbSet}`);
      t.is(verbs.filter((v) => v === 'MFMT').length, Object.keys(expected).length, `one MFMT per file: ${verbSet}`);
      // rclone transfers over several connections at once, and two of them may both create
      // the same directory (the second MKD gets 550 "Already exists", which rclone accepts);
      // it also lists the target before creating it (550 "No such file or directory").
      const errors = [...r1.stderr.matchAll(/FTP Rx: "(5\d\d [^"]*)"/g)].map((m) => m[1]!).filter((l) => !/Already exists$|No such file or directory$/.test(l));
      t.deepEqual(errors, [], 'no other 5xx reply');

      const onServer = join(srv.storage, 'alice', 'tree');
      t.deepEqual(await treeHashes(onServer), expected, 'the uploaded tree is identical on the server disk');
      t.deepEqual(await treeMtimes(onServer), times, 'the uploaded files keep the local modification times (to the second)');

      // Down, into another directory.
      const down = join(work, 'down');
      const r2 = await rclone('sync', ':ftp:tree', down, '-v');
      t.is(r2.code, 0, `rclone sync down failed:\n${r2.stderr.slice(-4000)}`);
      t.deepEqual(await treeHashes(down), expected, 'the downloaded tree is identical');
      t.deepEqual(await treeMtimes(down), times, 'the downloaded files carry the modification times from MLSD');

      // check: --download compares contents byte for byte (FTP has no hashes).
      const c1 = await rclone('check', '--download', up, ':ftp:tree');
      t.is(c1.code, 0, `rclone check --download:\n${c1.stderr}`);
      t.regex(c1.stderr, /0 differences found/);
      t.regex(c1.stderr, new RegExp(`${Object.keys(expected).length} matching files`));
      const c2 = await rclone('check', up, down);
      t.is(c2.code, 0, `rclone check up down:\n${c2.stderr}`);
      t.regex(c2.stderr, /0 differences found/);

      // Sizes and times match, so a second sync transfers nothing.
      const r3 = await rclone('sync', up, ':ftp:tree', '-v', '--dump', 'headers');
      t.is(r3.code, 0, r3.stderr.slice(-4000));
      t.deepEqual(copied(r3.stderr), [], `nothing copied the second time:\n${r3.stderr.slice(-4000)}`);
      t.false(sent(r3.stderr).includes('STOR'), 'no STOR the second time');
      t.deepEqual(await tempsUnder(srv.storage), []);
    });
  }
}
