import test, { type ExecutionContext } from 'ava';
import { mkdir, mkdtemp, realpath, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Stats } from 'node:fs';
import { describeFailure } from '../src/adapter/ftp-srv/replyError.js';
import { resolveClientPath } from '../src/core/clientPath.js';
import { StorageError } from '../src/storage/StorageBackend.js';
import { PathJail } from '../src/storage/local/pathJail.js';

/** What the jail's resolver finds at `clientPath` (following in-jail links), with its real path. */
async function entry(jail: PathJail, clientPath: string): Promise<{ clientPath: string; lstats: Stats | undefined; realPath: string | undefined }> {
  const at = await jail.resolver.locate(clientPath, { followFinal: true });
  try {
    return { clientPath: at.clientPath, lstats: at.lstats, realPath: at.lstats ? await realpath(at.dir.at(at.name)) : undefined };
  } finally {
    await at.dir.close();
  }
}

/** Like entry(), but the entry must exist (550 otherwise). */
async function existing(jail: PathJail, clientPath: string): Promise<{ clientPath: string; lstats: Stats; realPath: string }> {
  const e = await entry(jail, clientPath);
  if (!e.lstats || !e.realPath) throw new StorageError('not-found', `${clientPath}: No such file or directory`);
  return e as { clientPath: string; lstats: Stats; realPath: string };
}

/** A temporary directory (real path) removed after the test. */
async function tempDir(t: ExecutionContext): Promise<string> {
  const dir = await realpath(await mkdtemp(join(tmpdir(), 'dfos-jail-')));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/**
 * Asserts that `run` throws a StorageError whose FTP reply code is `code` and whose message
 * does not name `serverDir`.
 */
async function throwsFs(t: ExecutionContext, run: () => unknown, code: number, serverDir?: string): Promise<StorageError> {
  let caught: unknown;
  try {
    await run();
  } catch (err) {
    caught = err;
  }
  t.true(caught instanceof StorageError, `expected a StorageError (${code}), got ${String(caught)}`);
  const err = caught as StorageError;
  t.is(describeFailure(err).code, code, err.message);
  if (serverDir) t.false(err.message.includes(serverDir), `the message names a server path: ${err.message}`);
  return err;
}

/**
 * A storage root with homes alice and alice2 (sharing a prefix), a directory outside the
 * storage, and alice's jail.
 */
async function world(t: ExecutionContext) {
  const dir = await tempDir(t);
  const storage = join(dir, 'storage');
  const home = join(storage, 'alice');
  const sibling = join(storage, 'alice2');
  const outside = join(dir, 'outside');
  await mkdir(join(home, 'docs'), { recursive: true });
  await mkdir(sibling, { recursive: true });
  await mkdir(outside, { recursive: true });
  await writeFile(join(home, 'a.txt'), 'a');
  await writeFile(join(home, 'docs', 'd.txt'), 'd');
  await writeFile(join(sibling, 's.txt'), 's');
  await writeFile(join(outside, 'o.txt'), 'o');
  const jail = await PathJail.open(home);
  return { dir, storage, home, sibling, outside, jail };
}

test('PathJail.open creates a missing root (with parents) and keeps its real path', async (t) => {
  const dir = await tempDir(t);
  const root = join(dir, 'a', 'b', 'home');
  const jail = await PathJail.open(root);
  t.true((await stat(root)).isDirectory());
  t.is(jail.root, root);
  // Opening an existing root again works and changes nothing.
  await writeFile(join(root, 'f'), 'x');
  t.is((await PathJail.open(root)).root, root);
});

test('PathJail.open with parentIsReal: an existing directory is used as is, a missing one is created, a link is resolved', async (t) => {
  const dir = await tempDir(t);
  await mkdir(join(dir, 'alice'));
  t.is((await PathJail.open(join(dir, 'alice'), { parentIsReal: true })).root, join(dir, 'alice'));
  const created = await PathJail.open(join(dir, 'bob'), { parentIsReal: true });
  t.is(created.root, join(dir, 'bob'));
  t.true((await stat(join(dir, 'bob'))).isDirectory());
  await mkdir(join(dir, 'elsewhere'));
  await symlink(join(dir, 'elsewhere'), join(dir, 'carol'));
  t.is((await PathJail.open(join(dir, 'carol'), { parentIsReal: true })).root, join(dir, 'elsewhere'));
  await writeFile(join(dir, 'dave'), 'a file where the home should be');
  await t.throwsAsync(PathJail.open(join(dir, 'dave'), { parentIsReal: true }), { code: 'EEXIST' });
});

test('PathJail.open through a symlinked path uses the real root', async (t) => {
  const dir = await tempDir(t);
  await mkdir(join(dir, 'real'));
  await symlink(join(dir, 'real'), join(dir, 'via-link'));
  const jail = await PathJail.open(join(dir, 'via-link'));
  t.is(jail.root, join(dir, 'real'));
  await writeFile(join(dir, 'real', 'f.txt'), 'f');
  const e = await existing(jail, '/f.txt');
  t.is(e.realPath, join(dir, 'real', 'f.txt'));
});

test('clientPath normalises relative, absolute, dot and trailing-slash paths', async (t) => {
  await world(t);
  const cases: [string, string, string][] = [
    ['/', 'a.txt', '/a.txt'],
    ['/docs', 'd.txt', '/docs/d.txt'],
    ['/docs', '/a.txt', '/a.txt'],
    ['/docs', '.', '/docs'],
    ['/', './docs/./d.txt', '/docs/d.txt'],
    ['/', 'docs/', '/docs'],
    ['/', 'docs//d.txt', '/docs/d.txt'],
    ['/', '/etc/passwd', '/etc/passwd'],
  ];
  for (const [cwd, input, expected] of cases) {
    t.is(resolveClientPath(cwd, input), expected, `${cwd} + ${input}`);
  }
});

test('clientPath clamps `..` at the root', async (t) => {
  await world(t);
  t.is(resolveClientPath('/', '..'), '/');
  t.is(resolveClientPath('/', '../../../..'), '/');
  t.is(resolveClientPath('/', '../etc/passwd'), '/etc/passwd');
  t.is(resolveClientPath('/docs', '..'), '/');
  t.is(resolveClientPath('/docs', '../../alice2/s.txt'), '/alice2/s.txt');
  t.is(resolveClientPath('/docs', 'x/../../..'), '/');
  t.is(resolveClientPath('/a/b', '../c'), '/a/c');
  t.is(resolveClientPath('/', '/../../x'), '/x');
});

test('clientPath treats backslashes as separators', async (t) => {
  await world(t);
  t.is(resolveClientPath('/', '..\\..\\x'), '/x');
  t.is(resolveClientPath('/', 'docs\\d.txt'), '/docs/d.txt');
  t.is(resolveClientPath('/docs', '\\a.txt'), '/a.txt');
  t.is(resolveClientPath('/docs', '..\\..\\alice2\\s.txt'), '/alice2/s.txt');
  t.is(resolveClientPath('/', 'a\\..\\..\\..\\b'), '/b');
});

test('clientPath refuses NUL bytes (553) and missing arguments (501)', async (t) => {
  const { home } = await world(t);
  for (const input of ['a\0b', '\0', 'docs/\0/x', '../\0']) {
    await throwsFs(t, () => resolveClientPath('/', input), 553, home);
  }
  for (const input of ['', null, undefined]) {
    await throwsFs(t, () => resolveClientPath('/', input), 501, home);
  }
});

test('clientPath refuses reserved upload temporary names in any component (553)', async (t) => {
  const { home } = await world(t);
  for (const input of ['.dfos-upload-abc.part', 'docs/.dfos-upload-x', '.dfos-upload-d/file', '/x/.dfos-upload-1.part/y', 'docs\\.dfos-upload-z']) {
    await throwsFs(t, () => resolveClientPath('/', input), 553, home);
  }
  // Similar but not reserved.
  t.is(resolveClientPath('/', 'dfos-upload-a'), '/dfos-upload-a');
  t.is(resolveClientPath('/', '.dfos-uploadX'), '/.dfos-uploadX');
});

test('contains() checks on path-separator boundaries', async (t) => {
  const { jail, home, sibling, storage } = await world(t);
  t.true(jail.contains(home));
  t.true(jail.contains(join(home, 'a.txt')));
  t.true(jail.contains(join(home, 'docs', 'd.txt')));
  t.false(jail.contains(sibling), '/x/alice accepted /x/alice2');
  t.false(jail.contains(join(sibling, 's.txt')));
  t.false(jail.contains(home + '-other'));
  t.false(jail.contains(storage));
  t.false(jail.contains('/'));
  t.false(jail.contains(home.slice(0, -1)));
});

test('entry() for the root, existing, missing and nested entries', async (t) => {
  const { jail, home } = await world(t);
  const root = await entry(jail, '/');
  t.is(root.clientPath, '/');
  t.is(root.realPath, home);
  t.true(root.lstats?.isDirectory());

  const file = await entry(jail, '/a.txt');
  t.is(file.clientPath, '/a.txt');
  t.is(file.realPath, join(home, 'a.txt'));
  t.true(file.lstats?.isFile());

  const missing = await entry(jail, '/new.txt');
  t.is(missing.clientPath, '/new.txt');
  t.is(missing.lstats, undefined);
  t.is(missing.realPath, undefined);

  t.is((await entry(jail, '/docs/d.txt')).realPath, join(home, 'docs', 'd.txt'));
  // The parent must exist.
  await throwsFs(t, () => entry(jail, '/nodir/x'), 550, home);
  // existing() requires the entry itself.
  await throwsFs(t, () => existing(jail, '/new.txt'), 550, home);
  t.is((await existing(jail, '/docs')).realPath, join(home, 'docs'));
});

test('entry() follows symlinks that stay inside the jail', async (t) => {
  const { jail, home } = await world(t);
  await symlink('a.txt', join(home, 'toA'));
  await symlink('docs', join(home, 'toDocs'));
  await symlink('../alice/a.txt', join(home, 'upAndBack'));
  await symlink(join(home, 'docs', 'd.txt'), join(home, 'absInside'));
  await symlink('toA', join(home, 'chain'));
  const toA = await existing(jail, '/toA');
  t.is(toA.realPath, join(home, 'a.txt'));
  t.is(toA.clientPath, '/a.txt', 'the link is followed to its target');
  t.true(toA.lstats.isFile());
  t.is((await existing(jail, '/upAndBack')).realPath, join(home, 'a.txt'));
  t.is((await existing(jail, '/absInside')).realPath, join(home, 'docs', 'd.txt'));
  t.is((await existing(jail, '/chain')).realPath, join(home, 'a.txt'));
  // A path through a linked directory resolves in the real directory.
  const viaDir = await existing(jail, '/toDocs/d.txt');
  t.is(viaDir.clientPath, '/docs/d.txt');
  t.is(viaDir.realPath, join(home, 'docs', 'd.txt'));
  const newInLinkedDir = await entry(jail, '/toDocs/new.txt');
  t.is(newInLinkedDir.clientPath, '/docs/new.txt');
  t.is(newInLinkedDir.lstats, undefined);
});

test('defect 1: entry() refuses symlinks leading outside (file, directory, dangling, loop, other home)', async (t) => {
  const { jail, home, outside, storage } = await world(t);
  await mkdir(join(storage, 'bob'));
  await symlink(join(outside, 'o.txt'), join(home, 'fileOut'));
  await symlink(outside, join(home, 'dirOut'));
  await symlink(join(outside, 'nothing'), join(home, 'dangling'));
  await symlink(join(outside, 'nodir', 'x'), join(home, 'danglingDeep'));
  await symlink('loopB', join(home, 'loopA'));
  await symlink('loopA', join(home, 'loopB'));
  await symlink('../bob', join(home, 'bob'));
  await symlink('../..', join(home, 'up'));
  await symlink('/', join(home, 'fsRoot'));
  await symlink('fileOut', join(home, 'chainOut'));
  const denied = ['/fileOut', '/dirOut', '/dirOut/o.txt', '/dirOut/new.txt', '/dangling', '/danglingDeep', '/loopA', '/bob', '/bob/x', '/up', '/up/outside/o.txt', '/fsRoot', '/fsRoot/etc/passwd', '/chainOut'];
  for (const p of denied) {
    const err = await throwsFs(t, () => entry(jail, p), 550, home);
    t.false(err.message.includes(outside), `${p}: ${err.message}`);
    t.true(err.message.startsWith(p), `${p}: the message should name the client path: ${err.message}`);
  }
});

test('defect 1: separator-boundary containment: links into /x/alice2 are refused for /x/alice', async (t) => {
  const { jail, home, sibling } = await world(t);
  await symlink(sibling, join(home, 'sib'));
  await symlink('../alice2/s.txt', join(home, 'sibFile'));
  await symlink(join(sibling, 'new.txt'), join(home, 'sibNew'));
  for (const p of ['/sib', '/sib/s.txt', '/sib/new.txt', '/sibFile', '/sibNew']) {
    await throwsFs(t, () => entry(jail, p), 550, home);
  }
  // Lexically, `..` never gets there either.
  t.is(resolveClientPath('/', '../alice2/s.txt'), '/alice2/s.txt');
  await throwsFs(t, () => existing(jail, resolveClientPath('/', '../alice2/s.txt')), 550, home);
  // And a jail for alice2 accepts its own files but not alice's.
  const jail2 = await PathJail.open(sibling);
  t.is((await existing(jail2, '/s.txt')).realPath, join(sibling, 's.txt'));
  await symlink(join(home, 'a.txt'), join(sibling, 'toAlice'));
  await throwsFs(t, () => entry(jail2, '/toAlice'), 550, sibling);
});

test('entries: plain entries, links inside allowed, links outside / to the sibling home refused, dangling inside and missing are undefined', async (t) => {
  const { home, sibling, outside, jail } = await world(t);
  await symlink(join(home, 'docs'), join(home, 'inside-link'));
  await symlink(outside, join(home, 'out-dir'));
  await symlink(join(sibling, 's.txt'), join(home, 'to-sibling'));
  await symlink(join(home, 'nowhere'), join(home, 'dangling'));
  const plain = await entry(jail, '/a.txt');
  t.is(plain.realPath, join(home, 'a.txt'));
  t.true(plain.lstats?.isFile());
  const link = await entry(jail, '/inside-link');
  t.is(link.realPath, join(home, 'docs'));
  for (const name of ['out-dir', 'to-sibling']) {
    await throwsFs(t, () => entry(jail, `/${name}`), 550, outside);
  }
  t.is((await entry(jail, '/dangling')).lstats, undefined, 'a dangling link inside the jail leads nowhere');
  const missing = await entry(jail, '/gone');
  t.is(missing.lstats, undefined);
  t.is(missing.realPath, undefined);
});
