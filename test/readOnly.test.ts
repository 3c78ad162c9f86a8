import test, { type ExecutionContext } from 'ava';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import type { FTPError } from 'basic-ftp';
import { RawFtp, type RawReply } from './helpers/rawFtp.js';
import { startTestServer, type TestServer } from './helpers/testServer.js';
import { assertNoServerPaths, ReplyRecorder, snapshotTree } from './helpers/jailFixtures.js';
import { type DataTransfer, rawList, rawRetr, rawUpload } from './helpers/dataTransfer.js';

const CONTENT = 'original content\n';

/** A server with a read-only user `ro` whose home already holds files and directories. */
async function readOnlyWorld(t: ExecutionContext) {
  const srv: TestServer = await startTestServer({
    users: [
      { name: 'ro', password: 'ro-pw', readOnly: true },
      { name: 'rw', password: 'rw-pw' },
    ],
  });
  t.teardown(() => srv.stop());
  const home = join(srv.storage, 'ro');
  await mkdir(join(home, 'empty'), { recursive: true });
  await mkdir(join(home, 'full'), { recursive: true });
  await writeFile(join(home, 'file.txt'), CONTENT, { mode: 0o644 });
  await writeFile(join(home, 'full', 'inner.txt'), 'inner\n', { mode: 0o644 });
  const rec = new ReplyRecorder();
  const raw = rec.watch(await RawFtp.connect(srv.port));
  t.teardown(() => raw.close());
  await raw.command('USER ro');
  t.is((await raw.command('PASS ro-pw')).code, 230);
  const before = await snapshotTree(home);
  /** Asserts that the home is exactly as before (no change, no upload temporary left). */
  const unchanged = async (what: string) => t.deepEqual(await snapshotTree(home), before, `${what} changed the disk`);
  return { srv, home, rec, raw, unchanged };
}

function refused(t: ExecutionContext, r: RawReply | DataTransfer, what: string): void {
  const text = 'raw' in r ? r.raw : r.replies.map((x) => x.raw).join('');
  t.true(r.code >= 500 && r.code < 600, `${what} should be refused with a 5xx, got: ${text.trim()}`);
}

test('a read-only user can LIST, NLST, RETR, SITE VIEW, SIZE, MDTM and CWD', async (t) => {
  const { raw, srv, rec, unchanged } = await readOnlyWorld(t);
  const list = await rawList(raw);
  t.is(list.code, 226);
  t.deepEqual([...list.names].sort(), ['empty', 'file.txt', 'full']);
  const nlst = await rawList(raw, 'full', 'NLST');
  t.deepEqual(nlst.names, ['inner.txt']);
  const retr = await rawRetr(raw, 'file.txt');
  t.is(retr.code, 226);
  t.is(retr.bytes.toString(), CONTENT);
  t.deepEqual((await raw.command('SITE VIEW file.txt')).lines, ['200-VIEW text bytes=17 size=17 eol=lf', ' original content', '200 VIEW end']);
  t.is((await raw.command('SIZE file.txt')).lines[0], '213 17');
  t.is((await raw.command('MDTM file.txt')).code, 213);
  t.is((await raw.command('CWD full')).code, 250);
  t.is((await rawRetr(raw, 'inner.txt')).bytes.toString(), 'inner\n');
  t.is((await raw.command('CDUP')).code, 250);

  const client = rec.watch(await srv.client('ro', 'ro-pw'));
  t.deepEqual((await client.list()).map((e) => e.name).sort(), ['empty', 'file.txt', 'full']);
  const chunks: Buffer[] = [];
  await client.downloadTo(new Writable({ write: (c: Buffer, _e, cb) => (chunks.push(c), cb()) }), 'file.txt');
  t.is(Buffer.concat(chunks).toString(), CONTENT);
  await unchanged('reading');
  await assertNoServerPaths(t, srv, rec);
});

test('defect 3: read-only uploads are refused by every verb (STOR, APPE, STOU, REST+STOR, any case)', async (t) => {
  const { raw, srv, rec, unchanged } = await readOnlyWorld(t);
  const attempts = [
    'STOR new.txt',
    'STOR file.txt',
    'Stor new.txt',
    'stor file.txt',
    'STOR full/new.txt',
    'APPE file.txt',
    'APPE new.txt',
    'appe file.txt',
    'STOU',
    'STOU prefix',
    'stou',
    'STOR empty',
  ];
  for (const line of attempts) {
    refused(t, await rawUpload(raw, line, 'CHANGED\n'), `read-only ${line}`);
    await unchanged(line);
  }
  t.is((await raw.command('REST 4')).code, 350);
  refused(t, await rawUpload(raw, 'STOR file.txt', 'CHANGED\n'), 'read-only REST 4 + STOR file.txt');
  await unchanged('REST + STOR');

  const client = rec.watch(await srv.client('ro', 'ro-pw'));
  for (const path of ['new.txt', 'file.txt']) {
    const err = await t.throwsAsync(client.uploadFrom(Readable.from([Buffer.from('CHANGED\n')]), path));
    t.true((err as FTPError).code >= 500, `basic-ftp upload ${path}: ${String(err)}`);
    const err2 = await t.throwsAsync(client.appendFrom(Readable.from([Buffer.from('CHANGED\n')]), path));
    t.true((err2 as FTPError).code >= 500, `basic-ftp append ${path}: ${String(err2)}`);
  }
  await unchanged('basic-ftp uploads');
  await assertNoServerPaths(t, srv, rec);
});

test('defect 3: read-only deletes, directory changes, renames and SITE CHMOD are refused by every verb and alias', async (t) => {
  const { raw, srv, rec, unchanged } = await readOnlyWorld(t);
  const attempts = [
    'DELE file.txt',
    'dele file.txt',
    'Dele full/inner.txt',
    'RMD empty',
    'rmd empty',
    'XRMD empty',
    'xrmd empty',
    'XrMd empty',
    'RMD full',
    'MKD newdir',
    'mkd newdir',
    'XMKD newdir',
    'xmkd newdir',
    'XmKd newdir',
    'MKD full/sub',
    'SITE CHMOD 777 file.txt',
    'site chmod 777 file.txt',
    'SITE CHMOD 000 full',
    'SITE CHMOD 0600 full/inner.txt',
  ];
  for (const line of attempts) {
    refused(t, await raw.command(line), `read-only ${line}`);
    await unchanged(line);
  }
  for (const [from, to] of [
    ['file.txt', 'renamed.txt'],
    ['full', 'full2'],
    ['file.txt', 'full/file.txt'],
    ['full/inner.txt', 'inner.txt'],
    ['empty', 'full/empty'],
  ] as const) {
    for (const [rnfr, rnto] of [
      ['RNFR', 'RNTO'],
      ['rnfr', 'rnto'],
    ]) {
      const r = await raw.command(`${rnfr} ${from}`);
      if (r.code === 350) refused(t, await raw.command(`${rnto} ${to}`), `read-only ${rnfr} ${from} + ${rnto} ${to}`);
      else refused(t, r, `read-only ${rnfr} ${from}`);
      await unchanged(`rename ${from} to ${to}`);
    }
  }
  const client = rec.watch(await srv.client('ro', 'ro-pw'));
  await t.throwsAsync(client.remove('file.txt'));
  await t.throwsAsync(client.removeEmptyDir('empty'));
  await t.throwsAsync(client.rename('file.txt', 'x.txt'));
  await t.throwsAsync(client.send('MKD viaBasicFtp'));
  await unchanged('basic-ftp changes');
  // The session still works after all these refusals.
  t.is((await rawRetr(raw, 'file.txt')).bytes.toString(), CONTENT);
  await assertNoServerPaths(t, srv, rec);
});

test('read-only is per user: a read-write user on the same server can change its own home', async (t) => {
  const { srv, rec, unchanged } = await readOnlyWorld(t);
  const rw = rec.watch(await RawFtp.login(srv.port, 'rw', 'rw-pw'));
  t.teardown(() => rw.close());
  t.is((await rawUpload(rw, 'STOR w.txt', 'w\n')).code, 226);
  t.is((await rw.command('XMKD d')).code, 257);
  t.is((await rw.command('XRMD d')).code, 250);
  t.is((await rw.command('SITE CHMOD 600 w.txt')).code, 200);
  t.is((await rw.command('DELE w.txt')).code, 250);
  await unchanged("the read-write user's actions");
  await assertNoServerPaths(t, srv, rec);
});
