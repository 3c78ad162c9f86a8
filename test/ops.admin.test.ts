import test, { type ExecutionContext } from 'ava';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseServerConfig } from '../src/config/serverConfig.js';
import { bearerMatches } from '../src/ops/adminToken.js';
import { parseListenAddress } from '../src/util/listenAddress.js';
import { adminRequest, adminUrl } from './helpers/adminHttp.js';
import { startRawTransfer } from './helpers/dataTransfer.js';
import { HAS_IPV6 } from './helpers/protocolFixtures.js';
import { RawFtp, REPLY_MS } from './helpers/rawFtp.js';
import { nonEmptyLines, pollUntil, probeGreeting, spawnServer } from './helpers/serverProcess.js';
import { startTestServer } from './helpers/testServer.js';

/**
 * The admin listener: /healthz, /readyz and /metrics, the bearer token, the refusal to
 * listen off loopback without one, the operator's one-line errors, and /readyz turning
 * 503 the moment a drain starts (in-process and on SIGTERM) while the listeners stay open.
 */

const TOKEN = 'c2VjcmV0LXRva2VuLWZvci10ZXN0cw';

/** A temporary directory removed after the test. */
async function tempDir(t: { teardown(fn: () => Promise<void>): void }): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'dfos-admin-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** Writes `dir/name` holding `content`, with `mode`. */
async function tokenFile(dir: string, name: string, content: string, mode = 0o600): Promise<string> {
  const file = join(dir, name);
  await writeFile(file, content);
  await chmod(file, mode);
  return file;
}

/**
 * Runs `dfos serve` with each case's extra flags (all at once) and expects it to exit with
 * `code` and one stderr line matching the case's pattern, never announcing it listens.
 */
async function expectStartupFailures(t: ExecutionContext, cases: Array<[string[], RegExp]>, code: number): Promise<void> {
  const runs = await Promise.all(cases.map(([args]) => spawnServer({ args, noWait: true })));
  for (const [i, [args, expected]] of cases.entries()) {
    const proc = runs[i]!;
    t.teardown(() => proc.cleanup());
    t.deepEqual(await proc.waitExit(15_000), { code, signal: null }, args.join(' '));
    const lines = nonEmptyLines(proc.stderr());
    t.is(lines.length, 1, proc.stderr());
    t.regex(lines[0] ?? '', expected);
    t.false(nonEmptyLines(proc.stdout()).some((l) => /DFOS listening/.test(l)), 'never announced as listening');
  }
}

test('HOST:PORT parsing and the bearer comparison', (t) => {
  t.deepEqual(parseListenAddress('127.0.0.1:9121'), { host: '127.0.0.1', port: 9121 });
  t.deepEqual(parseListenAddress('[::1]:0'), { host: '::1', port: 0 });
  t.deepEqual(parseListenAddress('0.0.0.0:80'), { host: '0.0.0.0', port: 80 });
  for (const bad of ['::1:9121', '127.0.0.1', 'localhost:9121', '127.0.0.1:70000', '[127.0.0.1]:1', '127.0.0.1:', ':9121', 'off']) {
    t.is(parseListenAddress(bad), undefined, bad);
  }
  t.true(bearerMatches(`Bearer ${TOKEN}`, TOKEN));
  t.true(bearerMatches(`bearer ${TOKEN}`, TOKEN), 'the scheme is case-insensitive (RFC 9110)');
  for (const bad of [undefined, '', 'Bearer', `Bearer ${TOKEN}x`, `Bearer ${TOKEN.slice(1)}`, `Basic ${TOKEN}`, TOKEN, `Bearer ${TOKEN} extra`]) {
    t.false(bearerMatches(bad, TOKEN), String(bad));
  }
});

test('config: the default is 127.0.0.1:9121; off loopback needs a token file; the form is checked', (t) => {
  t.is(parseServerConfig({}).adminListen, '127.0.0.1:9121');
  t.is(parseServerConfig({ adminListen: 'off' }).adminListen, 'off');
  t.is(parseServerConfig({ adminListen: '[::1]:9121' }).adminListen, '[::1]:9121');
  t.is(parseServerConfig({ adminListen: '0.0.0.0:9121', adminTokenFile: '/etc/dfos/token' }).adminTokenFile, '/etc/dfos/token');
  t.throws(() => parseServerConfig({ adminListen: '0.0.0.0:9121' }), { message: /admin-listen on an address other than loopback needs admin-token-file/ });
  t.throws(() => parseServerConfig({ adminListen: '[::]:9121' }), { message: /needs admin-token-file/ });
  t.throws(() => parseServerConfig({ adminListen: 'metrics.example.com:9121' }), { message: /admin-listen must be HOST:PORT/ });
});

test('serve: flag errors are one line naming the flags, exit 2', async (t) => {
  const cases: Array<[string[], RegExp]> = [
    [['--admin-listen', '0.0.0.0:0'], /^dfos: --admin-listen on an address other than loopback needs --admin-token-file \(a file holding the bearer token\), or use 127\.0\.0\.1:PORT \(got "0\.0\.0\.0:0"\)$/],
    [['--admin-listen', '9121'], /^dfos: --admin-listen must be HOST:PORT with an IP address \(127\.0\.0\.1:9121, \[::1\]:9121\) or off \(got "9121"\)$/],
  ];
  await expectStartupFailures(t, cases, 2);
});

test('serve: a bad token file or a busy admin port stops startup with one line, exit 1', async (t) => {
  const dir = await tempDir(t);
  const busy = createServer();
  await new Promise<void>((r) => busy.listen(0, '127.0.0.1', () => r()));
  t.teardown(() => new Promise<void>((r) => busy.close(() => r())));
  const busyPort = (busy.address() as AddressInfo).port;
  const empty = await tokenFile(dir, 'empty.token', '\n');
  const worldReadable = await tokenFile(dir, 'world.token', `${TOKEN}\n`, 0o644);
  const short = await tokenFile(dir, 'short.token', 'abc\n');
  const cases: Array<[string[], RegExp]> = [
    [['--admin-token-file', empty], /^dfos: admin token file .*empty\.token: empty; put a token in it, e\.g\. openssl rand -hex 32 > .* \(--admin-token-file\)$/],
    [['--admin-token-file', worldReadable], /^dfos: admin token file .*world\.token: readable by every local user; restrict it with chmod 600 .* \(--admin-token-file\)$/],
    [['--admin-token-file', short], /^dfos: admin token file .*short\.token: the token must be at least 16 characters/],
    [['--admin-token-file', join(dir, 'missing.token')], /^dfos: admin token file .*missing\.token: cannot be read \(ENOENT\); create it/],
    [['--admin-listen', `127.0.0.1:${busyPort}`], new RegExp(`^dfos: Cannot listen on 127\\.0\\.0\\.1:${busyPort} for the admin listener: the port is in use; stop the other server or choose another --admin-listen \\(or off\\)$`)],
  ];
  await expectStartupFailures(t, cases, 1);
});

test('/healthz, /readyz and /metrics on loopback without a token; HEAD, 404 and 405', async (t) => {
  const ts = await startTestServer({ config: { adminListen: '127.0.0.1:0' } });
  t.teardown(() => ts.stop());
  const health = await adminRequest(ts.server, '/healthz');
  t.is(health.status, 200);
  t.is(health.body, 'ok\n');
  t.is(health.headers.get('cache-control'), 'no-store');
  const ready = await adminRequest(ts.server, '/readyz');
  t.is(ready.status, 200);
  t.is(ready.body, 'ready\n');
  const metrics = await adminRequest(ts.server, '/metrics?ignored=1');
  t.is(metrics.status, 200);
  t.is(metrics.headers.get('content-type'), 'text/plain; version=0.0.4; charset=utf-8');
  t.regex(metrics.body, /^# HELP /m);
  t.regex(metrics.body, /^dfos_sessions 0$/m);
  const head = await adminRequest(ts.server, '/metrics', { method: 'HEAD' });
  t.is(head.status, 200);
  t.is(head.body, '');
  const post = await adminRequest(ts.server, '/metrics', { method: 'POST' });
  t.is(post.status, 405);
  t.is(post.headers.get('allow'), 'GET, HEAD');
  const missing = await adminRequest(ts.server, '/status');
  t.is(missing.status, 404);
  t.is(missing.body, 'no such page; try /, /api/status, /healthz, /metrics, /readyz, /status.css, /status.js\n');
});

(HAS_IPV6 ? test : test.skip)('the admin listener on [::1]', async (t) => {
  const ts = await startTestServer({ config: { adminListen: '[::1]:0' } });
  t.teardown(() => ts.stop());
  t.regex(adminUrl(ts.server), /^http:\/\/\[::1\]:\d+$/);
  t.is((await adminRequest(ts.server, '/healthz')).status, 200);
  t.regex((await adminRequest(ts.server, '/metrics')).body, /^dfos_sessions 0$/m);
});

test('with --admin-token-file every page but the health checks needs the bearer token', async (t) => {
  const dir = await tempDir(t);
  const file = await tokenFile(dir, 'admin.token', `${TOKEN}\n`);
  const ts = await startTestServer({ config: { adminListen: '127.0.0.1:0', adminTokenFile: file } });
  t.teardown(() => ts.stop());
  for (const options of [{}, { token: 'wrong-token-of-enough-length' }, { authorization: `Basic ${TOKEN}` }, { token: TOKEN.slice(0, -1) }]) {
    const denied = await adminRequest(ts.server, '/metrics', options);
    t.is(denied.status, 401, JSON.stringify(options));
    t.is(denied.headers.get('www-authenticate'), 'Bearer realm="dfos"');
    t.notRegex(denied.body, /dfos_/);
  }
  const allowed = await adminRequest(ts.server, '/metrics', { token: TOKEN });
  t.is(allowed.status, 200);
  t.regex(allowed.body, /^dfos_sessions 0$/m);
  t.is((await adminRequest(ts.server, '/healthz')).status, 200, 'liveness stays open (it tells nothing)');
  t.is((await adminRequest(ts.server, '/readyz')).status, 200, 'readiness stays open (load balancers cannot send a token)');
});

test('--admin-listen off: no admin listener, and the startup line says so', async (t) => {
  const proc = await spawnServer({ args: ['--admin-listen', 'off'] });
  t.teardown(() => proc.cleanup());
  t.is(proc.adminUrl, undefined);
  t.regex(nonEmptyLines(proc.stdout()).find((l) => /DFOS listening/.test(l)) ?? '', /\badmin=off\b/);
  proc.child.kill('SIGTERM');
  t.deepEqual(await proc.waitExit(15_000), { code: 0, signal: null });
});

test('/readyz answers 503 from the start of the drain while both listeners are still open; the admin listener closes last', async (t) => {
  const ts = await startTestServer({ config: { adminListen: '127.0.0.1:0' } });
  t.teardown(() => ts.stop());
  const url = adminUrl(ts.server);
  const raw = await RawFtp.login(ts.port, 'alice', 'alice-pw');
  t.teardown(() => raw.close());
  const { data } = await startRawTransfer(raw, 'STOR', 'during-drain.bin');
  t.is((await adminRequest(url, '/readyz')).status, 200);
  const drained = ts.server.shutdown(20_000);
  const during = await adminRequest(url, '/readyz');
  t.is(during.status, 503);
  t.is(during.body, 'draining\n');
  t.is((await adminRequest(url, '/healthz')).status, 200, 'alive while draining');
  t.is((await adminRequest(url, '/metrics')).status, 200, 'still scraped while draining');
  t.not(await probeGreeting(ts.port), 'greeted', 'the FTP listener no longer accepts');
  data.end('the running upload finishes');
  t.is((await raw.read(REPLY_MS)).code, 226);
  await drained;
  await t.throwsAsync(adminRequest(url, '/healthz', { timeoutMs: 3000 }), undefined, 'closed at the end of the drain');
});

test('SIGTERM: /readyz is 503 at once, while a running transfer finishes and the process exits 0', async (t) => {
  const proc = await spawnServer({ args: ['--shutdown-grace', '20'] });
  t.teardown(() => proc.cleanup());
  const url = proc.adminUrl!;
  t.truthy(url, proc.stdout());
  const raw = await RawFtp.login(proc.port, 'alice', 'alice-pw');
  t.teardown(() => raw.close());
  const { data } = await startRawTransfer(raw, 'STOR', 'sigterm.bin');
  t.is((await adminRequest(url, '/readyz')).status, 200);
  proc.child.kill('SIGTERM');
  const sawDraining = await pollUntil(async () => (await adminRequest(url, '/readyz', { timeoutMs: 2000 })).status === 503, 5000, 10);
  t.true(sawDraining === true, '/readyz turned 503 after SIGTERM');
  t.is((await adminRequest(url, '/healthz')).status, 200);
  t.true(proc.running(), 'still draining: the upload runs');
  data.end('finished after SIGTERM');
  t.is((await raw.read(REPLY_MS)).code, 226);
  t.deepEqual(await proc.waitExit(20_000), { code: 0, signal: null }, proc.stderr());
  await t.throwsAsync(adminRequest(url, '/healthz', { timeoutMs: 3000 }));
});
