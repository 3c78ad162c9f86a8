import test, { type ExecutionContext } from 'ava';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { RawFtp, REPLY_MS } from './helpers/rawFtp.js';
import { makeServerDirs, nonEmptyLines, pollUntil, spawnServer } from './helpers/serverProcess.js';
import { startTestServer, type TestServer } from './helpers/testServer.js';
import { auditLog, dfosLog } from './helpers/logFiles.js';

/**
 * Issue 7, row 4: storage problems must not look like wrong passwords. A login whose home
 * folder cannot be created or used gets 421 "home folder unavailable" (no server path) and
 * the connection is closed; dfos.log gets an error naming the path and the errno, audit.log
 * a failed login with the reason. A wrong password is still 530. `--storage` naming a file
 * stops startup with one line naming the path and the fix.
 */

async function setup(t: ExecutionContext): Promise<TestServer> {
  const srv = await startTestServer();
  t.teardown(() => srv.stop());
  return srv;
}

async function pass(t: ExecutionContext, srv: TestServer, user: string, password: string): Promise<{ raw: RawFtp; user: number; reply: { code: number; raw: string } }> {
  const raw = await RawFtp.connect(srv.port, srv.host);
  t.teardown(() => raw.close());
  const u = await raw.command(`USER ${user}`, REPLY_MS);
  const reply = await raw.command(`PASS ${password}`, REPLY_MS);
  return { raw, user: u.code, reply };
}

for (const [name, breakHome] of [
  ['storage/<user> is a regular file', async (srv: TestServer) => writeFile(join(srv.storage, 'alice'), 'not a folder\n')],
  ['the storage root was replaced by a regular file', async (srv: TestServer) => {
    await rm(srv.storage, { recursive: true, force: true });
    await writeFile(srv.storage, 'not a folder\n');
  }],
] as const) {
  test(`row 4: ${name}: the right password gets 421 "home folder unavailable", logged and audited`, async (t) => {
    const srv = await setup(t);
    await mkdir(srv.storage, { recursive: true });
    await breakHome(srv);
    const home = join(srv.storage, 'alice');
    const { raw, user, reply } = await pass(t, srv, 'alice', 'alice-pw');
    t.is(user, 331);
    t.is(reply.code, 421, reply.raw);
    t.regex(reply.raw, /home folder unavailable/i);
    t.false(reply.raw.includes(srv.storage) || reply.raw.includes(srv.dir), `the reply names no server path: ${reply.raw}`);
    await raw.waitClosed(REPLY_MS).catch(() => undefined);
    t.true(raw.closed, 'the server closed the control connection after 421');

    const logged = await pollUntil(async () => (await dfosLog(srv.logDir)).find((l) => l.level === 'error' && JSON.stringify(l).includes(home)), REPLY_MS);
    t.truthy(logged, 'dfos.log has an error line naming the home folder');
    t.regex(JSON.stringify(logged ?? {}), /ENOTDIR|EEXIST/, 'the error line names the errno');
    const audited = await pollUntil(async () => (await auditLog(srv.logDir)).find((l) => l.action === 'login' && l.result === 'failed' && l.user === 'alice'), REPLY_MS);
    t.truthy(audited, 'audit.log has a failed login for alice');
    t.regex(String(audited?.reason ?? ''), /home folder unavailable/i, 'with the reason');
    t.false(JSON.stringify(audited ?? {}).includes(srv.storage), 'the audit reason is client-safe (no server path)');
  });
}

test('row 4: with a broken home folder a wrong password is still 530 "Login incorrect" and the session stays open', async (t) => {
  const srv = await setup(t);
  await mkdir(srv.storage, { recursive: true });
  await writeFile(join(srv.storage, 'alice'), 'not a folder\n');
  const { raw, reply } = await pass(t, srv, 'alice', 'wrong-pw');
  t.is(reply.code, 530, reply.raw);
  t.is(reply.raw, '530 Login incorrect\r\n');
  const unknown = await raw.command('USER nobody', REPLY_MS);
  t.is(unknown.code, 331, 'the connection is still open after 530');
  t.is((await raw.command('PASS x', REPLY_MS)).raw, reply.raw, 'the same reply as for an unknown user');
  // bob's home is fine: he logs in on the same server.
  const bob = await pass(t, srv, 'bob', 'bob-pw');
  t.is(bob.reply.code, 230, bob.reply.raw);
});

for (const [name, storageOf] of [
  ['a regular file', (file: string) => file],
  ['a path under a regular file', (file: string) => join(file, 'sub')],
] as const) {
  test(`row 4: dfos serve --storage <${name}> exits non-zero with one line naming the path and the fix`, async (t) => {
    const dirs = await makeServerDirs();
    t.teardown(() => rm(dirs.dir, { recursive: true, force: true }));
    const file = join(dirs.dir, 'storage-file');
    await writeFile(file, 'not a folder\n');
    const storage = storageOf(file);
    const bad = await spawnServer({ dirs, noWait: true, args: ['--storage', storage] });
    t.teardown(() => bad.cleanup());
    const exit = await bad.waitExit(30_000);
    t.not(exit.code, 0, `exit ${JSON.stringify(exit)}`);
    t.is(exit.signal, null);
    const err = nonEmptyLines(bad.stderr());
    t.is(err.length, 1, `one line on stderr, got: ${JSON.stringify(err)}`);
    t.true((err[0] ?? '').includes(storage), `the line names ${storage}: ${err[0]}`);
    t.regex(err[0] ?? '', /point --storage at a directory/);
    t.notRegex(err[0] ?? '', /EEXIST|ENOTDIR|mkdir/, 'no raw system error text');
    t.false(nonEmptyLines(bad.stdout()).some((l) => /DFOS listening/.test(l)));
  });
}
