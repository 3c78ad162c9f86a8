import test from 'ava';
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { renderHexDump } from '../src/preview/previewFormat.js';
import { closedPort, runCli, sameBytes, tempDir, type CliRun } from './helpers/clientFixtures.js';
import { startTestServer, type TestServer } from './helpers/testServer.js';

// The CLI is tested as built (package.json's test script builds dist/ before ava runs).
const CLI = fileURLToPath(new URL('../dist/cli.js', import.meta.url));
const HAS_SCRIPT = spawnSync('script', ['--version'], { stdio: 'ignore' }).status === 0;

test.before(() => {
  if (!existsSync(CLI)) throw new Error('dist/cli.js is missing; run `npx tsc -p tsconfig.json` first');
});

function envFor(srv: TestServer, user = 'alice', password = `${user}-pw`): Record<string, string> {
  return { DFOS_URL: `ftp://${user}@${srv.host}:${srv.port}`, DFOS_PASSWORD: password };
}

/** Exactly one line on stderr, starting with "dfos: ". */
function oneLine(t: { is: (a: unknown, b: unknown, m?: string) => void }, run: CliRun): string {
  const lines = run.stderr.split('\n').filter((l) => l !== '');
  t.is(lines.length, 1, `stderr: ${JSON.stringify(run.stderr)}`);
  t.is(lines[0]?.startsWith('dfos: '), true, run.stderr);
  return lines[0] ?? '';
}

test('put, ls --json, view, view --hex, get, mv, mkdir, rm end to end', async (t) => {
  const srv = await startTestServer();
  t.teardown(() => srv.stop());
  const dir = await tempDir(t);
  const env = envFor(srv);
  const run = (...args: string[]) => runCli(CLI, args, { env, cwd: dir });
  const binary = Buffer.concat([Buffer.from('\0\x01\xff\r\n\x1b text '), randomBytes(600)]);
  await writeFile(join(dir, 'data.bin'), binary);
  await writeFile(join(dir, 'notes.txt'), 'first\r\nsecond\tline\nno newline at the end');

  let r = await run('put', 'data.bin');
  t.is(r.code, 0, r.stderr);
  t.is(r.stderr, '');
  t.is(r.stdout.length, 0);
  r = await run('mkdir', 'docs');
  t.is(r.code, 0, r.stderr);
  r = await run('put', 'notes.txt', 'docs/');
  t.is(r.code, 0, r.stderr);
  t.deepEqual(await readFile(join(srv.storage, 'alice', 'docs', 'notes.txt')), await readFile(join(dir, 'notes.txt')));

  r = await run('ls', '--json');
  t.is(r.code, 0, r.stderr);
  const entries = JSON.parse(r.stdout.toString()) as { name: string; type: string; size: number; modifiedAt: string }[];
  t.deepEqual(
    entries.map((e) => [e.name, e.type, e.size]),
    [
      ['data.bin', 'file', binary.length],
      ['docs', 'directory', entries.find((e) => e.name === 'docs')!.size],
    ],
  );
  t.false(Number.isNaN(Date.parse(entries[0]!.modifiedAt)));
  r = await run('ls', 'docs');
  t.is(r.code, 0, r.stderr);
  t.regex(r.stdout.toString(), /^- +\d+ {2}\d{4}-\d\d-\d\d \d\d:\d\d {2}notes\.txt\n$/);

  r = await run('view', 'data.bin');
  t.is(r.code, 0, r.stderr);
  t.deepEqual(r.stdout, binary, 'view writes the raw bytes, unchanged');
  t.is(r.stderr, '');
  r = await run('view', 'docs/notes.txt');
  t.deepEqual(r.stdout, await readFile(join(dir, 'notes.txt')));
  r = await run('view', '--hex', 'data.bin');
  t.is(r.stdout.toString(), renderHexDump(binary).map((l) => l + '\n').join(''));

  r = await run('get', 'data.bin', 'copy.bin');
  t.is(r.code, 0, r.stderr);
  t.deepEqual(await readFile(join(dir, 'copy.bin')), binary);
  await mkdir(join(dir, 'into'));
  r = await run('get', 'docs/notes.txt', 'into');
  t.is(r.code, 0, r.stderr);
  t.deepEqual(await readFile(join(dir, 'into', 'notes.txt')), await readFile(join(dir, 'notes.txt')));

  r = await run('mv', 'data.bin', 'docs/moved.bin');
  t.is(r.code, 0, r.stderr);
  r = await run('ls', '--json', 'docs');
  t.deepEqual((JSON.parse(r.stdout.toString()) as { name: string }[]).map((e) => e.name), ['moved.bin', 'notes.txt']);
  for (const path of ['docs/moved.bin', 'docs/notes.txt']) {
    r = await run('rm', path);
    t.is(r.code, 0, r.stderr);
  }
  r = await run('rm', '--dir', 'docs');
  t.is(r.code, 0, r.stderr);
  r = await run('ls', '--json');
  t.deepEqual(JSON.parse(r.stdout.toString()), []);
  t.deepEqual((await readdir(dir)).sort(), ['copy.bin', 'data.bin', 'into', 'notes.txt']);
});

test('exit code 1: remote failures name the path and the reason; a failed get leaves no file', async (t) => {
  const srv = await startTestServer({ users: [{ name: 'alice', password: 'alice-pw' }, { name: 'ro', password: 'ro-pw', readOnly: true }] });
  t.teardown(() => srv.stop());
  const dir = await tempDir(t);
  const env = envFor(srv);
  const run = (args: string[], e = env) => runCli(CLI, args, { env: e, cwd: dir });

  let r = await run(['get', 'missing.txt']);
  t.is(r.code, 1);
  t.regex(oneLine(t, r), /missing\.txt.*No such file or directory/);
  t.deepEqual(await readdir(dir), [], 'no local file, no temporary');
  await writeFile(join(dir, 'a.txt'), 'a');
  const cases: [string[], Record<string, string>, RegExp][] = [
    [['view', 'missing.txt'], env, /missing\.txt.*No such file or directory/],
    [['rm', 'missing.txt'], env, /missing\.txt.*No such file or directory/],
    [['mv', 'missing.txt', 'x'], env, /missing\.txt.*No such file or directory/],
    [['ls', 'missing.txt'], env, /missing\.txt.*No such file or directory/],
    [['put', 'a.txt'], envFor(srv, 'ro'), /a\.txt.*Permission denied/],
    [['mkdir', 'x/y'], env, /x\/y.*No such file or directory/],
    [['put', 'no-such-local-file.txt'], env, /no-such-local-file\.txt.*no such file/],
  ];
  // Independent runs, started together to keep the test short on a loaded machine.
  const runs = await Promise.all(cases.map(([args, e]) => run(args, e)));
  runs.forEach((res, i) => {
    const [args, , pattern] = cases[i]!;
    t.is(res.code, 1, `${args.join(' ')}: ${res.stderr}`);
    t.regex(oneLine(t, res), pattern, args.join(' '));
  });
});

test('exit code 2: usage errors (missing argument, no URL, bad URL, no password without a terminal)', async (t) => {
  const srv = await startTestServer();
  t.teardown(() => srv.stop());
  const dir = await tempDir(t);
  const cases: [string[], Record<string, string>, RegExp][] = [
    [['get'], envFor(srv), /missing required argument/],
    [['mv', 'a'], envFor(srv), /missing required argument/],
    [['ls'], { DFOS_PASSWORD: 'x' }, /no server given.*--url/],
    [['ls', '--url', 'http://alice@127.0.0.1:21'], { DFOS_PASSWORD: 'x' }, /--url must start with ftp:\/\//],
    [['ls'], { DFOS_URL: 'ftp://127.0.0.1:21', DFOS_PASSWORD: 'x' }, /DFOS_URL has no user name/],
    [['ls', '--url', 'not a url'], {}, /--url is not a URL/],
    [['ls', '--url', 'ftp://alice:topsecret@h:21/some/path'], {}, /must not contain a path.*alice:\*\*\*@/],
    [['ls'], { DFOS_URL: `ftp://alice@${srv.host}:${srv.port}` }, /no password for alice: set DFOS_PASSWORD/],
    [['view', 'x', '--bogus'], envFor(srv), /unknown option/],
  ];
  const runs = await Promise.all(cases.map(([args, env]) => runCli(CLI, args, { env, cwd: dir })));
  runs.forEach((r, i) => {
    const [args, , pattern] = cases[i]!;
    t.is(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    const line = oneLine(t, r);
    t.regex(line, pattern);
    t.notRegex(line, /topsecret/);
  });
});

test('exit code 3: wrong password, unknown user, connection refused', async (t) => {
  const srv = await startTestServer();
  t.teardown(() => srv.stop());
  const dir = await tempDir(t);
  let r = await runCli(CLI, ['ls'], { env: envFor(srv, 'alice', 'wrong'), cwd: dir });
  t.is(r.code, 3);
  t.regex(oneLine(t, r), /login as alice .*530/);
  r = await runCli(CLI, ['ls'], { env: envFor(srv, 'nobody', 'x'), cwd: dir });
  t.is(r.code, 3);
  const port = await closedPort();
  r = await runCli(CLI, ['put', 'x'], { env: { DFOS_URL: `ftp://alice@127.0.0.1:${port}`, DFOS_PASSWORD: 'x' }, cwd: dir });
  // The local file is checked first (exit 1); with a real file the connection is tried.
  t.is(r.code, 1);
  await writeFile(join(dir, 'x'), 'x');
  r = await runCli(CLI, ['put', 'x'], { env: { DFOS_URL: `ftp://alice@127.0.0.1:${port}`, DFOS_PASSWORD: 'x' }, cwd: dir });
  t.is(r.code, 3);
  t.regex(oneLine(t, r), /ECONNREFUSED/);
});

test('password: from the URL (percent-decoded), from DFOS_PASSWORD; the URL wins', async (t) => {
  const srv = await startTestServer({ users: [{ name: 'alice', password: 'p@ss:w/rd' }] });
  t.teardown(() => srv.stop());
  const dir = await tempDir(t);
  const url = `ftp://alice:${encodeURIComponent('p@ss:w/rd')}@${srv.host}:${srv.port}`;
  let r = await runCli(CLI, ['ls', '--url', url], { env: { DFOS_PASSWORD: 'wrong' }, cwd: dir });
  t.is(r.code, 0, r.stderr);
  r = await runCli(CLI, ['ls', '--json'], { env: { DFOS_URL: `ftp://alice@${srv.host}:${srv.port}`, DFOS_PASSWORD: 'p@ss:w/rd' }, cwd: dir });
  t.is(r.code, 0, r.stderr);
  t.deepEqual(JSON.parse(r.stdout.toString()), []);
});

test('no progress output when stderr is not a terminal', async (t) => {
  const srv = await startTestServer();
  t.teardown(() => srv.stop());
  const dir = await tempDir(t);
  const big = randomBytes(4 * 1024 * 1024);
  await writeFile(join(dir, 'big.bin'), big);
  let r = await runCli(CLI, ['put', 'big.bin'], { env: envFor(srv), cwd: dir });
  t.is(r.code, 0);
  t.is(r.stderr, '');
  t.is(r.stdout.length, 0);
  r = await runCli(CLI, ['get', 'big.bin', 'back.bin'], { env: envFor(srv), cwd: dir });
  t.is(r.code, 0);
  t.is(r.stderr, '');
  t.is(r.stdout.length, 0);
  sameBytes(t, await readFile(join(dir, 'back.bin')), big);
});

/** Runs the CLI under `script` (a pseudo-terminal); answers a password prompt if one appears. */
function runOnTty(command: string, env: Record<string, string>, cwd: string, password?: string): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const childEnv: NodeJS.ProcessEnv = {};
    for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('DFOS_')) childEnv[k] = v;
    const child = spawn('script', ['-qec', command, '/dev/null'], { env: { ...childEnv, ...env }, cwd, stdio: ['pipe', 'pipe', 'pipe'] });
    let output = '';
    let answered = false;
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      output += d;
      if (password !== undefined && !answered && output.includes('Password for')) {
        answered = true;
        child.stdin.write(`${password}\r`);
      }
    });
    child.stdin.on('error', () => undefined);
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      child.stdin.destroy();
      resolve({ code, output });
    });
  });
}

const ttyTest = HAS_SCRIPT ? test : test.skip;

ttyTest('on a terminal: put/get show a progress bar with rate and ETA', async (t) => {
  const srv = await startTestServer();
  t.teardown(() => srv.stop());
  const dir = await tempDir(t);
  await writeFile(join(dir, 'big.bin'), randomBytes(8 * 1024 * 1024));
  const cmd = `${JSON.stringify(process.execPath)} ${JSON.stringify(CLI)}`;
  let r = await runOnTty(`${cmd} put big.bin`, envFor(srv), dir);
  t.is(r.code, 0, r.output);
  t.regex(r.output, /put big\.bin \[.*\] 100% \| 8\.0 MiB of 8\.0 MiB \| [\d.]+ [KMG]?i?B\/s \| ETA/);
  r = await runOnTty(`${cmd} get big.bin back.bin`, envFor(srv), dir);
  t.is(r.code, 0, r.output);
  t.regex(r.output, /get big\.bin \[.*\] 100% \|.*B\/s \| ETA/);
});

ttyTest('on a terminal: the password is asked for without echo', async (t) => {
  const srv = await startTestServer();
  t.teardown(() => srv.stop());
  const dir = await tempDir(t);
  const cmd = `${JSON.stringify(process.execPath)} ${JSON.stringify(CLI)} ls --json`;
  const r = await runOnTty(cmd, { DFOS_URL: `ftp://alice@${srv.host}:${srv.port}` }, dir, 'alice-pw');
  t.is(r.code, 0, r.output);
  t.regex(r.output, new RegExp(`Password for alice@127\\.0\\.0\\.1:${srv.port}:`));
  t.notRegex(r.output, /alice-pw/, 'the typed password is not echoed');
  t.regex(r.output, /\[\]/);
});
