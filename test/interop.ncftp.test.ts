import type { ExecutionContext } from 'ava';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { tempsUnder } from './helpers/interop.js';
import { requireClient, runProgram, startServer, testWithClient, treeHashes, treeMtimes, writeInteropTree, type ProgramResult } from './helpers/protocolFixtures.js';
import type { TestServer } from './helpers/testServer.js';

/**
 * Issue 9, interop matrix: NcFTP's command-line tools `ncftpput` and `ncftpget` (Debian
 * package "ncftp") in passive mode (-F, their default: PASV) and active mode (-E: PORT):
 * `ncftpput -m` of one file and `ncftpput -R` of a tree, `ncftpget` and `ncftpget -R` of
 * both back, byte-exact. NcFTP keeps modification times both ways: ncftpput sends MFMT
 * after each STOR (the server lists MFMT in FEAT) and ncftpget asks MDTM before each RETR;
 * both are checked to the second.
 *
 * IPv4 only: LibNcFTP 3.2.6 (Debian 12) resolves hosts with gethostbyname and has no IPv6
 * ("::1: unknown host."). `ncftpget -R` is run with -T: by default it first tries to fetch
 * `<dir>.tar` (a server-side tar some old servers offer), which DFOS answers 550, and then
 * falls back to listing the tree, leaving tar's "does not look like a tar archive" on stderr.
 */

/** ncftpput/ncftpget have no version flag: -h prints the usage and exits 8. */
const NCFTP_CHECK = ['-h'];
const NCFTP_OK = [8];
const ncftpTest = testWithClient('ncftpput', NCFTP_CHECK, NCFTP_OK);

async function prepare(t: ExecutionContext): Promise<{ srv: TestServer; work: string; ncftp: (program: 'ncftpput' | 'ncftpget', args: string[]) => Promise<ProgramResult & { log: string }> }> {
  requireClient('ncftpput', NCFTP_CHECK, 'ncftp', NCFTP_OK);
  requireClient('ncftpget', NCFTP_CHECK, 'ncftp', NCFTP_OK);
  const srv = await startServer({ config: { host: '127.0.0.1' } });
  const work = await mkdtemp(join(tmpdir(), 'dfos-ncftp-'));
  t.teardown(async () => {
    await srv.stop();
    await rm(work, { recursive: true, force: true });
  });
  let runs = 0;
  // -t: NcFTP's own network timeout; -V: no progress meter; -d: the session log (commands
  // and replies; NcFTP masks the password) in a file; HOME for its ~/.ncftp.
  const ncftp = async (program: 'ncftpput' | 'ncftpget', args: string[]) => {
    const logFile = join(work, `${program}-${++runs}.log`);
    const r = await runProgram(program, ['-t', '20', '-V', '-d', logFile, '-u', 'alice', '-p', 'alice-pw', '-P', String(srv.port), ...args], { cwd: work, env: { HOME: work }, timeoutMs: 60_000 });
    const log = await readFile(logFile, 'utf8').catch(() => '');
    return { ...r, log };
  };
  return { srv, work, ncftp };
}

/** The commands NcFTP sent (from its -d log: `<date> <time>  Cmd: VERB ...`). */
function sent(log: string): string[] {
  return [...log.matchAll(/ Cmd: (\S+)/g)].map((m) => m[1]!.toUpperCase());
}

/** The 4xx/5xx replies of an NcFTP -d log, each as `NNN: text` (with the reply's text). */
function errorReplies(log: string): string[] {
  return [...log.matchAll(/^\S+ \S+\s+([45]\d\d: .*)$/gm)].map((m) => m[1]!);
}

const MODES = [
  { mode: 'passive', flag: '-F', verb: 'PASV', other: 'PORT' },
  { mode: 'active', flag: '-E', verb: 'PORT', other: 'PASV' },
] as const;

for (const m of MODES) {
  ncftpTest(`ncftp (IPv4, ${m.mode} ${m.flag}): ncftpput a file and a tree (-R), ncftpget them back, byte-exact, modification times kept (MFMT up, MDTM down)`, async (t) => {
    const { srv, work, ncftp } = await prepare(t);
    const src = join(work, 'src');
    const times = await writeInteropTree(src);
    const expected = await treeHashes(src);
    const home = join(srv.storage, 'alice');

    // One file, into a directory ncftpput creates (-m).
    const put1 = await ncftp('ncftpput', [m.flag, '-m', '127.0.0.1', '/nc/one', join(src, 'sub', 'b.bin')]);
    t.is(put1.code, 0, `ncftpput failed:\n${put1.stdout}${put1.stderr}\n${put1.log.slice(-3000)}`);
    const verbs1 = sent(put1.log);
    t.true(verbs1.includes(m.verb) && !verbs1.includes(m.other), `ncftpput used ${m.verb}: ${verbs1.join(' ')}`);
    t.true(verbs1.includes('MKD') && verbs1.includes('STOR') && verbs1.includes('MFMT'), `MKD, STOR, MFMT: ${verbs1.join(' ')}`);
    t.regex(put1.log, /213: Modify=20191231235958; \/nc\/one\/b\.bin/, 'MFMT answered 213 with the time set');
    t.deepEqual(await treeHashes(join(home, 'nc', 'one')), { 'b.bin': expected['sub/b.bin'] });
    t.deepEqual(await treeMtimes(join(home, 'nc', 'one')), { 'b.bin': times['sub/b.bin'] }, 'the uploaded file keeps its time');

    // A tree (-R): ncftpput creates `src` under /nc and everything below it.
    const put2 = await ncftp('ncftpput', [m.flag, '-R', '-m', '127.0.0.1', '/nc', src]);
    t.is(put2.code, 0, `ncftpput -R failed:\n${put2.stdout}${put2.stderr}\n${put2.log.slice(-3000)}`);
    const verbs2 = sent(put2.log);
    t.false(verbs2.includes(m.other), `ncftpput -R used only ${m.verb}: ${[...new Set(verbs2)].join(' ')}`);
    t.is(verbs2.filter((v) => v === 'MFMT').length, Object.keys(expected).length, `one MFMT per file: ${[...new Set(verbs2)].join(' ')}`);
    t.deepEqual(await treeHashes(join(home, 'nc', 'src')), expected, 'the uploaded tree is identical on the server disk');
    t.deepEqual(await treeMtimes(join(home, 'nc', 'src')), times, 'the uploaded files keep their modification times');

    // Back: the file, then the tree.
    const down = join(work, 'down');
    await mkdir(down);
    const get1 = await ncftp('ncftpget', [m.flag, '127.0.0.1', down, '/nc/one/b.bin']);
    t.is(get1.code, 0, `ncftpget failed:\n${get1.stdout}${get1.stderr}\n${get1.log.slice(-3000)}`);
    const verbs3 = sent(get1.log);
    t.true(verbs3.includes(m.verb) && !verbs3.includes(m.other), `ncftpget used ${m.verb}: ${verbs3.join(' ')}`);
    t.true(verbs3.includes('RETR'), verbs3.join(' '));
    t.deepEqual(await treeHashes(down), { 'b.bin': expected['sub/b.bin'] }, 'the downloaded file is byte-exact');
    t.deepEqual(await treeMtimes(down), { 'b.bin': times['sub/b.bin'] }, 'and carries the time from MDTM');

    const get2 = await ncftp('ncftpget', [m.flag, '-R', '-T', '127.0.0.1', down, '/nc/src']);
    t.is(get2.code, 0, `ncftpget -R failed:\n${get2.stdout}${get2.stderr}\n${get2.log.slice(-3000)}`);
    const verbs4 = sent(get2.log);
    t.false(verbs4.includes(m.other), `ncftpget -R used only ${m.verb}: ${[...new Set(verbs4)].join(' ')}`);
    t.true(verbs4.includes('MLSD'), `ncftpget -R walks the tree with MLSD: ${[...new Set(verbs4)].join(' ')}`);
    t.is(verbs4.filter((v) => v === 'MDTM').length, Object.keys(expected).length, `one MDTM per file: ${[...new Set(verbs4)].join(' ')}`);
    t.deepEqual(await treeHashes(join(down, 'src')), expected, 'the downloaded tree is identical');
    t.deepEqual(await treeMtimes(join(down, 'src')), times, 'the downloaded files keep the modification times');
    // NcFTP announces itself with CLNT (not a standard command: 502); nothing else fails.
    t.deepEqual(errorReplies(get2.log).filter((l) => !/ CLNT$/.test(l)), [], `no other error reply while downloading the tree:\n${get2.log.slice(-3000)}`);
    t.deepEqual(await tempsUnder(srv.storage), []);
  });
}
