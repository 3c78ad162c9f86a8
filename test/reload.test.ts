import test from 'ava';
import { readFile } from 'node:fs/promises';
import { RawFtp } from './helpers/rawFtp.js';
import { startTestServer } from './helpers/testServer.js';
import { pollUntil, spawnServer, tolerateLateLogs } from './helpers/serverProcess.js';
import { hashPassword } from '../src/users/passwordHash.js';
import { writeFileAtomic } from '../src/users/lockedFileWrite.js';
import { addUser, removeUser } from '../src/users/userEdits.js';
import { dfosLog } from './helpers/logFiles.js';

/** Tries one login; true on 230, false on 530 (anything else throws). */
async function canLogin(port: number, user: string, password: string): Promise<boolean> {
  const raw = await RawFtp.connect(port);
  try {
    const u = await raw.command(`USER ${user}`);
    if (u.code !== 331) throw new Error(`USER: ${u.raw}`);
    const p = await raw.command(`PASS ${password}`);
    if (p.code === 230) return true;
    if (p.code === 530) return false;
    throw new Error(`PASS: ${p.raw}`);
  } finally {
    raw.close();
  }
}

test('SIGHUP reloads users without a restart: a new user can log in, the process keeps running', async (t) => {
  const proc = await spawnServer();
  t.teardown(() => proc.cleanup());
  t.false(await canLogin(proc.port, 'carol', 'carol-pw'));
  await addUser(proc.usersFile, 'carol', await hashPassword('carol-pw'));
  proc.child.kill('SIGHUP');
  // The reload triggered by the signal is logged as such (the file watcher may also see the change).
  const hup = await pollUntil(async () => (await dfosLog(proc.logDir)).find((r) => r.message === 'Users reloaded' && r.why === 'SIGHUP'), 5000);
  t.truthy(hup, 'dfos.log records the SIGHUP reload');
  t.is(hup?.users, 3);
  t.true(proc.running(), 'SIGHUP must not stop the server');
  t.true(await canLogin(proc.port, 'carol', 'carol-pw'));
  t.true(await canLogin(proc.port, 'alice', 'alice-pw'));
  proc.child.kill('SIGTERM');
  t.deepEqual(await proc.waitExit(30_000), { code: 0, signal: null });
});

test('users.json changes are picked up without a signal: added users log in, removed users are refused', async (t) => {
  const srv = await startTestServer();
  t.teardown(() => srv.stop());
  tolerateLateLogs(srv.server);
  t.false(await canLogin(srv.port, 'carol', 'carol-pw'));
  t.true(await canLogin(srv.port, 'bob', 'bob-pw'));
  // Atomic replace (temp + rename), as `dfos users` and most editors do.
  await addUser(srv.usersFile, 'carol', await hashPassword('carol-pw'));
  t.true(await pollUntil(() => canLogin(srv.port, 'carol', 'carol-pw'), 8000, 100), 'carol can log in after the file changed');
  await removeUser(srv.usersFile, 'bob');
  t.true(
    await pollUntil(async () => !(await canLogin(srv.port, 'bob', 'bob-pw')), 8000, 100),
    'bob is refused after being removed (no cached login)',
  );
  t.true(await canLogin(srv.port, 'alice', 'alice-pw'));
});

test('an invalid new users.json (plaintext password) is logged and ignored: the old users still log in', async (t) => {
  const srv = await startTestServer();
  t.teardown(() => srv.stop());
  tolerateLateLogs(srv.server);
  const good = await hashPassword('carol-pw');
  await writeFileAtomic(
    srv.usersFile,
    JSON.stringify({ users: { alice: { password: 'new-plain-pw' }, carol: { password: good } } }, null, 2),
  );
  const error = await pollUntil(
    async () => (await dfosLog(srv.logDir)).find((r) => r.level === 'error' && /users/i.test(String(r.message))),
    8000,
    100,
  );
  t.truthy(error, 'dfos.log has an error line about the users file');
  t.regex(JSON.stringify(error), /alice/, 'the error names the bad user');
  t.false(JSON.stringify(await dfosLog(srv.logDir)).includes('new-plain-pw'), 'the plaintext password is not logged');
  t.true(await canLogin(srv.port, 'alice', 'alice-pw'), 'the old alice still logs in');
  t.true(await canLogin(srv.port, 'bob', 'bob-pw'), 'the old bob still logs in');
  t.false(await canLogin(srv.port, 'alice', 'new-plain-pw'));
  t.false(await canLogin(srv.port, 'carol', 'carol-pw'), 'nothing from the invalid file is applied');

  // SIGHUP's reload path refuses it too.
  const r = await srv.server.reloadUsers();
  t.false(r.ok);
  t.true(await canLogin(srv.port, 'alice', 'alice-pw'));

  // Once fixed, the file is applied.
  await writeFileAtomic(
    srv.usersFile,
    JSON.stringify({ users: { alice: { password: await hashPassword('alice-pw2') }, carol: { password: good } } }, null, 2),
  );
  t.true(await pollUntil(() => canLogin(srv.port, 'carol', 'carol-pw'), 8000, 100));
  t.true(await canLogin(srv.port, 'alice', 'alice-pw2'));
  t.false(await canLogin(srv.port, 'alice', 'alice-pw'));
});

test('SIGHUP with an invalid users.json keeps the old users and the server running', async (t) => {
  const proc = await spawnServer();
  t.teardown(() => proc.cleanup());
  await writeFileAtomic(proc.usersFile, JSON.stringify({ users: { alice: { password: 'plain' } } }));
  proc.child.kill('SIGHUP');
  const error = await pollUntil(
    async () => (await dfosLog(proc.logDir)).find((r) => r.level === 'error' && r.why === 'SIGHUP'),
    5000,
  );
  t.truthy(error, 'dfos.log has an error line for the SIGHUP reload');
  t.true(proc.running());
  t.true(await canLogin(proc.port, 'alice', 'alice-pw'));
  t.true(await canLogin(proc.port, 'bob', 'bob-pw'));
  proc.child.kill('SIGTERM');
  t.deepEqual(await proc.waitExit(30_000), { code: 0, signal: null });
});

// ---------------------------------------------------------------------------------------
// Issue 7, row 6: a reload (SIGHUP or the watcher) enforces the same 16 MiB limit as startup.

/** The limit startup enforces on users.json. */
const USERS_LIMIT = 16 * 1024 * 1024;

/**
 * A users.json over the limit that would otherwise be valid: it replaces the users by
 * carol alone, and pads the document with an unknown top-level key (kept, not rejected),
 * so only the size check can refuse it.
 */
async function oversizedUsersText(bytes: number): Promise<string> {
  const head = JSON.stringify({ users: { carol: { password: await hashPassword('carol-pw') } } }).slice(0, -1);
  return `${head},"padding":"${'x'.repeat(bytes)}"}`;
}

/** The resident set size of a process, in bytes, from /proc/PID/status. */
async function rssOf(pid: number): Promise<number> {
  const m = /^VmRSS:\s+(\d+)\s+kB$/m.exec(await readFile(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no VmRSS for process ${pid}`);
  return Number(m[1]) * 1024;
}

test('row 6: an oversized users.json on SIGHUP and via the watcher is refused like at startup: error naming the file and the limit, old users stay, RSS does not jump', async (t) => {
  t.timeout(90_000);
  const proc = await spawnServer();
  t.teardown(() => proc.cleanup());
  t.true(await canLogin(proc.port, 'alice', 'alice-pw'));
  const before = await rssOf(proc.child.pid!);
  // 40 MiB: well over the limit, and big enough that reading and parsing it would show in RSS.
  await writeFileAtomic(proc.usersFile, await oversizedUsersText(40 * 1024 * 1024));
  proc.child.kill('SIGHUP');
  const refused = (why: string) => async () =>
    (await dfosLog(proc.logDir)).find((r) => r.level === 'error' && r.why === why);
  const hup = await pollUntil(refused('SIGHUP'), 15_000, 100);
  const watched = await pollUntil(refused('users.json changed'), 15_000, 100);
  for (const [what, line] of [['SIGHUP', hup], ['watcher', watched]] as const) {
    t.truthy(line, `${what}: dfos.log has an error line for the oversized file`);
    t.true(JSON.stringify(line ?? {}).includes(proc.usersFile), `${what}: the line names the file: ${JSON.stringify(line)}`);
    t.regex(JSON.stringify(line ?? {}), /16 MiB/, `${what}: the line names the limit`);
  }
  // Measured before any further login (scrypt's own memory is not the reload's).
  const after = await rssOf(proc.child.pid!);
  t.log(`RSS ${Math.round(before / 2 ** 20)} MiB before, ${Math.round(after / 2 ** 20)} MiB after both reloads`);
  t.true(after - before < 64 * 2 ** 20, `RSS grew by ${Math.round((after - before) / 2 ** 20)} MiB (bound: 64 MiB)`);
  t.false(
    (await dfosLog(proc.logDir)).some((r) => r.message === 'Users reloaded'),
    'the oversized file was never applied',
  );
  t.true(proc.running());
  t.true(await canLogin(proc.port, 'alice', 'alice-pw'), 'the old alice still logs in');
  t.true(await canLogin(proc.port, 'bob', 'bob-pw'), 'the old bob still logs in');
  t.false(await canLogin(proc.port, 'carol', 'carol-pw'), 'nothing from the oversized file is applied');
  proc.child.kill('SIGTERM');
  t.deepEqual(await proc.waitExit(30_000), { code: 0, signal: null });
});

test('row 6: reloadUsers() refuses a users.json one byte over the limit; exactly at the limit the size is accepted', async (t) => {
  const srv = await startTestServer();
  t.teardown(() => srv.stop());
  tolerateLateLogs(srv.server);
  const base = await oversizedUsersText(0);
  const over = await oversizedUsersText(USERS_LIMIT + 1 - Buffer.byteLength(base));
  t.is(Buffer.byteLength(over), USERS_LIMIT + 1);
  await writeFileAtomic(srv.usersFile, over);
  const r = await srv.server.reloadUsers();
  t.false(r.ok, 'one byte over the limit is refused');
  if (!r.ok) {
    t.true(r.error.message.includes(srv.usersFile), r.error.message);
    t.regex(r.error.message, /16 MiB/);
  }
  t.true(await canLogin(srv.port, 'alice', 'alice-pw'), 'the old alice still logs in');
  const exact = await oversizedUsersText(USERS_LIMIT - Buffer.byteLength(base));
  t.is(Buffer.byteLength(exact), USERS_LIMIT);
  await writeFileAtomic(srv.usersFile, exact);
  const ok = await srv.server.reloadUsers();
  t.deepEqual(ok, { ok: true, count: 1 }, 'a file of exactly 16 MiB is read and applied');
  t.true(await pollUntil(() => canLogin(srv.port, 'carol', 'carol-pw'), 8000, 100), 'carol (from the 16 MiB file) logs in');
});
