import test from 'ava';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import { RawFtp } from './helpers/rawFtp.js';
import { runCli } from './helpers/clientFixtures.js';
import { CLI, makeServerDirs, probeGreeting, REPO_ROOT, spawnServer } from './helpers/serverProcess.js';
import { dfosLog } from './helpers/logFiles.js';
import { serverConfigSchema } from '../src/config/serverConfig.js';
import { settingName } from '../src/config/configReload.js';
import { maskSecret, MASK } from '../src/config/effectiveConfig.js';
import { nearestKey } from '../src/config/nearestKey.js';
import { SERVE_FLAGS } from '../src/cli/serve.js';

/** A temporary directory for config files, removed after the test. */
async function workDir(t: { teardown(fn: () => Promise<void>): void }): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'dfos-config-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** Runs `dfos config check …` in `cwd`; returns the exit code, the stdout text and the stderr lines. */
async function check(cwd: string, args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; out: string; err: string[] }> {
  const r = await runCli(CLI, ['config', 'check', ...args], { cwd, env });
  return { code: r.code, out: r.stdout.toString('utf8'), err: r.stderr.split('\n').filter((l) => l !== '') };
}

/** The `key: value  # from` lines of `dfos config check` output, as key → [value, from]. */
function effective(out: string): Map<string, [unknown, string]> {
  const values = parse(out) as Record<string, unknown>;
  const from = new Map<string, string>();
  for (const line of out.split('\n')) {
    const m = /^([a-z0-9-]+): .* # (.*)$/.exec(line);
    if (m) from.set(m[1]!, m[2]!);
  }
  return new Map(Object.entries(values).map(([k, v]) => [k, [v, from.get(k) ?? '']]));
}

/** The schema's keys as config file keys (every setting but the programmatic `console`). */
const SCHEMA_KEYS = Object.keys(serverConfigSchema.shape)
  .filter((k) => k !== 'console')
  .map(settingName)
  .sort();

test('the flag table covers every setting of the schema, and each flag is its key in the config file', (t) => {
  t.deepEqual(SERVE_FLAGS.map((f) => f.flag).sort(), SCHEMA_KEYS);
  for (const f of SERVE_FLAGS) t.is(f.flag, settingName(f.key), f.key);
});

test('precedence: flags > DFOS_* environment > config file > defaults, each line says where its value came from', async (t) => {
  const dir = await workDir(t);
  await writeFile(
    join(dir, 'dfos.yaml'),
    ['port: 2000', 'max-sessions: 7', 'idle-timeout: 11', 'log-level: debug', 'ban-allow:', '  - 10.0.0.0/8', '  - 2001:db8::/32', 'pasv-address:', ''].join('\n'),
  );
  const r = await check(dir, ['--max-sessions', '9', '--log-max-size', '2MiB', '--s3-abandoned-upload-age', '6h'], { DFOS_IDLE_TIMEOUT: '12', DFOS_MAX_SESSIONS: '8', DFOS_LOG_ROTATE: 'daily' });
  t.is(r.code, 0, r.err.join('\n'));
  const e = effective(r.out);
  t.deepEqual(e.get('max-sessions'), [9, '--max-sessions'], 'a flag wins over the environment and the file');
  t.deepEqual(e.get('idle-timeout'), [12, 'DFOS_IDLE_TIMEOUT'], 'the environment wins over the file');
  t.deepEqual(e.get('port'), [2000, 'dfos.yaml line 1'], 'the file wins over the default');
  t.deepEqual(e.get('log-level'), ['debug', 'dfos.yaml line 4']);
  t.deepEqual(e.get('ban-allow'), [['10.0.0.0/8', '2001:db8::/32'], 'dfos.yaml line 5'], 'a YAML list is the flag\'s comma list');
  t.deepEqual(e.get('log-rotate'), ['daily', 'DFOS_LOG_ROTATE']);
  t.deepEqual(e.get('log-max-size'), [2 * 1024 * 1024, '--log-max-size']);
  t.deepEqual(e.get('s3-abandoned-upload-age'), [6 * 3600, '--s3-abandoned-upload-age'], 'durations are kept in seconds');
  t.deepEqual(e.get('host'), ['0.0.0.0', 'default']);
  t.deepEqual(e.get('pasv-address'), [null, 'not set (default)'], 'an empty value leaves the key unset');
  t.deepEqual([...e.keys()].sort(), SCHEMA_KEYS, 'every key is printed');
  // The printed configuration is itself a valid config file with the same values.
  await writeFile(join(dir, 'printed.yaml'), r.out);
  const again = await check(dir, ['printed.yaml']);
  t.is(again.code, 0, again.err.join('\n'));
  t.deepEqual(parse(again.out), parse(r.out));
});

test('dfos serve reads dfos.yaml from the working directory; flags win over it', async (t) => {
  const dirs = await makeServerDirs();
  t.teardown(() => rm(dirs.dir, { recursive: true, force: true }));
  await writeFile(join(dirs.dir, 'dfos.yaml'), ['max-sessions-per-ip: 1', 'shutdown-grace: 4', 'log-level: debug', ''].join('\n'));
  const srv = await spawnServer({ dirs, args: ['--shutdown-grace', '3'] });
  t.teardown(() => srv.cleanup());
  const first = await RawFtp.connect(srv.port);
  t.teardown(() => first.close());
  t.is(await probeGreeting(srv.port), 'no-greeting', 'max-sessions-per-ip: 1 from dfos.yaml refuses a second connection');
  first.close();
  srv.child.kill('SIGTERM');
  t.deepEqual(await srv.waitExit(30_000), { code: 0, signal: null });
  const log = await dfosLog(srv.logDir);
  t.true(log.some((r) => r.level === 'debug'), 'log-level debug from dfos.yaml applies');
  t.is(log.find((r) => r.message === 'Shutting down: not accepting connections')?.graceSeconds, 3, '--shutdown-grace wins over the file');
});

test('config mistakes: one line naming the file, line and key with the fix; exit 2', async (t) => {
  const dir = await workDir(t);
  const files: Record<string, string> = {
    'typo.yaml': 'port: 2121\n\nmax-sesions: 500\n',
    'camel.yaml': 'maxSessions: 500\n',
    'snake.yaml': 'max_sessions_per_ip: 5\n',
    'far.yaml': 'frobnicate: 1\n',
    'syntax.yaml': 'port: 2121\nban-allow: [10.0.0.0/8\n',
    'value.yaml': 'port: 2121\nmax-sessions: many\n',
    'range.yaml': 'pasv-min: 60000\n',
    'size.yaml': 'log-max-size: 10 parsecs\n',
    'age.yaml': 's3-abandoned-upload-age: 1 week\n',
    'nested.yaml': 'tls:\n  mode: required\n',
    'list.yaml': '- port: 2121\n',
    'duplicate.yaml': 'port: 1\nport: 2\n',
  };
  for (const [name, text] of Object.entries(files)) await writeFile(join(dir, name), text);
  const cases: Array<[string[], Record<string, string>, string | RegExp]> = [
    [['typo.yaml'], {}, 'dfos: unknown key `max-sesions` in typo.yaml line 3; did you mean `max-sessions`?'],
    [['camel.yaml'], {}, 'dfos: unknown key `maxSessions` in camel.yaml line 1; write it as `max-sessions` (keys are spelled like the flags)'],
    [['snake.yaml'], {}, /^dfos: unknown key `max_sessions_per_ip` in snake\.yaml line 1; write it as `max-sessions-per-ip`/],
    [['far.yaml'], {}, /^dfos: unknown key `frobnicate` in far\.yaml line 1; keys are the serve flags without "--" \(see dfos\.example\.yaml/],
    [['syntax.yaml'], {}, /^dfos: config file syntax\.yaml line 3, column 1: .*; correct the YAML there$/],
    [['value.yaml'], {}, 'dfos: max-sessions in value.yaml line 2 must be a whole number, 0 or more (0: no limit) (got "many")'],
    [['range.yaml'], {}, /^dfos: pasv-min in range\.yaml line 1 must not be greater than --pasv-max \(default 50999\)/],
    [['size.yaml'], {}, /^dfos: log-max-size in size\.yaml line 1 must be a size such as .*MiB.* \(got "10 parsecs"\)$/],
    [['age.yaml'], {}, 'dfos: s3-abandoned-upload-age in age.yaml line 1 must be a duration such as 3600 (seconds), 90m, 6h or 2d, at least 1s, or 0 for never (got "1 week")'],
    [['age.yaml'], { DFOS_S3_ABANDONED_UPLOAD_AGE: '0.5s' }, /^dfos: DFOS_S3_ABANDONED_UPLOAD_AGE must be a duration such as .*, at least 1s, or 0 for never \(got "0\.5s"\)$/],
    [['nested.yaml'], {}, 'dfos: config file nested.yaml line 1: tls must be a single value or a list, not a mapping or nested list'],
    [['list.yaml'], {}, /^dfos: config file list\.yaml: must be a mapping of settings/],
    [['duplicate.yaml'], {}, /^dfos: config file duplicate\.yaml line 2, column 1: Map keys must be unique/],
    [['missing.yaml'], {}, 'dfos: config file missing.yaml: not found; name an existing file: dfos config check FILE'],
    [[], {}, 'dfos: config file dfos.yaml: not found; name an existing file: dfos config check FILE'],
    // The file's value loses to a bad environment value, which is what is reported.
    [['value.yaml'], { DFOS_MAX_SESSIONS: 'lots' }, /^dfos: DFOS_MAX_SESSIONS must be a whole number/],
  ];
  const runs = await Promise.all(cases.map(([args, env]) => check(dir, args, env)));
  cases.forEach(([args, env, expected], i) => {
    const r = runs[i]!;
    const label = `config check ${args.join(' ')} ${JSON.stringify(env)}`;
    t.is(r.code, 2, label);
    t.is(r.err.length, 1, `${label}: one line, got ${JSON.stringify(r.err)}`);
    if (typeof expected === 'string') t.is(r.err[0], expected, label);
    else t.regex(r.err[0] ?? '', expected, label);
    t.is(r.out, '', `${label}: nothing on stdout`);
  });

  // dfos serve: a --config (or DFOS_CONFIG) file that does not exist, and a bad file, stop startup with the same lines.
  const serves = await Promise.all([
    runCli(CLI, ['serve', '--config', 'nope.yaml'], { cwd: dir }),
    runCli(CLI, ['serve'], { cwd: dir, env: { DFOS_CONFIG: 'nope.yaml' } }),
    runCli(CLI, ['serve', '--config', 'typo.yaml'], { cwd: dir }),
  ]);
  const lines = serves.map((r) => r.stderr.trim());
  t.deepEqual(serves.map((r) => r.code), [2, 2, 2]);
  t.is(lines[0], 'dfos: config file nope.yaml: not found; check --config');
  t.is(lines[1], 'dfos: config file nope.yaml: not found; check DFOS_CONFIG');
  t.is(lines[2], 'dfos: unknown key `max-sesions` in typo.yaml line 3; did you mean `max-sessions`?');
});

test('dfos.example.yaml passes dfos config check, lists every key, and shows the defaults', async (t) => {
  const dir = await workDir(t);
  await writeFile(join(dir, 'empty.yaml'), '');
  const example = await check(REPO_ROOT, ['dfos.example.yaml']);
  t.is(example.code, 0, example.err.join('\n'));
  const keys = Object.keys(parse(await readFile(join(REPO_ROOT, 'dfos.example.yaml'), 'utf8')) as Record<string, unknown>);
  t.deepEqual([...keys].sort(), SCHEMA_KEYS, 'the example has exactly the schema\'s keys');
  const defaults = await check(dir, ['empty.yaml']);
  t.is(defaults.code, 0, defaults.err.join('\n'));
  const fromExample = effective(example.out);
  for (const [key, [value, from]] of effective(defaults.out)) {
    t.deepEqual(fromExample.get(key)?.[0] ?? null, value ?? null, `${key}: the example's value is the default`);
    t.regex(from, /default/, `${key} comes from the default without a file`);
  }
});

test('secrets are masked in printed configuration: secret-named keys, and passwords in URLs', async (t) => {
  const dir = await workDir(t);
  await writeFile(join(dir, 'dfos.yaml'), 's3-endpoint: http://rgw-user:hunter2-secret@127.0.0.1:7480\nredis: redis://:hunter2-secret@127.0.0.1:6379/0\n');
  const r = await check(dir, []);
  t.is(r.code, 0, r.err.join('\n'));
  t.false(r.out.includes('hunter2'), 'the password in the URL is not printed');
  t.regex(r.out, /s3-endpoint: http:\/\/rgw-user:\*{8}@127\.0\.0\.1:7480 # dfos\.yaml line 1/);
  t.regex(r.out, /^redis: redis:\/\/:\*{8}@127\.0\.0\.1:6379\/0 # dfos\.yaml line 2$/m, 'a Redis password (no user name) too');
  t.is(maskSecret('admin-token', 'abc'), MASK);
  t.is(maskSecret('s3-secret-key', 'abc'), MASK);
  t.is(maskSecret('admin-token-file', '/etc/dfos/token'), '/etc/dfos/token', 'a file holding a secret is only a path');
  t.is(maskSecret('storage', 's3://bucket/prefix'), 's3://bucket/prefix');
});

test('--redis and --redis-prefix: a bad URL or prefix is one line naming the flag, without the password', async (t) => {
  const dir = await workDir(t);
  await writeFile(join(dir, 'dfos.yaml'), '');
  const [url, prefix] = await Promise.all([check(dir, ['--redis', 'http://:hunter2@127.0.0.1:6379']), check(dir, ['--redis-prefix', 'a b'])]);
  t.is(url.code, 2);
  t.regex(url.err[0] ?? '', /^dfos: --redis must be a URL such as redis:\/\/127\.0\.0\.1:6379, .* \(got "http:\/\/:\*{8}@127\.0\.0\.1:6379"\)$/, 'the password is not echoed');
  t.is(prefix.code, 2);
  t.regex(prefix.err[0] ?? '', /^dfos: --redis-prefix must be 1 to 64 letters, digits or _ - \. : such as dfos: or dfos-eu: \(got "a b"\)$/);
});

test('nearestKey: another spelling of a key, a typo a few edits away, or nothing', (t) => {
  const keys = ['max-sessions', 'max-sessions-per-ip', 'port', 'pasv-min'];
  t.deepEqual(nearestKey('maxSessionsPerIp', keys), { kind: 'spelling', key: 'max-sessions-per-ip' });
  t.deepEqual(nearestKey('--port', keys), { kind: 'spelling', key: 'port' });
  t.deepEqual(nearestKey('max-sesions', keys), { kind: 'typo', key: 'max-sessions' });
  t.deepEqual(nearestKey('prot', keys), { kind: 'typo', key: 'port' });
  t.is(nearestKey('storage-class', keys), undefined);
});
