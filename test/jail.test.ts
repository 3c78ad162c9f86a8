import test, { type ExecutionContext } from 'ava';
import { mkdir, readdir, readFile, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { FTPError } from 'basic-ftp';
import { RawFtp, type RawReply } from './helpers/rawFtp.js';
import { startTestServer, type TestServer, type TestUser } from './helpers/testServer.js';
import { assertNoServerPaths, exists, ReplyRecorder, snapshotTree } from './helpers/jailFixtures.js';
import { type DataTransfer, rawList, rawRetr, rawUpload } from './helpers/dataTransfer.js';

const SECRET = 'TOP SECRET outside the storage\n';
const BOB_DATA = 'bob private data\n';
const INSIDE = 'inside data\n';

/** Starts a server and returns it with a reply recorder checked for server paths at the end. */
async function serverWithRecorder(t: ExecutionContext, users?: TestUser[]): Promise<{ srv: TestServer; rec: ReplyRecorder }> {
  const srv = await startTestServer(users ? { users } : {});
  const rec = new ReplyRecorder();
  t.teardown(() => srv.stop());
  return { srv, rec };
}

/** A RawFtp login whose every received byte (greeting included) is recorded. */
async function rawLogin(t: ExecutionContext, srv: TestServer, rec: ReplyRecorder, user = 'alice', password = `${user}-pw`): Promise<RawFtp> {
  const raw = rec.watch(await RawFtp.connect(srv.port));
  t.teardown(() => raw.close());
  t.is((await raw.command(`USER ${user}`)).code, 331);
  const r = await raw.command(`PASS ${password}`);
  if (r.code !== 230) throw new Error(`login failed: ${r.raw}`);
  return raw;
}

function refused(t: ExecutionContext, r: RawReply | DataTransfer, what: string, min = 500): void {
  const code = r.code;
  const text = 'raw' in r ? r.raw : r.replies.map((x) => x.raw).join('');
  t.true(code >= min && code < 600, `${what} should be refused, got: ${text.trim()}`);
}

async function pwd(raw: RawFtp): Promise<string> {
  const r = await raw.command('PWD');
  const m = /^257 "((?:[^"]|"")*)"/.exec(r.lines.at(-1) ?? '');
  if (!m) throw new Error(`bad PWD reply ${r.raw}`);
  return m[1]!.replace(/""/g, '"');
}

/**
 * alice's home with symlinks leading outside (a file and a directory outside the storage,
 * bob's home, a relative link into bob's home, dangling links to a file and a directory
 * outside) and links that stay inside.
 */
async function symlinkWorld(t: ExecutionContext) {
  const { srv, rec } = await serverWithRecorder(t);
  const home = join(srv.storage, 'alice');
  const bobHome = join(srv.storage, 'bob');
  const outside = join(srv.dir, 'outside');
  await mkdir(join(home, 'docs'), { recursive: true });
  await mkdir(bobHome, { recursive: true });
  await mkdir(join(outside, 'sub'), { recursive: true });
  await writeFile(join(outside, 'secret.txt'), SECRET, { mode: 0o640 });
  await writeFile(join(bobHome, 'b.txt'), BOB_DATA);
  await writeFile(join(home, 'real.txt'), INSIDE);
  await writeFile(join(home, 'docs', 'd.txt'), 'doc\n');
  await symlink(join(outside, 'secret.txt'), join(home, 'fileLink'));
  await symlink(outside, join(home, 'dirLink'));
  await symlink(bobHome, join(home, 'bobLink'));
  await symlink('../bob/b.txt', join(home, 'relLink'));
  await symlink(join(outside, 'nothing.txt'), join(home, 'dangling'));
  await symlink(join(outside, 'missingdir'), join(home, 'danglingDir'));
  await symlink('real.txt', join(home, 'inLink'));
  await symlink('docs', join(home, 'inDirLink'));
  await symlink('../alice/real.txt', join(home, 'upAndBack'));
  const raw = await rawLogin(t, srv, rec);
  const before = { outside: await snapshotTree(outside), bob: await snapshotTree(bobHome), home: await snapshotTree(home) };
  /** Asserts that nothing outside alice's home changed (and, unless told, nothing inside it). */
  const unchanged = async (homeToo = true) => {
    t.deepEqual(await snapshotTree(outside), before.outside, 'the directory outside the storage changed');
    t.deepEqual(await snapshotTree(bobHome), before.bob, "bob's home changed");
    t.is(await readFile(join(outside, 'secret.txt'), 'utf8'), SECRET);
    if (homeToo) t.deepEqual(await snapshotTree(home), before.home, "alice's home changed");
  };
  return { srv, rec, raw, home, bobHome, outside, unchanged };
}

const OUTSIDE_LINKS = ['fileLink', 'dirLink', 'bobLink', 'relLink', 'dangling', 'danglingDir'];

test('each user sees only their own home as / (created at first login)', async (t) => {
  const { srv, rec } = await serverWithRecorder(t);
  t.false(await exists(join(srv.storage, 'alice')), 'home exists before the first login');
  const alice = rec.watch(await srv.client('alice', 'alice-pw'));
  t.true(await exists(join(srv.storage, 'alice')), 'home not created at first login');
  t.is(await alice.pwd(), '/');
  await alice.uploadFrom(Readable.from([Buffer.from('alice file\n')]), 'a.txt');
  await alice.ensureDir('/d1');
  t.is(await readFile(join(srv.storage, 'alice', 'a.txt'), 'utf8'), 'alice file\n');
  t.true(await exists(join(srv.storage, 'alice', 'd1')));

  t.false(await exists(join(srv.storage, 'bob')));
  const bob = rec.watch(await srv.client('bob', 'bob-pw'));
  t.true(await exists(join(srv.storage, 'bob')));
  t.is(await bob.pwd(), '/');
  t.deepEqual(await bob.list(), [], "bob sees alice's files");
  const err = await t.throwsAsync(bob.downloadTo(new Writable({ write: (_c, _e, cb) => cb() }), 'a.txt'));
  t.is((err as FTPError).code, 550);
  await bob.uploadFrom(Readable.from([Buffer.from('bob file\n')]), 'a.txt');
  t.is(await readFile(join(srv.storage, 'alice', 'a.txt'), 'utf8'), 'alice file\n', "bob's upload changed alice's file");
  t.is(await readFile(join(srv.storage, 'bob', 'a.txt'), 'utf8'), 'bob file\n');
  t.is(await alice.pwd(), '/d1'); // ensureDir changes into the directory
  t.deepEqual((await alice.list('/')).map((e) => e.name).sort(), ['a.txt', 'd1']);
  t.deepEqual((await readdir(srv.storage)).sort(), ['alice', 'bob']);
  await assertNoServerPaths(t, srv, rec);
});

test('`..` never leaves the home: CWD, RETR, STOR, MKD, DELE', async (t) => {
  const { srv, rec } = await serverWithRecorder(t);
  const home = join(srv.storage, 'alice');
  await mkdir(join(home, 'sub'), { recursive: true });
  await mkdir(join(srv.storage, 'bob'), { recursive: true });
  await writeFile(join(srv.storage, 'bob', 'x'), BOB_DATA);
  await writeFile(join(srv.dir, 'outside.txt'), SECRET);
  const raw = await rawLogin(t, srv, rec);

  t.is((await raw.command('CWD ..')).code, 250);
  t.is(await pwd(raw), '/', 'CWD .. left the home');
  t.is((await raw.command('CWD sub')).code, 250);
  t.is((await raw.command('CWD ../../../..')).code, 250);
  t.is(await pwd(raw), '/');
  t.is((await raw.command('CDUP')).code, 250);
  t.is(await pwd(raw), '/');
  refused(t, await raw.command('CWD ../bob'), 'CWD ../bob');
  t.is(await pwd(raw), '/');

  for (const path of ['../../x', '../outside.txt', '../../outside.txt', '../bob/x', 'sub/../../bob/x', '../../../../../../etc/passwd']) {
    const r = await rawRetr(raw, path);
    refused(t, r, `RETR ${path}`);
    t.is(r.bytes.length, 0);
  }
  for (const path of ['../x', '../../x']) {
    const r = await rawUpload(raw, `STOR ${path}`, 'dotdot\n');
    // `..` clamps at `/`: either refused, or stored as /x inside the home.
    if (r.code === 226) t.is(await readFile(join(home, 'x'), 'utf8'), 'dotdot\n');
    else refused(t, r, `STOR ${path}`);
  }
  const mkd = await raw.command('MKD ../newdir');
  if (mkd.code === 257) t.is(mkd.lines[0], '257 "/newdir" created');
  else refused(t, mkd, 'MKD ../newdir');
  refused(t, await raw.command('DELE ../bob/x'), 'DELE ../bob/x');
  refused(t, await raw.command('DELE ../../outside.txt'), 'DELE ../../outside.txt');
  refused(t, await raw.command('RNFR ../bob/x'), 'RNFR ../bob/x');

  t.is(await readFile(join(srv.storage, 'bob', 'x'), 'utf8'), BOB_DATA);
  t.is(await readFile(join(srv.dir, 'outside.txt'), 'utf8'), SECRET);
  for (const p of [join(srv.storage, 'x'), join(srv.dir, 'x'), join(srv.storage, 'newdir'), join(srv.dir, 'newdir')]) {
    t.false(await exists(p), `${p} was created outside the home`);
  }
  t.deepEqual((await readdir(srv.storage)).sort(), ['alice', 'bob']);
  await assertNoServerPaths(t, srv, rec);
});

test('absolute paths are inside the home: /etc/passwd is the missing /etc/passwd of the home', async (t) => {
  const { srv, rec } = await serverWithRecorder(t);
  const raw = await rawLogin(t, srv, rec);
  const home = join(srv.storage, 'alice');
  const r = await rawRetr(raw, '/etc/passwd');
  t.is(r.code, 550);
  t.is(r.bytes.length, 0);
  t.regex(r.replies[0]!.raw, /\/etc\/passwd/, 'the reply should name the client path');
  t.is((await raw.command('SIZE /etc/passwd')).code, 550);
  t.is((await raw.command('SITE VIEW /etc/passwd')).code, 550);
  refused(t, await raw.command('CWD /etc'), 'CWD /etc');
  refused(t, await raw.command('CWD /var/log'), 'CWD /var/log');
  refused(t, await rawList(raw, '/etc'), 'LIST /etc', 400);

  // Once /etc/passwd exists in the home, the same absolute path reaches exactly that file.
  t.is((await raw.command('MKD /etc')).lines[0], '257 "/etc" created');
  t.is((await rawUpload(raw, 'STOR /etc/passwd', 'not the real one\n')).code, 226);
  t.is(await readFile(join(home, 'etc', 'passwd'), 'utf8'), 'not the real one\n');
  const again = await rawRetr(raw, '/etc/passwd');
  t.is(again.code, 226);
  t.is(again.bytes.toString(), 'not the real one\n');
  t.is((await raw.command('CWD /etc')).code, 250);
  t.is(await pwd(raw), '/etc');
  t.is((await rawRetr(raw, 'passwd')).bytes.toString(), 'not the real one\n');
  await assertNoServerPaths(t, srv, rec);
});

test('backslashes are separators and clamp like slashes', async (t) => {
  const { srv, rec } = await serverWithRecorder(t);
  const home = join(srv.storage, 'alice');
  await mkdir(join(home, 'sub'), { recursive: true });
  await mkdir(join(srv.storage, 'bob'), { recursive: true });
  await writeFile(join(srv.storage, 'bob', 'b.txt'), BOB_DATA);
  await writeFile(join(srv.dir, 'x'), SECRET);
  const raw = await rawLogin(t, srv, rec);

  for (const path of ['..\\..\\x', '..\\bob\\b.txt', 'sub\\..\\..\\bob\\b.txt', '\\..\\..\\x']) {
    const r = await rawRetr(raw, path);
    refused(t, r, `RETR ${path}`);
    t.is(r.bytes.length, 0);
  }
  refused(t, await raw.command('CWD ..\\bob'), 'CWD ..\\bob');
  refused(t, await raw.command('DELE ..\\bob\\b.txt'), 'DELE ..\\bob\\b.txt');
  const stor = await rawUpload(raw, 'STOR ..\\..\\y', 'bs\n');
  if (stor.code === 226) t.is(await readFile(join(home, 'y'), 'utf8'), 'bs\n');
  else refused(t, stor, 'STOR ..\\..\\y');
  t.false(await exists(join(srv.dir, 'y')));
  t.false(await exists(join(srv.storage, 'y')));

  // A backslash is a separator, not part of a name.
  t.is((await rawUpload(raw, 'STOR sub\\f.txt', 'in sub\n')).code, 226);
  t.is(await readFile(join(home, 'sub', 'f.txt'), 'utf8'), 'in sub\n');
  t.false(await exists(join(home, 'sub\\f.txt')));
  t.is((await raw.command('CWD \\sub')).code, 250);
  t.is(await pwd(raw), '/sub');

  t.is(await readFile(join(srv.storage, 'bob', 'b.txt'), 'utf8'), BOB_DATA);
  t.is(await readFile(join(srv.dir, 'x'), 'utf8'), SECRET);
  await assertNoServerPaths(t, srv, rec);
});

test('defect 1: a sibling sharing the prefix (alice vs alice2) is unreachable by any path', async (t) => {
  const { srv, rec } = await serverWithRecorder(t, [
    { name: 'alice', password: 'alice-pw' },
    { name: 'alice2', password: 'alice2-pw' },
  ]);
  const home = join(srv.storage, 'alice');
  const sibling = join(srv.storage, 'alice2');
  await mkdir(home, { recursive: true });
  await mkdir(join(sibling, 'sd'), { recursive: true });
  await writeFile(join(sibling, 'secret2.txt'), SECRET);
  // Links whose real path starts with alice's home path as a string, but not as a directory.
  await symlink(sibling, join(home, 'sibDir'));
  await symlink(join(sibling, 'secret2.txt'), join(home, 'sibFile'));
  await symlink('../alice2', join(home, 'sibRel'));
  await symlink(join(sibling, 'new.txt'), join(home, 'sibDangling'));
  const before = await snapshotTree(sibling);
  const raw = await rawLogin(t, srv, rec);

  const readPaths = [
    '../alice2/secret2.txt',
    '/../alice2/secret2.txt',
    '..\\alice2\\secret2.txt',
    'sibFile',
    'sibDir/secret2.txt',
    'sibRel/secret2.txt',
    'sibDangling',
  ];
  for (const path of readPaths) {
    const r = await rawRetr(raw, path);
    refused(t, r, `RETR ${path}`);
    t.false(r.bytes.toString().includes('TOP SECRET'), `RETR ${path} leaked the sibling's file`);
    refused(t, await raw.command(`SITE VIEW ${path}`), `SITE VIEW ${path}`);
    refused(t, await raw.command(`SIZE ${path}`), `SIZE ${path}`);
  }
  for (const path of ['../alice2', 'sibDir', 'sibRel', 'sibDir/sd']) {
    refused(t, await raw.command(`CWD ${path}`), `CWD ${path}`);
    t.is(await pwd(raw), '/');
    const list = await rawList(raw, path);
    refused(t, list, `LIST ${path}`, 400);
    t.false(list.bytes.toString().includes('secret2'), `LIST ${path} showed the sibling's files`);
  }
  for (const path of ['sibDir/secret2.txt', 'sibRel/secret2.txt', '../alice2/secret2.txt', 'sibFile']) {
    await raw.command(`DELE ${path}`);
  }
  for (const path of ['sibDir/new.txt', 'sibRel/new.txt', '../alice2/new.txt', 'sibDangling', 'sibFile']) {
    const r = await rawUpload(raw, `STOR ${path}`, 'from alice\n');
    refused(t, r, `STOR ${path}`);
  }
  for (const path of ['sibDir/d', 'sibRel/d', '../alice2/d']) refused(t, await raw.command(`MKD ${path}`), `MKD ${path}`);
  refused(t, await raw.command('RMD sibDir/sd'), 'RMD sibDir/sd');
  refused(t, await raw.command('RNFR sibDir/secret2.txt'), 'RNFR sibDir/secret2.txt');
  refused(t, await raw.command('SITE CHMOD 777 sibFile'), 'SITE CHMOD 777 sibFile');

  const list = await rawList(raw);
  t.is(list.code, 226);
  for (const name of ['sibDir', 'sibFile', 'sibRel', 'sibDangling']) t.false(list.names.includes(name), `LIST shows ${name}`);
  t.deepEqual(await snapshotTree(sibling), before, "alice changed alice2's home");

  // alice2 herself still sees her files.
  const raw2 = await rawLogin(t, srv, rec, 'alice2');
  t.is((await rawRetr(raw2, 'secret2.txt')).bytes.toString(), SECRET);
  await assertNoServerPaths(t, srv, rec);
});

test('NUL bytes in names are refused with a 5xx and create nothing', async (t) => {
  const { srv, rec } = await serverWithRecorder(t);
  const raw = await rawLogin(t, srv, rec);
  const home = join(srv.storage, 'alice');
  await writeFile(join(home, 'a'), 'a\n');
  const before = await snapshotTree(home);
  for (const verb of ['RETR', 'STOR', 'APPE', 'MKD', 'XMKD', 'DELE', 'CWD', 'SIZE', 'MDTM', 'RNFR', 'SITE VIEW']) {
    raw.write(Buffer.from(`${verb} a\0b\r\n`, 'latin1'));
    const r = await raw.read();
    refused(t, r, `${verb} a\\0b`);
    t.false(r.raw.includes('\0'), 'the reply echoes a NUL byte');
  }
  raw.write(Buffer.from('STOR \0\r\n', 'latin1'));
  refused(t, await raw.read(), 'STOR \\0');
  t.true(await raw.silentFor(200), `unexpected extra replies: ${JSON.stringify(raw.pending)}`);
  t.deepEqual(await snapshotTree(home), before);
  t.deepEqual((await readdir(srv.storage)).sort(), ['alice']);
  t.is((await raw.command('NOOP')).code, 200);
  await assertNoServerPaths(t, srv, rec);
});

test('defect 1: symlinks leading outside cannot be read (RETR, SITE VIEW, SIZE, MDTM, LIST, NLST, CWD)', async (t) => {
  const w = await symlinkWorld(t);
  const { raw } = w;
  const readPaths = ['fileLink', 'dirLink/secret.txt', 'bobLink/b.txt', 'relLink', 'dangling', 'danglingDir/x', '/dirLink/sub/../secret.txt'];
  for (const path of readPaths) {
    const r = await rawRetr(raw, path);
    refused(t, r, `RETR ${path}`);
    t.false(r.bytes.toString().includes('SECRET') || r.bytes.toString().includes('bob'), `RETR ${path} leaked data`);
    const view = await raw.command(`SITE VIEW ${path}`);
    t.is(view.code, 550, `SITE VIEW ${path}: ${view.raw}`);
    refused(t, await raw.command(`SIZE ${path}`), `SIZE ${path}`);
    refused(t, await raw.command(`MDTM ${path}`), `MDTM ${path}`);
  }
  for (const path of ['dirLink', 'bobLink', 'danglingDir', 'dirLink/sub']) {
    for (const verb of ['LIST', 'NLST']) {
      const r = await rawList(raw, path, verb);
      refused(t, r, `${verb} ${path}`, 400);
      t.false(/secret|sub|b\.txt/.test(r.bytes.toString()), `${verb} ${path} listed the outside: ${r.bytes.toString()}`);
    }
    refused(t, await raw.command(`CWD ${path}`), `CWD ${path}`);
    t.is(await pwd(raw), '/', `CWD ${path} moved the client`);
  }
  for (const path of ['fileLink', 'relLink']) {
    const r = await rawList(raw, path);
    refused(t, r, `LIST ${path}`, 400);
    t.is(r.bytes.length, 0);
  }

  // The same with basic-ftp.
  const client = w.rec.watch(await w.srv.client());
  const sink = new Writable({ write: (c, _e, cb) => (t.fail(`received ${String(c)}`), cb()) });
  for (const path of ['fileLink', 'dirLink/secret.txt', 'bobLink/b.txt']) {
    const err = await t.throwsAsync(client.downloadTo(sink, path));
    t.is((err as FTPError).code, 550, `basic-ftp RETR ${path}`);
  }
  await t.throwsAsync(client.cd('dirLink'));
  await t.throwsAsync(client.size('fileLink'));
  await t.throwsAsync(client.list('dirLink'));
  await w.unchanged();
  await assertNoServerPaths(t, w.srv, w.rec);
});

test('defect 1: writing through symlinks leading outside creates and changes nothing outside (STOR, APPE, STOU, dangling)', async (t) => {
  const w = await symlinkWorld(t);
  const { raw } = w;
  const attempts = [
    'STOR fileLink',
    'STOR dangling',
    'STOR dirLink/new.txt',
    'STOR dirLink/secret.txt',
    'STOR bobLink/new.txt',
    'STOR bobLink/b.txt',
    'STOR relLink',
    'STOR danglingDir/x.txt',
    'APPE fileLink',
    'APPE dangling',
    'APPE dirLink/secret.txt',
    'STOU dirLink/x',
    'STOU bobLink/x',
  ];
  for (const line of attempts) {
    const r = await rawUpload(raw, line, 'EVIL\n');
    refused(t, r, line);
  }
  // REST + STOR through a link, too.
  t.is((await raw.command('REST 3')).code, 350);
  refused(t, await rawUpload(raw, 'STOR fileLink', 'EVIL\n'), 'REST 3 + STOR fileLink');
  refused(t, await raw.command('SITE CHMOD 777 fileLink'), 'SITE CHMOD 777 fileLink');
  refused(t, await raw.command('SITE CHMOD 777 dirLink'), 'SITE CHMOD 777 dirLink');
  refused(t, await raw.command('SITE CHMOD 777 dirLink/secret.txt'), 'SITE CHMOD 777 dirLink/secret.txt');

  const client = w.rec.watch(await w.srv.client());
  for (const path of ['fileLink', 'dangling', 'dirLink/basic.txt']) {
    const err = await t.throwsAsync(client.uploadFrom(Readable.from([Buffer.from('EVIL\n')]), path));
    t.true((err as FTPError).code >= 500, `basic-ftp STOR ${path}`);
  }
  t.false(await exists(join(w.outside, 'nothing.txt')), 'STOR through a dangling link created the target');
  t.false(await exists(join(w.outside, 'missingdir')));
  t.false(await exists(join(w.outside, 'new.txt')));
  await w.unchanged();
  await assertNoServerPaths(t, w.srv, w.rec);
});

test('defect 1: deleting through symlinks leaves the outside intact (DELE, RMD)', async (t) => {
  const w = await symlinkWorld(t);
  const { raw } = w;
  for (const path of ['dirLink/secret.txt', 'bobLink/b.txt', 'dirLink/../outside/secret.txt', 'danglingDir/x']) {
    refused(t, await raw.command(`DELE ${path}`), `DELE ${path}`);
  }
  for (const path of ['dirLink/sub', 'dirLink', 'bobLink', 'danglingDir']) {
    refused(t, await raw.command(`RMD ${path}`), `RMD ${path}`);
    refused(t, await raw.command(`XRMD ${path}`), `XRMD ${path}`);
  }
  await w.unchanged();
  // Deleting a link itself may remove the link, but never what it points to.
  for (const path of ['fileLink', 'relLink', 'dangling']) await raw.command(`DELE ${path}`);
  await w.unchanged(false);
  t.true(await exists(join(w.outside, 'secret.txt')));
  t.true(await exists(join(w.bobHome, 'b.txt')));
  await assertNoServerPaths(t, w.srv, w.rec);
});

test('defect 1: renaming via symlinks leading outside is refused', async (t) => {
  const w = await symlinkWorld(t);
  const { raw } = w;
  for (const path of ['fileLink', 'dirLink/secret.txt', 'bobLink/b.txt', 'relLink', 'dangling', 'dirLink/sub']) {
    const r = await raw.command(`RNFR ${path}`);
    if (r.code === 350) refused(t, await raw.command('RNTO stolen.txt'), `RNFR ${path} + RNTO`);
    else refused(t, r, `RNFR ${path}`);
  }
  // Renaming a file or directory of the home INTO the outside.
  const targets = ['dirLink/moved.txt', 'bobLink/moved.txt', 'dangling', 'danglingDir/moved.txt', 'fileLink', 'relLink'];
  for (const to of targets) {
    t.is((await raw.command('RNFR real.txt')).code, 350);
    refused(t, await raw.command(`RNTO ${to}`), `RNFR real.txt + RNTO ${to}`);
  }
  t.is((await raw.command('RNFR docs')).code, 350);
  refused(t, await raw.command('RNTO dirLink/docs'), 'RNFR docs + RNTO dirLink/docs');
  t.false(await exists(join(w.outside, 'moved.txt')));
  t.false(await exists(join(w.outside, 'docs')));
  t.false(await exists(join(w.bobHome, 'moved.txt')));
  t.is(await readFile(join(w.home, 'real.txt'), 'utf8'), INSIDE);
  await w.unchanged();
  await assertNoServerPaths(t, w.srv, w.rec);
});

test('defect 1: MKD inside a linked outside directory creates nothing', async (t) => {
  const w = await symlinkWorld(t);
  const { raw } = w;
  for (const path of ['dirLink/newdir', 'dirLink/sub/newdir', 'bobLink/newdir', 'danglingDir', 'danglingDir/newdir', 'dangling']) {
    refused(t, await raw.command(`MKD ${path}`), `MKD ${path}`);
    refused(t, await raw.command(`XMKD ${path}`), `XMKD ${path}`);
  }
  t.false(await exists(join(w.outside, 'newdir')));
  t.false(await exists(join(w.outside, 'missingdir')));
  t.false(await exists(join(w.bobHome, 'newdir')));
  await w.unchanged();
  await assertNoServerPaths(t, w.srv, w.rec);
});

test('defect 1: LIST hides entries whose links lead outside and shows links inside', async (t) => {
  const w = await symlinkWorld(t);
  const expected = ['docs', 'inDirLink', 'inLink', 'real.txt', 'upAndBack'];
  const list = await rawList(w.raw);
  t.is(list.code, 226);
  t.deepEqual([...list.names].sort(), expected);
  const nlst = await rawList(w.raw, undefined, 'NLST');
  t.is(nlst.code, 226);
  t.deepEqual([...nlst.names].sort(), expected);
  for (const name of OUTSIDE_LINKS) t.false(list.bytes.toString().includes(name), `LIST shows ${name}`);
  const client = w.rec.watch(await w.srv.client());
  t.deepEqual((await client.list()).map((e) => e.name).sort(), expected);
  await assertNoServerPaths(t, w.srv, w.rec);
});

test('a symlink pointing inside the home works (RETR, SITE VIEW, SIZE, CWD)', async (t) => {
  const w = await symlinkWorld(t);
  const { raw } = w;
  for (const path of ['inLink', 'upAndBack', 'inDirLink/../real.txt']) {
    const r = await rawRetr(raw, path);
    t.is(r.code, 226, `RETR ${path}`);
    t.is(r.bytes.toString(), INSIDE);
    t.is((await raw.command(`SIZE ${path}`)).lines[0], `213 ${INSIDE.length}`);
  }
  t.deepEqual((await raw.command('SITE VIEW inLink')).lines, [`200-VIEW text bytes=12 size=12 eol=lf`, ' inside data', '200 VIEW end']);
  t.is((await rawRetr(raw, 'inDirLink/d.txt')).bytes.toString(), 'doc\n');
  t.is((await raw.command('CWD inDirLink')).code, 250);
  t.is(await pwd(raw), '/inDirLink');
  const list = await rawList(raw);
  t.deepEqual(list.names, ['d.txt']);
  const client = w.rec.watch(await w.srv.client());
  const chunks: Buffer[] = [];
  await client.downloadTo(new Writable({ write: (c: Buffer, _e, cb) => (chunks.push(c), cb()) }), 'inLink');
  t.is(Buffer.concat(chunks).toString(), INSIDE);
  await w.unchanged();
  await assertNoServerPaths(t, w.srv, w.rec);
});

test('defect 2: replies name client paths only (550 for a missing file, 257 for MKD)', async (t) => {
  const { srv, rec } = await serverWithRecorder(t);
  const raw = await rawLogin(t, srv, rec);
  const r = await rawRetr(raw, 'missing.txt');
  t.is(r.code, 550);
  t.regex(r.replies[0]!.raw, /^550 .*\/missing\.txt/);
  t.is((await raw.command('MKD sub')).lines[0], '257 "/sub" created');
  t.is((await raw.command('CWD sub')).code, 250);
  t.is((await raw.command('MKD deeper')).lines[0], '257 "/sub/deeper" created');
  t.is((await raw.command('XMKD /other')).lines[0], '257 "/other" created');
  t.is(await pwd(raw), '/sub');
  const failures = [
    'MKD deeper',
    'DELE nope',
    'RMD nope',
    'RNFR nope',
    'SIZE nope',
    'MDTM nope',
    'SITE VIEW nope',
    'CWD nope',
    'SITE CHMOD 644 nope',
    'MKD nope/a/b',
  ];
  for (const line of failures) {
    const reply = await raw.command(line);
    refused(t, reply, line);
    t.regex(reply.raw, /\/sub\/(deeper|nope)/, `${line} should name the client path: ${reply.raw}`);
  }
  refused(t, await rawList(raw, 'nope'), 'LIST nope', 400);
  refused(t, await rawUpload(raw, 'STOR nope/x.txt', 'x'), 'STOR nope/x.txt');
  await assertNoServerPaths(t, srv, rec);
});

test('defect 1: paths behind a link leading outside get the same refusal whether they exist outside or not', async (t) => {
  // Checking only the parent's realpath answers "No such file or directory" when an outside
  // directory is missing and "Permission denied" when it exists: an oracle for the layout
  // outside the jail. The nearest existing ancestor must be checked instead.
  const w = await symlinkWorld(t);
  const pairs: [string, string][] = [
    ['dirLink/sub/x', 'dirLink/nosuch/x'],
    ['bobLink/b.txt/x', 'bobLink/nosuch/x'],
    ['dirLink/sub/y/z', 'dirLink/nosuch/y/z'],
    ['dirLink/x', 'danglingDir/x'],
    ['fileLink/x', 'dangling/x'],
  ];
  for (const [there, missing] of pairs) {
    for (const verb of ['SIZE', 'CWD', 'MKD', 'DELE', 'RNFR', 'SITE VIEW']) {
      const a = await w.raw.command(`${verb} ${there}`);
      const b = await w.raw.command(`${verb} ${missing}`);
      refused(t, a, `${verb} ${there}`);
      refused(t, b, `${verb} ${missing}`);
      t.is(a.raw.replace(`/${there}`, '<path>'), b.raw.replace(`/${missing}`, '<path>'), `${verb}: an outside path's existence shows in the reply`);
    }
    const a = await rawUpload(w.raw, `STOR ${there}`, 'x');
    const b = await rawUpload(w.raw, `STOR ${missing}`, 'x');
    t.is(a.replies[0]!.raw.replace(`/${there}`, '<path>'), b.replies[0]!.raw.replace(`/${missing}`, '<path>'), 'STOR');
  }
  await w.unchanged();
  await assertNoServerPaths(t, w.srv, w.rec);
});
