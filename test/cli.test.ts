import test from 'ava';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, stat, utimes, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { UserStore } from '../src/users/UserStore.js';
import { hashPassword } from '../src/users/passwordHash.js';

// The CLI is tested as built (package.json's test script builds dist/ before ava runs).
const CLI = fileURLToPath(new URL('../dist/cli.js', import.meta.url));

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `node dist/cli.js ...args` with only the given DFOS_* variables set. */
function dfos(
  args: string[],
  opts: { input?: string; keepStdinOpen?: boolean; env?: Record<string, string>; cwd?: string } = {},
): Promise<Run> {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('DFOS_')) env[k] = v;
  Object.assign(env, opts.env);
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { env, cwd: opts.cwd, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      child.stdin.destroy();
      resolve({ code, stdout, stderr });
    });
    child.stdin.on('error', () => undefined);
    if (opts.keepStdinOpen) child.stdin.write(opts.input ?? '');
    else child.stdin.end(opts.input ?? '');
  });
}

async function tempDir(t: { teardown: (fn: () => Promise<void>) => void }): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'dfos-cli-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** Exactly one non-empty line on stderr. */
function oneLine(t: { is: (a: unknown, b: unknown, m?: string) => void }, stderr: string): string {
  const lines = stderr.split('\n').filter((l) => l !== '');
  t.is(lines.length, 1, `stderr: ${JSON.stringify(stderr)}`);
  t.is(stderr.endsWith('\n'), true);
  return lines[0] ?? '';
}

test.before(() => {
  if (!existsSync(CLI)) throw new Error('dist/cli.js is missing; run `npx tsc -p tsconfig.json` first');
});

test('users add / list / passwd / remove', async (t) => {
  const dir = await tempDir(t);
  const file = path.join(dir, 'users.json');

  let r = await dfos(['users', 'add', 'alice', '--password-stdin', '--users', file], { input: 'first pass\n' });
  t.is(r.code, 0, r.stderr);
  t.regex(r.stdout, /added user "alice"/);
  t.is((await stat(file)).mode & 0o777, 0o600);

  r = await dfos(['users', 'add', 'bob', '--password-stdin', '--read-only', '--local-only'], {
    input: 'bob pass\r\nignored second line\n',
    env: { DFOS_USERS: file },
  });
  t.is(r.code, 0, r.stderr);

  r = await dfos(['users', 'list', '--users', file, '--json']);
  t.is(r.code, 0, r.stderr);
  t.deepEqual(JSON.parse(r.stdout), [
    { name: 'alice', readOnly: false, localOnly: false, requireTls: false },
    { name: 'bob', readOnly: true, localOnly: true, requireTls: false },
  ]);
  r = await dfos(['users', 'list', '--users', file]);
  t.is(r.code, 0);
  t.regex(r.stdout, /^NAME +ACCESS +LOGIN FROM +LIMITS\nalice +read-write +anywhere +-\nbob +read-only +local only +-\n$/);
  t.false(r.stdout.includes('$scrypt$'));

  let store = await UserStore.load(file);
  t.true((await store.authenticate('alice', 'first pass', '10.0.0.5')).ok);
  t.true((await store.authenticate('bob', 'bob pass', '127.0.0.1')).ok);

  r = await dfos(['users', 'passwd', 'alice', '--password-stdin', '--users', file], { input: 'second pass' });
  t.is(r.code, 0, r.stderr);
  store = await UserStore.load(file);
  t.deepEqual(await store.authenticate('alice', 'first pass', '::1'), { ok: false, reason: 'bad-password' });
  t.true((await store.authenticate('alice', 'second pass', '::1')).ok);

  r = await dfos(['users', 'remove', 'alice', '--users', file]);
  t.is(r.code, 0, r.stderr);
  r = await dfos(['users', 'list', '--json', '--users', file]);
  t.deepEqual(JSON.parse(r.stdout), [{ name: 'bob', readOnly: true, localOnly: true, requireTls: false }]);
});

test('--password-stdin does not wait for the writer to close stdin', async (t) => {
  const dir = await tempDir(t);
  const file = path.join(dir, 'users.json');
  const r = await dfos(['users', 'add', 'alice', '--password-stdin', '--users', file], {
    input: 'pw\n',
    keepStdinOpen: true,
  });
  t.is(r.code, 0, r.stderr);
});

test('add of an existing user, passwd/remove of a missing one: exit 1, one line', async (t) => {
  const dir = await tempDir(t);
  const file = path.join(dir, 'users.json');
  t.is((await dfos(['users', 'add', 'alice', '--password-stdin', '--users', file], { input: 'x\n' })).code, 0);
  const before = await readFile(file, 'utf8');

  let r = await dfos(['users', 'add', 'alice', '--password-stdin', '--users', file], { input: 'y\n' });
  t.is(r.code, 1);
  t.regex(oneLine(t, r.stderr), /^dfos: .*user "alice" already exists; change the password with: dfos users passwd alice/);

  r = await dfos(['users', 'passwd', 'nobody', '--password-stdin', '--users', file], { input: 'y\n' });
  t.is(r.code, 1);
  t.regex(oneLine(t, r.stderr), /there is no user "nobody"/);

  r = await dfos(['users', 'remove', 'nobody', '--users', file]);
  t.is(r.code, 1);
  t.regex(oneLine(t, r.stderr), /there is no user "nobody"/);

  t.is(await readFile(file, 'utf8'), before);

  r = await dfos(['users', 'list', '--users', path.join(dir, 'missing.json')]);
  t.is(r.code, 1);
  t.regex(oneLine(t, r.stderr), /missing\.json does not exist; create it with: dfos users add NAME --users/);
});

test('passwords: empty refused, no terminal without --password-stdin refused', async (t) => {
  const dir = await tempDir(t);
  const file = path.join(dir, 'users.json');
  let r = await dfos(['users', 'add', 'alice', '--password-stdin', '--users', file], { input: '\n' });
  t.is(r.code, 2);
  t.regex(oneLine(t, r.stderr), /empty password refused/);
  r = await dfos(['users', 'add', 'alice', '--password-stdin', '--users', file], { input: '' });
  t.is(r.code, 2);
  r = await dfos(['users', 'add', 'alice', '--users', file], { input: 'pw\n' });
  t.is(r.code, 2);
  t.regex(oneLine(t, r.stderr), /stdin is not a terminal.*--password-stdin/);
  t.false(existsSync(file));
});

test('concurrent `dfos users add` runs keep every user (edit lock), and the lock is gone afterwards', async (t) => {
  const dir = await tempDir(t);
  const file = path.join(dir, 'users.json');
  await writeFile(file, '{"users":{}}\n');
  const names = Array.from({ length: 8 }, (_, i) => `user${i}`);
  const runs = await Promise.all(names.map((n) => dfos(['users', 'add', n, '--password-stdin', '--users', file], { input: `${n}-pw\n` })));
  for (const r of runs) t.is(r.code, 0, r.stderr);
  const doc = JSON.parse(await readFile(file, 'utf8')) as { users: Record<string, unknown> };
  t.deepEqual(Object.keys(doc.users).sort(), names);
  t.false(existsSync(`${file}.lock`), 'the lock is released');
});

test('`dfos users` waits for a held lock, and takes over a stale one left by a crashed command', async (t) => {
  const dir = await tempDir(t);
  const file = path.join(dir, 'users.json');
  await writeFile(file, '{"users":{}}\n');
  // Held by "another command" that finishes after 1 s.
  await mkdir(`${file}.lock`);
  const removeLock = setTimeout(() => void rm(`${file}.lock`, { recursive: true }), 1000);
  t.teardown(() => clearTimeout(removeLock));
  const started = Date.now();
  let r = await dfos(['users', 'add', 'waiter', '--password-stdin', '--users', file], { input: 'w\n' });
  t.is(r.code, 0, r.stderr);
  t.true(Date.now() - started >= 900, 'it waited for the lock');
  // Left behind by a crash a minute ago: taken over.
  await mkdir(`${file}.lock`);
  const old = new Date(Date.now() - 60_000);
  await utimes(`${file}.lock`, old, old);
  r = await dfos(['users', 'add', 'after-crash', '--password-stdin', '--users', file], { input: 'a\n' });
  t.is(r.code, 0, r.stderr);
  const doc = JSON.parse(await readFile(file, 'utf8')) as { users: Record<string, unknown> };
  t.deepEqual(Object.keys(doc.users).sort(), ['after-crash', 'waiter']);
  t.false(existsSync(`${file}.lock`));
});

test('users add --require-tls: written to the file, shown by list and list --json', async (t) => {
  const dir = await tempDir(t);
  const file = path.join(dir, 'users.json');
  let r = await dfos(['users', 'add', 'sec', '--password-stdin', '--require-tls', '--local-only', '--users', file], { input: 's\n' });
  t.is(r.code, 0, r.stderr);
  t.regex(r.stdout, /added user "sec" \(read-write, local only, TLS required\)/);
  r = await dfos(['users', 'add', 'open', '--password-stdin', '--users', file], { input: 'o\n' });
  t.is(r.code, 0, r.stderr);
  const doc = JSON.parse(await readFile(file, 'utf8')) as { users: Record<string, Record<string, unknown>> };
  t.is(doc.users.sec!.requireTls, true);
  t.false('requireTls' in doc.users.open!);
  r = await dfos(['users', 'list', '--users', file, '--json']);
  t.deepEqual(JSON.parse(r.stdout), [
    { name: 'open', readOnly: false, localOnly: false, requireTls: false },
    { name: 'sec', readOnly: false, localOnly: true, requireTls: true },
  ]);
  r = await dfos(['users', 'list', '--users', file]);
  t.regex(r.stdout, /^NAME +ACCESS +LOGIN FROM +LIMITS\nopen +read-write +anywhere +-\nsec +read-write +local only, over TLS only +-\n$/);
  r = await dfos(['users', 'add', '--help']);
  t.regex(r.stdout, /--require-tls/);
});

test('users add|set: quota, file count, file size and rates in human units; set changes access and limits, "none" removes one, and keeps the password', async (t) => {
  const dir = await tempDir(t);
  const file = path.join(dir, 'users.json');
  let r = await dfos(['users', 'add', 'carol', '--password-stdin', '--users', file, '--quota', '10GiB', '--max-files', '500', '--max-file-size', '100MiB', '--rate-up', '1.5MiB/s', '--rate-down', '2MB'], { input: 'pw\n' });
  t.is(r.code, 0, r.stderr);
  t.regex(r.stdout, /added user "carol" \(read-write, from anywhere, quota 10 GiB, 500 files, files up to 100 MiB, upload 1.5 MiB\/s, download 1.91 MiB\/s\)/);
  const read = async () => (JSON.parse(await readFile(file, 'utf8')) as { users: Record<string, Record<string, unknown>> }).users.carol!;
  const before = await read();
  t.like(before, { quotaBytes: 10 * 1024 ** 3, quotaFiles: 500, maxFileSize: 100 * 1024 ** 2, rateUp: 1.5 * 1024 ** 2, rateDown: 2_000_000 });

  r = await dfos(['users', 'set', 'carol', '--users', file, '--quota', 'none', '--rate-down', '512KiB', '--read-only', '--max-sessions', '3']);
  t.is(r.code, 0, r.stderr);
  t.regex(r.stdout, /changed "carol" in .*: read-only, from anywhere, 3 sessions, 500 files, files up to 100 MiB, upload 1.5 MiB\/s, download 512 KiB\/s/);
  const after = await read();
  t.false('quotaBytes' in after);
  t.is(after.password, before.password);
  t.like(after, { readOnly: true, rateDown: 512 * 1024, maxSessions: 3, quotaFiles: 500 });
  const store = await UserStore.load(file);
  t.like(store.get('carol'), { readOnly: true, rateDown: 512 * 1024, maxSessions: 3, quotaFiles: 500, maxFileSize: 100 * 1024 ** 2 });
  t.true((await store.authenticate('carol', 'pw', '10.0.0.5')).ok);
  r = await dfos(['users', 'list', '--users', file]);
  t.regex(r.stdout, /carol +read-only +anywhere +3 sessions, 500 files/);

  for (const [args, message] of [
    [['--quota', '10XB'], /^dfos: --quota must be a size such as 1048576, 500KiB, 100MiB or 10GiB \(at least 1 byte\), or none \(got "10XB"\)\n$/],
    [['--max-files', '-1'], /^dfos: --max-files must be a whole number of 1 or more, or none/],
    [['--rate-up', '0'], /^dfos: --rate-up must be a rate in bytes per second/],
    [['--read-only', '--read-write'], /^dfos: --read-only and --read-write contradict each other/],
    [[], /^dfos: nothing to change; give at least one flag/],
  ] as const) {
    r = await dfos(['users', 'set', 'carol', '--users', file, ...args]);
    t.is(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    t.regex(r.stderr, message);
  }
  r = await dfos(['users', 'set', 'nobody', '--users', file, '--quota', '1GiB']);
  t.is(r.code, 1);
  t.regex(r.stderr, /there is no user "nobody"/);
  t.deepEqual(await read(), after);

  await writeFile(file, JSON.stringify({ users: { bad: { password: before.password, quotaBytes: -5 } } }));
  r = await dfos(['users', 'list', '--users', file]);
  t.is(r.code, 1);
  t.regex(r.stderr, /user "bad" has a quotaBytes that is not a whole number of 1 or more \(bytes\)/);
});

test('atomic rewrite keeps other entries, their unknown fields, and invalid entries', async (t) => {
  const dir = await tempDir(t);
  const file = path.join(dir, 'users.json');
  const original = {
    comment: 'managed by hand too',
    users: {
      keep: { password: await hashPassword('k', { ln: 10, r: 8, p: 1 }), readOnly: true, quota: '5G', tags: ['a', { b: 1 }] },
      plain: { password: 'not-hashed-yet', home: '/srv/plain' },
    },
  };
  await writeFile(file, JSON.stringify(original, null, 2), { mode: 0o640 });

  let r = await dfos(['users', 'add', 'new', '--password-stdin', '--users', file], { input: 'n\n' });
  t.is(r.code, 0, r.stderr);
  let doc = JSON.parse(await readFile(file, 'utf8'));
  t.is(doc.comment, original.comment);
  t.deepEqual(doc.users.keep, original.users.keep);
  t.deepEqual(doc.users.plain, original.users.plain);
  t.deepEqual(doc.users.new, { password: doc.users.new.password, readOnly: false, localOnly: false });
  t.is((await stat(file)).mode & 0o777, 0o640, 'an existing file keeps its mode');

  // The fix the error message suggests for a plaintext entry works and keeps its other keys.
  r = await dfos(['users', 'list', '--users', file]);
  t.is(r.code, 1);
  t.is(oneLine(t, r.stderr), `dfos: ${file}: user "plain" has a password that is not a DFOS hash; set it with: dfos users passwd plain --users ${file}`);
  r = await dfos(['users', 'passwd', 'plain', '--password-stdin', '--users', file], { input: 'p\n' });
  t.is(r.code, 0, r.stderr);
  doc = JSON.parse(await readFile(file, 'utf8'));
  t.is(doc.users.plain.home, '/srv/plain');
  t.deepEqual(doc.users.keep, original.users.keep);
  r = await dfos(['users', 'list', '--users', file]);
  t.is(r.code, 0, r.stderr);

  // No temporary files are left behind.
  const { readdir } = await import('node:fs/promises');
  t.deepEqual(await readdir(dir), ['users.json']);
});

test('invalid JSON in the users file: exit 1 with file, position and fix', async (t) => {
  const dir = await tempDir(t);
  const file = path.join(dir, 'users.json');
  await writeFile(file, '{"users": {"a": {"password": "x"},}}');
  const r = await dfos(['users', 'add', 'b', '--password-stdin', '--users', file], { input: 'pw\n' });
  t.is(r.code, 1);
  t.regex(oneLine(t, r.stderr), /users\.json: not valid JSON at line 1, column 35 \(trailing comma before "}"\); correct it there/);
});

test('bad flags and arguments: exit 2, one line naming the flag', async (t) => {
  const dir = await tempDir(t);
  const file = path.join(dir, 'users.json');
  const cases: Array<[string[], RegExp]> = [
    [['users', 'list', '--bogus'], /^dfos: unknown option '--bogus' \(usage: dfos users list \[options\]/],
    [['serve', '--prot', '21'], /^dfos: unknown option '--prot' \(Did you mean --port\?\)/],
    [['serve', '--port'], /^dfos: option '--port <number>' argument missing/],
    [['users', 'add'], /^dfos: missing required argument 'name' \(usage: dfos users add \[options\] <name>/],
    [['users', 'add', '.hidden', '--users', file], /^dfos: NAME must be .* \(got "\.hidden"\)$/],
    [['frobnicate'], /^dfos: unknown command 'frobnicate'/],
    [[], /^dfos: missing command .*commands: serve, users/],
    [['users'], /^dfos: missing command .*commands: add, set, passwd, remove, list/],
    [['serve', 'extra'], /^dfos: too many arguments/],
  ];
  const runs = await Promise.all(cases.map(([args]) => dfos(args)));
  cases.forEach(([args, re], i) => {
    const r = runs[i]!;
    t.is(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    t.regex(oneLine(t, r.stderr), re, args.join(' '));
  });
});

test('serve validation: flags and DFOS_* environment', async (t) => {
  const cases: Array<[string[], Record<string, string>, string | RegExp]> = [
    [['--port', 'abc'], {}, 'dfos: --port must be a whole number from 0 to 65535 (got "abc")'],
    [[], { DFOS_PORT: 'abc' }, 'dfos: DFOS_PORT must be a whole number from 0 to 65535 (got "abc")'],
    [[], { DFOS_PORT: '' }, /^dfos: DFOS_PORT must be a whole number/],
    [['--port', '70000'], {}, /^dfos: --port must be a whole number from 0 to 65535 \(got "70000"\)$/],
    [['--port', '0x10'], {}, /^dfos: --port must be a whole number/],
    [['--pasv-address', '::1'], {}, 'dfos: --pasv-address must be an IPv4 address such as 203.0.113.7 (got "::1")'],
    [[], { DFOS_PASV_ADDRESS: 'example.com' }, /^dfos: DFOS_PASV_ADDRESS must be an IPv4 address/],
    [['--host', 'nowhere'], {}, /^dfos: --host must be an IP address/],
    [['--log-level', 'loud'], {}, /^dfos: --log-level must be one of error, warn, info, debug, trace \(got "loud"\)$/],
    [[], { DFOS_FSYNC: 'sometimes' }, 'dfos: DFOS_FSYNC must be one of always, never (got "sometimes")'],
    [[], { DFOS_SHUTDOWN_GRACE: '-1' }, /^dfos: DFOS_SHUTDOWN_GRACE must be a number of seconds, 0 or more/],
    [['--idle-timeout', '1e3'], {}, /^dfos: --idle-timeout must be a number of seconds/],
    [['--pasv-min', '60000'], {}, /^dfos: --pasv-min must not be greater than --pasv-max \(default 50999\)/],
    [['--pasv-max', '100'], { DFOS_PASV_MIN: '200' }, /^dfos: DFOS_PASV_MIN must not be greater than --pasv-max/],
    // Flags win over the environment: the bad env value is overridden, the bad flag is reported.
    [['--port', 'bad'], { DFOS_PORT: '2121' }, /^dfos: --port must be/],
  ];
  // Every case fails validation, so no server is ever started.
  const runs = await Promise.all(cases.map(([args, env]) => dfos(['serve', ...args], { env })));
  cases.forEach(([args, env, expected], i) => {
    const r = runs[i]!;
    const label = `serve ${args.join(' ')} ${JSON.stringify(env)}`;
    t.is(r.code, 2, `${label}: ${r.stderr}`);
    const line = oneLine(t, r.stderr);
    if (typeof expected === 'string') t.is(line, expected, label);
    else t.regex(line, expected, label);
  });
});

test('--help and --version exit 0', async (t) => {
  let r = await dfos(['--version']);
  t.is(r.code, 0);
  t.regex(r.stdout, /^\d+\.\d+\.\d+\n$/);
  r = await dfos(['--help']);
  t.is(r.code, 0);
  t.regex(r.stdout, /serve/);
  r = await dfos(['serve', '--help']);
  t.is(r.code, 0);
  t.regex(r.stdout, /--pasv-address <ipv4>/);
  t.regex(r.stdout, /DFOS_SHUTDOWN_GRACE/);
  r = await dfos(['users', 'add', '--help']);
  t.is(r.code, 0);
  t.regex(r.stdout, /--password-stdin/);
  t.is(r.stderr, '');
});
