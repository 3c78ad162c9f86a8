import test from 'ava';
import { mkdtemp, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { hashPassword } from '../src/users/passwordHash.js';
import { isLoopbackAddress } from '../src/util/address.js';
import { UserStore, type ReloadResult } from '../src/users/UserStore.js';
import { locateJsonError } from '../src/users/jsonErrorLocation.js';
import { addUser, removeUser, setUserPassword } from '../src/users/userEdits.js';
import { UsersFileError } from '../src/users/usersFileError.js';
import { readUsersFile } from '../src/users/usersFileReader.js';

const FAST = { ln: 10, r: 8, p: 1 };

async function tempDir(t: { teardown: (fn: () => Promise<void>) => void }): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'dfos-users-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

async function writeUsers(file: string, users: Record<string, unknown>): Promise<void> {
  await writeFile(file, JSON.stringify({ users }, null, 2));
}

/** Polls `check` every 25 ms for up to `ms`. */
async function eventually(check: () => boolean | Promise<boolean>, ms = 5000): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await check()) return true;
    await new Promise((r) => setTimeout(r, 25));
  }
  return check();
}

test('load, list and authenticate', async (t) => {
  const dir = await tempDir(t);
  const file = path.join(dir, 'users.json');
  await writeUsers(file, {
    alice: { password: await hashPassword('a-pass', FAST) },
    bob: { password: await hashPassword('b-pass', FAST), readOnly: true, localOnly: false, note: 'kept' },
  });
  const store = await UserStore.load(file);
  t.is(store.size, 2);
  t.deepEqual(store.list(), [
    { name: 'alice', readOnly: false, localOnly: false, requireTls: false },
    { name: 'bob', readOnly: true, localOnly: false, requireTls: false },
  ]);
  t.deepEqual(await store.authenticate('alice', 'a-pass', '10.0.0.5'), {
    ok: true,
    user: { name: 'alice', readOnly: false, localOnly: false, requireTls: false },
  });
  t.deepEqual(await store.authenticate('bob', 'b-pass', '127.0.0.1'), {
    ok: true,
    user: { name: 'bob', readOnly: true, localOnly: false, requireTls: false },
  });
  t.deepEqual(await store.authenticate('alice', 'b-pass', '127.0.0.1'), { ok: false, reason: 'bad-password' });
  t.deepEqual(await store.authenticate('Alice', 'a-pass', '127.0.0.1'), { ok: false, reason: 'unknown-user' });
  // Cached success is still a success; a wrong password after a cached success still fails.
  t.true((await store.authenticate('alice', 'a-pass', '10.0.0.5')).ok);
  t.deepEqual(await store.authenticate('alice', 'a-pass ', '10.0.0.5'), { ok: false, reason: 'bad-password' });
});

test('unknown users cost a scrypt run too', async (t) => {
  const dir = await tempDir(t);
  const file = path.join(dir, 'users.json');
  await writeUsers(file, { alice: { password: await hashPassword('a-pass') } });
  const store = await UserStore.load(file);
  const time = async (name: string) => {
    const start = process.hrtime.bigint();
    await store.authenticate(name, 'wrong', '127.0.0.1');
    return Number(process.hrtime.bigint() - start) / 1e6;
  };
  await time('alice'); // warm up
  // Best of three each, to keep a busy machine's noise out.
  let known = Infinity;
  let unknown = Infinity;
  for (let i = 0; i < 3; i++) {
    known = Math.min(known, await time('alice'));
    unknown = Math.min(unknown, await time('nobody'));
  }
  t.deepEqual(await store.authenticate('nobody', 'x', '127.0.0.1'), { ok: false, reason: 'unknown-user' });
  // Both run scrypt with the default parameters; allow generous noise.
  t.true(unknown > known / 4, `unknown ${unknown} ms vs known ${known} ms`);
});

test('localOnly users may log in only from loopback', async (t) => {
  const dir = await tempDir(t);
  const file = path.join(dir, 'users.json');
  await writeUsers(file, { demo: { password: await hashPassword('demo', FAST), localOnly: true } });
  const store = await UserStore.load(file);
  t.deepEqual(await store.authenticate('demo', 'demo', '10.0.0.5'), { ok: false, reason: 'not-local' });
  t.deepEqual(await store.authenticate('demo', 'demo', '::ffff:10.0.0.5'), { ok: false, reason: 'not-local' });
  t.deepEqual(await store.authenticate('demo', 'demo', undefined), { ok: false, reason: 'not-local' });
  for (const addr of ['127.0.0.1', '127.1.2.3', '::1', '::ffff:127.0.0.1']) {
    const r = await store.authenticate('demo', 'demo', addr);
    t.true(r.ok, addr);
  }
  // A wrong password is reported as such even from far away.
  t.deepEqual(await store.authenticate('demo', 'nope', '10.0.0.5'), { ok: false, reason: 'bad-password' });
});

test('requireTls: read from users.json (default false), exposed on the authenticated user, written by addUser only when set', async (t) => {
  const dir = await tempDir(t);
  const file = path.join(dir, 'users.json');
  await writeUsers(file, {
    secure: { password: await hashPassword('s', FAST), requireTls: true },
    plain: { password: await hashPassword('p', FAST) },
  });
  const store = await UserStore.load(file);
  t.deepEqual(await store.authenticate('secure', 's', '10.0.0.5'), {
    ok: true,
    user: { name: 'secure', readOnly: false, localOnly: false, requireTls: true },
  });
  const plain = await store.authenticate('plain', 'p', '10.0.0.5');
  t.true(plain.ok && plain.user.requireTls === false);

  await addUser(file, 'added', await hashPassword('a', FAST), { requireTls: true });
  await addUser(file, 'other', await hashPassword('o', FAST));
  const doc = JSON.parse(await readFile(file, 'utf8')) as { users: Record<string, Record<string, unknown>> };
  t.is(doc.users.added!.requireTls, true);
  t.false('requireTls' in doc.users.other!, 'not written when false, so the file stays as before');
  t.true((await store.reload()).ok);
  t.is(store.get('added')?.requireTls, true);

  await writeUsers(file, { bad: { password: await hashPassword('b', FAST), requireTls: 'yes' } });
  const r = await store.reload();
  t.false(r.ok);
  if (!r.ok) t.regex(r.error.message, /user "bad" has "requireTls": "yes", which must be true or false; fix it in/);
});

test('isLoopbackAddress', (t) => {
  for (const a of ['127.0.0.1', '127.255.255.254', '::1', '::ffff:127.0.0.1', '0:0:0:0:0:0:0:1', '[::1]', '::1%lo', '::FFFF:127.0.0.9']) {
    t.true(isLoopbackAddress(a), a);
  }
  for (const a of ['10.0.0.5', '128.0.0.1', '::2', '::ffff:10.0.0.5', '1::1', '', undefined, 'localhost', '127.0.0.1.example', '::ffff:7f00:1x']) {
    t.false(isLoopbackAddress(a), String(a));
  }
});

test('a plaintext password names the user and the fix', async (t) => {
  const dir = await tempDir(t);
  const file = path.join(dir, 'users.json');
  await writeUsers(file, { alice: { password: await hashPassword('a', FAST) }, bob: { password: 'hunter2' } });
  const err = await t.throwsAsync(UserStore.load(file), { instanceOf: UsersFileError });
  t.is(err!.message, `${file}: user "bob" has a password that is not a DFOS hash; set it with: dfos users passwd bob --users ${file}`);
  t.false(err!.message.includes('\n'));
});

test('other problems give one line naming the user and what to do', async (t) => {
  const dir = await tempDir(t);
  const file = path.join(dir, 'users.json');
  const hash = await hashPassword('x', FAST);
  const cases: Array<[unknown, RegExp]> = [
    [{ users: { '.hidden': { password: hash } } }, /user name "\.hidden" is not allowed .*rename it in/],
    [{ users: { 'a/b': { password: hash } } }, /user name "a\/b" is not allowed/],
    [{ users: { bob: {} } }, /user "bob" has no password; set it with: dfos users passwd bob --users/],
    [{ users: { bob: 'hunter2' } }, /user "bob" must be an object like .*; set it with: dfos users passwd bob/],
    [{ users: { bob: { password: hash, readOnly: 'yes' } } }, /user "bob" has "readOnly": "yes", which must be true or false; fix it in/],
    [{ users: { Bob: { password: hash }, bob: { password: hash } } }, /users "Bob" and "bob" differ only in case/],
    [{ users: [] }, /expected \{"users": .* at the top level/],
    [[], /expected \{"users": .* at the top level/],
    [{ users: { a: { password: 'x' }, b: { password: 'y' } } }, /user "a" .* \(and 1 more problem in the file\)$/],
  ];
  for (const [doc, re] of cases) {
    await writeFile(file, JSON.stringify(doc));
    const err = await t.throwsAsync(readUsersFile(file), { instanceOf: UsersFileError });
    t.regex(err!.message, re);
    t.false(err!.message.includes('\n'));
  }
});

test('invalid JSON names the file, the position and the fix', async (t) => {
  const dir = await tempDir(t);
  const file = path.join(dir, 'users.json');
  await writeFile(file, '{\n  "users": {\n    "a": {"password": "x"},\n  }\n}\n');
  const err = await t.throwsAsync(readUsersFile(file), { instanceOf: UsersFileError });
  t.is(err!.code, 'syntax');
  t.regex(err!.message, new RegExp(`^${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: not valid JSON at line 4, column 3 \\(trailing comma before "}"\\); correct it there`));
  await writeFile(file, '');
  t.regex((await t.throwsAsync(readUsersFile(file)))!.message, /the file is empty; add a user with: dfos users add/);
  await rm(file);
  t.regex((await t.throwsAsync(readUsersFile(file)))!.message, /does not exist; create it with: dfos users add NAME --users/);
});

test('locateJsonError finds where the JSON breaks', (t) => {
  t.deepEqual(locateJsonError('{"a":}'), { offset: 5, reason: 'unexpected "}"' });
  t.is(locateJsonError('{"a":1').reason, 'unexpected end of file');
  t.is(locateJsonError("{'a':1}").reason, 'single quotes; JSON needs double quotes');
  t.is(locateJsonError('{"a":1 "b":2}').offset, 7);
  t.is(locateJsonError('[1,]').reason, 'trailing comma before "]"');
  t.is(locateJsonError('{} x').offset, 3);
});

test('reload keeps the old users when the new file is invalid', async (t) => {
  const dir = await tempDir(t);
  const file = path.join(dir, 'users.json');
  await writeUsers(file, { alice: { password: await hashPassword('a', FAST) } });
  const store = await UserStore.load(file);

  await writeFile(file, '{"users": {"alice": ');
  const bad = await store.reload();
  t.false(bad.ok);
  if (!bad.ok) {
    t.true(bad.error instanceof UsersFileError);
    t.is(bad.error.code, 'syntax');
  }
  t.true((await store.authenticate('alice', 'a', '::1')).ok);

  await writeUsers(file, { alice: { password: 'plain' } });
  t.false((await store.reload()).ok);
  t.true((await store.authenticate('alice', 'a', '::1')).ok);

  await rm(file);
  const gone = await store.reload();
  t.false(gone.ok);
  if (!gone.ok) t.is(gone.error.code, 'missing');
  t.true((await store.authenticate('alice', 'a', '::1')).ok);

  await writeUsers(file, { carol: { password: await hashPassword('c', FAST) } });
  t.deepEqual(await store.reload(), { ok: true, count: 1 });
  t.deepEqual(await store.authenticate('alice', 'a', '::1'), { ok: false, reason: 'unknown-user' });
  t.true((await store.authenticate('carol', 'c', '::1')).ok);
});

test('a changed hash invalidates the cached success', async (t) => {
  const dir = await tempDir(t);
  const file = path.join(dir, 'users.json');
  await writeUsers(file, { alice: { password: await hashPassword('old', FAST) } });
  const store = await UserStore.load(file);
  t.true((await store.authenticate('alice', 'old', '::1')).ok);
  await writeUsers(file, { alice: { password: await hashPassword('new', FAST) } });
  await store.reload();
  t.deepEqual(await store.authenticate('alice', 'old', '::1'), { ok: false, reason: 'bad-password' });
  t.true((await store.authenticate('alice', 'new', '::1')).ok);
});

test('the verification cache is bounded', async (t) => {
  const dir = await tempDir(t);
  const file = path.join(dir, 'users.json');
  const users: Record<string, unknown> = {};
  for (const n of ['u1', 'u2', 'u3']) users[n] = { password: await hashPassword(n, FAST) };
  await writeUsers(file, users);
  const store = await UserStore.load(file, { cacheSize: 2 });
  for (const n of ['u1', 'u2', 'u3', 'u1', 'u2', 'u3']) t.true((await store.authenticate(n, n, '::1')).ok, n);
  const none = await UserStore.load(file, { cacheSize: 0 });
  t.true((await none.authenticate('u1', 'u1', '::1')).ok);
});

test('watch picks up an atomic rename and ignores unchanged content', async (t) => {
  const dir = await tempDir(t);
  const file = path.join(dir, 'users.json');
  await writeUsers(file, { alice: { password: await hashPassword('a', FAST) } });
  const store = await UserStore.load(file, { watchPollMs: 200 });
  const results: ReloadResult[] = [];
  const stop = store.watch((r) => results.push(r));
  t.teardown(stop);

  // Replace the file the way editors and `dfos users` do: write elsewhere, rename over it.
  const tmp = path.join(dir, '.users.json.tmp');
  await writeUsers(tmp, {
    alice: { password: await hashPassword('a', FAST) },
    bob: { password: await hashPassword('b', FAST) },
  });
  await rename(tmp, file);
  t.true(await eventually(() => store.get('bob') !== undefined), 'bob appears within 5 s');
  t.true((await store.authenticate('bob', 'b', '127.0.0.1')).ok);
  t.true(await eventually(() => results.length >= 1));
  t.deepEqual(results[0], { ok: true, count: 2 });

  // An invalid replacement is reported and the users stay.
  await writeFile(tmp, '{"users": {"bob": {"password": "plaintext"}}}');
  await rename(tmp, file);
  t.true(await eventually(() => results.some((r) => !r.ok)));
  const failed = results.find((r) => !r.ok);
  t.regex(failed && !failed.ok ? failed.error.message : '', /user "bob" has a password that is not a DFOS hash/);
  t.is(store.size, 2);

  // Touching the file without changing it reports nothing new.
  await new Promise((r) => setTimeout(r, 400));
  const before = results.length;
  const text = await readFile(file, 'utf8');
  await writeFile(file, text);
  await new Promise((r) => setTimeout(r, 600));
  t.is(results.length, before);

  stop();
  await writeUsers(file, {});
  await new Promise((r) => setTimeout(r, 500));
  t.is(store.size, 2, 'no reload after stop');
});

test('users file edits: add, passwd, remove keep other entries untouched', async (t) => {
  const dir = await tempDir(t);
  const file = path.join(dir, 'users.json');
  await addUser(file, 'alice', await hashPassword('a', FAST), { localOnly: true });
  t.is((await stat(file)).mode & 0o777, 0o600);
  const doc = JSON.parse(await readFile(file, 'utf8'));
  doc.comment = 'top-level extra';
  doc.users.bob = { password: await hashPassword('b', FAST), quota: 5, readOnly: true };
  doc.users.broken = { password: 'plain', extra: [1, 2] };
  await writeFile(file, JSON.stringify(doc));
  const bobBefore = doc.users.bob;

  await addUser(file, 'carol', await hashPassword('c', FAST));
  await t.throwsAsync(addUser(file, 'carol', await hashPassword('c', FAST)), { message: /user "carol" already exists/ });
  await t.throwsAsync(addUser(file, 'CAROL', await hashPassword('c', FAST)), { message: /differs from "CAROL" only in case/ });
  await t.throwsAsync(addUser(file, '..', await hashPassword('c', FAST)), { instanceOf: UsersFileError });
  await t.throwsAsync(addUser(file, '__proto__', await hashPassword('c', FAST)), { instanceOf: UsersFileError });
  await setUserPassword(file, 'broken', await hashPassword('fixed', FAST));
  await t.throwsAsync(setUserPassword(file, 'nobody', await hashPassword('x', FAST)), { message: /there is no user "nobody"/ });
  await removeUser(file, 'alice');
  await t.throwsAsync(removeUser(file, 'alice'), { message: /there is no user "alice"/ });

  const after = JSON.parse(await readFile(file, 'utf8'));
  t.is(after.comment, 'top-level extra');
  t.deepEqual(after.users.bob, bobBefore);
  t.deepEqual(after.users.broken.extra, [1, 2]);
  t.deepEqual(Object.keys(after.users), ['bob', 'broken', 'carol']);
  const store = await UserStore.load(file);
  t.true((await store.authenticate('broken', 'fixed', '::1')).ok);
  t.true((await store.authenticate('bob', 'b', '::1')).ok);
  t.deepEqual(store.get('bob'), { name: 'bob', readOnly: true, localOnly: false, requireTls: false });
});
