import test from 'ava';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import type { Socket } from 'node:net';
import { failLogin, firstLine, greeting } from './helpers/controlProbe.js';
import { rawUpload, startRawTransfer, writeAndEnd, writeData } from './helpers/dataTransfer.js';
import { dfosLog } from './helpers/logFiles.js';
import { RawFtp } from './helpers/rawFtp.js';
import { startRedis, type RedisServer } from './helpers/redis.js';
import { CLI, cleanEnv, pollUntil } from './helpers/serverProcess.js';
import { startTestServer, type TestServer, type TestUser } from './helpers/testServer.js';

/**
 * Issue 13, item 3: shared state through Redis. Two in-process nodes share one
 * redis-server (each test under its own key prefix, so the tests run side by side); the
 * outage test has a redis-server of its own, which it kills and starts again. Each test
 * uses its own loopback source addresses (127.0.0.x).
 */

const BANNED = /^421 Too many failed logins from your address; try again in (\d+) s/;
/** Other nodes' counts are at most about a second old; waits allow twice that. */
const PROPAGATION_MS = 2500;
const run = promisify(execFile);

let redis: RedisServer;
test.before(async () => {
  redis = await startRedis();
});
test.after.always(async () => {
  await redis?.stop();
});

/** Two nodes on one Redis under `prefix`, with the same users (and the same storage when asked). */
async function twoNodes(
  t: { teardown(fn: () => Promise<void>): void },
  prefix: string,
  options: { users?: TestUser[]; config?: Record<string, unknown>; sharedStorage?: boolean; redisUrl?: string } = {},
): Promise<[TestServer, TestServer]> {
  const storage = options.sharedStorage ? await mkdtemp(join(tmpdir(), 'dfos-cluster-')) : undefined;
  if (storage) t.teardown(() => rm(storage, { recursive: true, force: true }));
  const config = { redis: options.redisUrl ?? redis.url, redisPrefix: prefix, ...(storage ? { storage } : {}), ...options.config };
  const a = await startTestServer({ ...(options.users ? { users: options.users } : {}), config });
  t.teardown(() => a.stop());
  const b = await startTestServer({ ...(options.users ? { users: options.users } : {}), config });
  t.teardown(() => b.stop());
  return [a, b];
}

/** Polls until a new connection from `ip` to `port` gets a first line matching `pattern`; how long it took, or undefined. */
async function firstLineBecomes(port: number, ip: string, pattern: RegExp, timeoutMs = PROPAGATION_MS): Promise<number | undefined> {
  const started = Date.now();
  const ok = await pollUntil(async () => pattern.test(await greeting(port, ip)), timeoutMs, 100);
  return ok ? Date.now() - started : undefined;
}

/** `dfos bans …` against the test Redis. */
function bansCli(args: string[], prefix: string, url = redis.url) {
  return run(process.execPath, [CLI, 'bans', ...args, '--redis', url, '--redis-prefix', prefix], { env: cleanEnv(), timeout: 20_000 });
}

test('a ban earned on node A (failures on both nodes add up) is refused on node B before the greeting; dfos bans lift --redis lifts it on both', async (t) => {
  const [a, b] = await twoNodes(t, 't-ban:', { config: { banThreshold: 3, banTime: 600 } });
  const ip = '127.0.0.60';
  await failLogin(a.port, ip);
  await failLogin(b.port, ip);
  const third = await failLogin(a.port, ip);
  t.regex(third.at(-1) ?? '', BANNED, 'the third failure overall (two on A, one on B) bans the address on A');
  const tookMs = await firstLineBecomes(b.port, ip, BANNED);
  t.not(tookMs, undefined, 'node B refuses the address before the greeting');
  t.log(`ban reached node B within ${tookMs} ms`);
  t.regex(await greeting(b.port, '127.0.0.61'), /^220 /, 'another address is let in');
  const onFile = await pollUntil(async () => (await readFile(join(b.stateDir, 'bans.json'), 'utf8')).includes(ip), PROPAGATION_MS);
  t.true(onFile, "node B keeps the cluster's ban in its own bans.json too");

  const list = await bansCli(['list'], 't-ban:');
  t.regex(list.stdout, /^127\.0\.0\.60 {2}until \d{4}-\d\d-\d\dT[\d:.]+Z {2}count 1\n$/);
  const lift = await bansCli(['lift', ip], 't-ban:');
  t.regex(lift.stdout, /^lifted the ban of 127\.0\.0\.60 in Redis redis:\/\/127\.0\.0\.1:\d+ \(prefix t-ban:\)\n$/);
  t.not(await firstLineBecomes(a.port, ip, /^220 /), undefined, 'lifted on A');
  t.not(await firstLineBecomes(b.port, ip, /^220 /), undefined, 'lifted on B');
  const again = await bansCli(['lift', ip], 't-ban:').catch((err: { code: number; stderr: string }) => err);
  t.like(again, { code: 1 });
  t.regex((again as { stderr: string }).stderr, /^dfos: 127\.0\.0\.60 is not banned \(Redis/);

  // Banned again on B; lifted in node A's bans.json (dfos bans lift without --redis): A passes the lift on.
  for (let i = 0; i < 3; i++) await failLogin(b.port, ip);
  t.not(await firstLineBecomes(a.port, ip, BANNED), undefined, 'banned again, on A too');
  await run(process.execPath, [CLI, 'bans', 'lift', ip, '--state-dir', a.stateDir], { env: cleanEnv(), timeout: 20_000 });
  t.not(await firstLineBecomes(a.port, ip, /^220 /), undefined, 'lifted in A\'s file: lifted on A');
  t.not(await firstLineBecomes(b.port, ip, /^220 /), undefined, 'and on B');
  const bad = await bansCli(['list'], 't-ban:', 'redis://127.0.0.1:1').catch((err: { code: number; stderr: string }) => err);
  t.like(bad, { code: 1 });
  t.regex((bad as { stderr: string }).stderr, /^dfos: cannot use Redis at redis:\/\/127\.0\.0\.1:1: .*ECONNREFUSED.*; check --redis\n$/);
});

test("a user's maxSessions and the per-address cap count the sessions of both nodes", async (t) => {
  const [a, b] = await twoNodes(t, 't-caps:', {
    users: [
      { name: 'alice', password: 'alice-pw', maxSessions: 2 },
      { name: 'bob', password: 'bob-pw' },
    ],
    config: { maxSessionsPerIp: 3 },
  });
  await a.client('alice');
  await b.client('alice');
  await sleep(PROPAGATION_MS / 2);
  for (const node of [a, b]) {
    const err = await t.throwsAsync(node.client('alice'));
    t.regex(String(err?.message), /421 Too many sessions for this user \(2 allowed\)/);
  }
  await t.notThrowsAsync(b.client('bob'), 'another user logs in');

  const ip = '127.0.0.70';
  const open: Socket[] = [];
  t.teardown(() => open.forEach((s) => s.destroy()));
  for (const node of [a, a, b]) {
    const o = await firstLine(node.port, ip);
    open.push(o.socket);
    t.regex(o.line, /^220 /);
  }
  await sleep(PROPAGATION_MS / 2);
  for (const node of [a, b]) {
    const over = await firstLine(node.port, ip);
    open.push(over.socket);
    t.regex(over.line, /^421 Too many connections from your address \(3 allowed\)/, 'two on A and one on B fill the cap of 3');
  }
  const other = await firstLine(b.port, '127.0.0.71');
  open.push(other.socket);
  t.regex(other.line, /^220 /);
});

test('quota usage is shared: an upload on A shows in SITE QUOTA on B, and an upload on B past the quota gets 552', async (t) => {
  const KiB = 1024;
  const [a, b] = await twoNodes(t, 't-quota:', { users: [{ name: 'q', password: 'q-pw', quotaBytes: 100 * KiB }], sharedStorage: true });
  const onA = await RawFtp.login(a.port, 'q', 'q-pw');
  t.teardown(() => onA.close());
  t.is((await rawUpload(onA, 'STOR one.bin', Buffer.alloc(60 * KiB, 'a'))).code, 226);
  const onB = await RawFtp.login(b.port, 'q', 'q-pw');
  t.teardown(() => onB.close());
  const quota = await onB.command('SITE QUOTA');
  t.regex(quota.raw, /Bytes: 60 KiB \(61440 bytes\) used of 100 KiB/, quota.raw);
  const over = await rawUpload(onB, 'STOR two.bin', Buffer.alloc(60 * KiB, 'b'));
  t.is(over.code, 552, over.final.raw);
  t.regex(over.final.raw, /Quota exceeded: 100 KiB allowed, 60 KiB stored/);
  t.is((await rawUpload(onB, 'STOR small.bin', Buffer.alloc(10 * KiB, 'c'))).code, 226);
  const fromA = await onA.command('SITE QUOTA');
  t.regex(fromA.raw, /Bytes: 70 KiB \(71680 bytes\) used/, 'and back: B\'s upload counts on A');
  const measured = (await dfosLog(a.logDir)).concat(await dfosLog(b.logDir)).filter((r) => r.message === 'Quota usage measured');
  t.is(measured.length, 1, 'the home was walked once for the cluster');
});

test('uploads in flight on one node hold their bytes against the quota on the other, and give them back before their 226', async (t) => {
  const KiB = 1024;
  const [a, b] = await twoNodes(t, 't-reserve:', { users: [{ name: 'q', password: 'q-pw', quotaBytes: 100 * KiB }], sharedStorage: true });
  const onA = await RawFtp.login(a.port, 'q', 'q-pw');
  t.teardown(() => onA.close());
  const onB = await RawFtp.login(b.port, 'q', 'q-pw');
  t.teardown(() => onB.close());
  const running = await startRawTransfer(onA, 'STOR', 'big.bin');
  await writeData(running.data, Buffer.alloc(70 * KiB, 'a'));
  await sleep(PROPAGATION_MS / 2);
  const refused = await rawUpload(onB, 'STOR other.bin', Buffer.alloc(40 * KiB, 'b'));
  t.is(refused.code, 552, 'the 70 KiB A is receiving count on B');
  await writeAndEnd(running.data, '');
  t.is((await onA.read()).code, 226);
  // No wait: A published its usage and released reservation before it replied, and B reads both before it accepts data.
  t.is((await rawUpload(onB, 'STOR fits.bin', Buffer.alloc(20 * KiB, 'c'))).code, 226, '70 KiB stored (not also still reserved) and 20 more fit in 100 KiB');
  t.is((await rawUpload(onB, 'STOR more.bin', Buffer.alloc(20 * KiB, 'd'))).code, 552, 'and 20 more do not');
});

test('Redis stopped and started during logins: no crash, every login answered, bans and quota usage kept locally meanwhile and shared again when it is back', async (t) => {
  const KiB = 1024;
  const own = await startRedis();
  t.teardown(() => own.stop());
  const [a, b] = await twoNodes(t, 't-outage:', {
    redisUrl: own.url,
    users: [
      { name: 'alice', password: 'alice-pw' },
      { name: 'q', password: 'q-pw', quotaBytes: 1024 * KiB },
    ],
    sharedStorage: true,
    config: { banThreshold: 3, banTime: 600 },
  });
  const qA = await RawFtp.login(a.port, 'q', 'q-pw');
  t.teardown(() => qA.close());
  const qB = await RawFtp.login(b.port, 'q', 'q-pw');
  t.teardown(() => qB.close());
  t.is((await rawUpload(qA, 'STOR before.bin', Buffer.alloc(10 * KiB))).code, 226);
  t.regex((await qB.command('SITE QUOTA')).raw, /\(10240 bytes\) used/);
  const before = '127.0.0.80';
  for (let i = 0; i < 3; i++) await failLogin(a.port, before);
  t.not(await firstLineBecomes(b.port, before, BANNED), undefined, 'a ban from before the outage reached B');

  // Logins on both nodes, one after another on each, through the outage.
  let looping = true;
  t.teardown(() => {
    looping = false;
  });
  const answered: string[] = [];
  const loop = async (node: TestServer) => {
    while (looping) {
      try {
        const raw = await RawFtp.login(node.port, 'alice', 'alice-pw');
        answered.push('230');
        raw.close();
      } catch (err) {
        answered.push(`failed: ${err instanceof Error ? err.message : String(err)}`);
      }
      await sleep(20);
    }
  };
  const loops = [loop(a), loop(b)];

  await sleep(200);
  await own.kill('SIGKILL');
  const atKill = answered.length;
  const during = '127.0.0.81';
  for (let i = 0; i < 3; i++) await failLogin(b.port, during);
  t.regex(await greeting(b.port, during), BANNED, 'a ban earned while Redis is down is enforced on its node');
  t.regex(await greeting(a.port, before), BANNED, 'the earlier ban is still enforced on A');
  t.regex(await greeting(b.port, before), BANNED, 'and on B');
  const warned = await pollUntil(async () => {
    const both = await Promise.all([a, b].map(async (n) => (await dfosLog(n.logDir)).filter((r) => String(r.message).startsWith('Redis unreachable')).length));
    return both.every((n) => n >= 1) ? both : undefined;
  }, 5000);
  t.deepEqual(warned, [1, 1], 'each node warns once');
  t.is((await rawUpload(qA, 'STOR on-a.bin', Buffer.alloc(20 * KiB))).code, 226, 'uploads go on, counted locally');
  t.is((await rawUpload(qB, 'STOR on-b.bin', Buffer.alloc(5 * KiB))).code, 226);
  t.regex((await qB.command('SITE QUOTA')).raw, /\(15360 bytes\) used/, 'B counts what it knows');
  await sleep(1000);
  t.true(answered.length - atKill >= 4, `${answered.length - atKill} logins answered while Redis was down`);

  await own.restart();
  const back = await pollUntil(async () => {
    const both = await Promise.all([a, b].map(async (n) => (await dfosLog(n.logDir)).some((r) => r.message === 'Redis reachable again: resynchronized')));
    return both.every(Boolean) || undefined;
  }, 8000, 100);
  t.true(back, 'both nodes log that Redis is reachable again');
  t.not(await firstLineBecomes(a.port, during, BANNED), undefined, 'the ban made while Redis was down reaches node A');
  t.regex(await greeting(a.port, before), BANNED, 'the earlier ban is still enforced after Redis came back empty');
  for (const raw of [qA, qB]) {
    t.regex((await raw.command('SITE QUOTA')).raw, /\(35840 bytes\) used/, 'both nodes\' uploads made during the outage add up once Redis is back');
  }
  const warnings = await Promise.all([a, b].map(async (n) => (await dfosLog(n.logDir)).filter((r) => String(r.message).startsWith('Redis unreachable')).length));
  t.deepEqual(warnings, [1, 1], 'one warning per node for the whole outage, not one per command');

  looping = false;
  await Promise.all(loops);
  const failed = answered.filter((r) => r !== '230');
  t.deepEqual(failed, [], 'every login was answered with 230');
  t.true(answered.length >= 10, `${answered.length} logins during the test`);
  t.log(`${answered.length} logins answered through the outage`);
});
