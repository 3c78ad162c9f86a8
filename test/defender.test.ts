import test from 'ava';
import { execFile } from 'node:child_process';
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { auditLog } from './helpers/logFiles.js';
import { converse, failLogin, greeting } from './helpers/controlProbe.js';
import { CLI, cleanEnv, makeServerDirs, pollUntil, spawnServer } from './helpers/serverProcess.js';
import { startTestServer } from './helpers/testServer.js';

/**
 * Issue 11, item 1: the defender. Failed logins are scored per client address; the
 * threshold-th bans it: that connection gets 530 then 421 and is closed, and new
 * connections from the address get 421 before the greeting. Each test uses its own
 * loopback source addresses (127.0.0.x) to keep addresses apart.
 */

const BANNED = /^421 Too many failed logins from your address; try again in (\d+) s/;

test('the threshold-th failed login (unknown users count) bans the address: 530 then 421 and closed; new connections from it get 421 before the greeting, others 220; audited', async (t) => {
  const srv = await startTestServer({ config: { banThreshold: 3, banTime: 600 } });
  t.teardown(() => srv.stop());
  t.deepEqual((await failLogin(srv.port, '127.0.0.2', 'nobody')).slice(1), ['331 User name okay, need password', '530 Login incorrect', '221 Goodbye']);
  await failLogin(srv.port, '127.0.0.2');
  const third = await failLogin(srv.port, '127.0.0.2');
  t.regex(third[2] ?? '', /^530 /);
  t.regex(third[3] ?? '', BANNED, 'the connection that triggered the ban gets 421 after its 530');
  t.is(third.length, 4, 'and is closed (QUIT not answered)');
  const refused = await greeting(srv.port, '127.0.0.2');
  const m = BANNED.exec(refused);
  t.truthy(m, refused);
  t.true(Number(m![1]) > 590 && Number(m![1]) <= 600);
  t.regex(await greeting(srv.port, '127.0.0.3'), /^220 /, 'another address is not banned');
  const records = await pollUntil(async () => {
    const r = (await auditLog(srv.logDir)).filter((e) => e.action === 'ban');
    return r.length > 0 ? r : undefined;
  }, 5000);
  t.like(records?.[0], { action: 'ban', client: '127.0.0.2', result: 'ok', durationMs: 600_000 });
  t.regex(String(records?.[0]?.reason), /3 failed logins/);
  const onFile = JSON.parse(await readFile(join(srv.stateDir, 'bans.json'), 'utf8')) as { bans: { ip: string; until: string; count: number }[] };
  t.is(onFile.bans.length, 1);
  t.like(onFile.bans[0], { ip: '127.0.0.2', count: 1 });
});

test('a repeat ban of the same address lasts twice as long (up to --ban-time-max)', async (t) => {
  const srv = await startTestServer({ config: { banThreshold: 2, banTime: 1, banTimeMax: 3 } });
  t.teardown(() => srv.stop());
  const banOnce = async () => {
    await failLogin(srv.port, '127.0.0.4');
    const lines = await failLogin(srv.port, '127.0.0.4');
    t.regex(lines.at(-1) ?? '', BANNED, lines.join(' | '));
  };
  const durations = [];
  for (let i = 0; i < 3; i++) {
    await banOnce();
    durations.push(srv.server.defender.list().find((b) => b.ip === '127.0.0.4'));
    const greeted = await pollUntil(async () => (/^220 /.test(await greeting(srv.port, '127.0.0.4')) ? true : undefined), 10_000, 200);
    t.true(greeted, 'the ban ends');
  }
  const bans = (await auditLog(srv.logDir)).filter((e) => e.action === 'ban').map((e) => e.durationMs);
  t.deepEqual(bans, [1000, 2000, 3000], 'doubles, capped by --ban-time-max');
  t.deepEqual(durations.map((d) => d?.count), [1, 2, 3]);
  const expired = await pollUntil(async () => {
    const n = (await auditLog(srv.logDir)).filter((e) => e.action === 'unban' && e.client === '127.0.0.4' && e.reason === 'expired').length;
    return n === 3 ? n : undefined;
  }, 10_000, 100);
  t.is(expired, 3, 'each ban ends with an unban record');
});

test('--ban-allow: an allow-listed address is never banned', async (t) => {
  const srv = await startTestServer({ config: { banThreshold: 2, banAllow: '127.0.0.4/30,2001:db8::/32' } });
  t.teardown(() => srv.stop());
  for (let i = 0; i < 5; i++) t.regex((await failLogin(srv.port, '127.0.0.5')).at(-1) ?? '', /^221 /);
  t.regex(await greeting(srv.port, '127.0.0.5'), /^220 /);
  await failLogin(srv.port, '127.0.0.8');
  t.regex((await failLogin(srv.port, '127.0.0.8')).at(-1) ?? '', BANNED, 'outside the range: banned');
});

test('brute force: 30 wrong passwords from one address over parallel connections end in a ban within the threshold', async (t) => {
  const srv = await startTestServer({ config: { banThreshold: 10 } });
  t.teardown(() => srv.stop());
  const connections = 6;
  const attempts = Array.from({ length: 5 }, () => ['USER alice', 'PASS guess']).flat();
  const results = await Promise.all(Array.from({ length: connections }, () => converse(srv.port, '127.0.0.9', [...attempts, 'QUIT'])));
  const failures = results.flat().filter((l) => l.startsWith('530 ')).length;
  t.true(results.every((r) => BANNED.test(r.at(-1) ?? '')), 'every connection ends with the ban 421');
  t.true(failures >= 10 && failures <= 30, `${failures} failures answered`);
  const checked = (await auditLog(srv.logDir)).filter((e) => e.action === 'login' && e.client === '127.0.0.9' && e.reason !== 'address banned');
  t.true(checked.length <= 10 + connections - 1, `${checked.length} passwords checked before the ban (threshold 10, ${connections} connections in parallel)`);
  t.regex(await greeting(srv.port, '127.0.0.9'), BANNED);
});

test('a ban survives a restart; dfos bans list shows it and dfos bans lift lifts it on the running server', async (t) => {
  const dirs = await makeServerDirs();
  t.teardown(() => rm(dirs.dir, { recursive: true, force: true }));
  const args = ['--ban-threshold', '2', '--ban-time', '600'];
  const first = await spawnServer({ dirs, args });
  t.teardown(() => first.cleanup());
  await failLogin(first.port, '127.0.0.10');
  t.regex((await failLogin(first.port, '127.0.0.10')).at(-1) ?? '', BANNED);
  first.child.kill('SIGTERM');
  await first.waitExit(15_000);
  const second = await spawnServer({ dirs, args });
  t.teardown(() => second.cleanup());
  t.regex(await greeting(second.port, '127.0.0.10'), BANNED, 'still banned after the restart');
  t.regex(await greeting(second.port, '127.0.0.11'), /^220 /);
  const run = promisify(execFile);
  const stateDir = join(dirs.dir, 'state');
  const list = await run(process.execPath, [CLI, 'bans', 'list', '--state-dir', stateDir], { env: cleanEnv() });
  t.regex(list.stdout, /^127\.0\.0\.10 {2}until \d{4}-\d\d-\d\dT[\d:.]+Z {2}count 1\n$/);
  const lift = await run(process.execPath, [CLI, 'bans', 'lift', '127.0.0.10', '--state-dir', stateDir], { env: cleanEnv() });
  t.regex(lift.stdout, /lifted the ban of 127\.0\.0\.10/);
  const greeted = await pollUntil(async () => (/^220 /.test(await greeting(second.port, '127.0.0.10')) ? true : undefined), 10_000, 200);
  t.true(greeted, 'the running server notices the lift');
  const unban = await pollUntil(async () => (await auditLog(dirs.logDir)).find((e) => e.action === 'unban'), 5000);
  t.like(unban, { client: '127.0.0.10', result: 'ok' });
  const again = await run(process.execPath, [CLI, 'bans', 'lift', '127.0.0.10', '--state-dir', stateDir], { env: cleanEnv() }).catch((e: { code: number; stderr: string }) => e);
  t.not((again as { code?: number }).code, 0, 'lifting an address that is not banned fails');
});
