import test from 'ava';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, stat, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { Client, FTPError } from 'basic-ftp';
import {
  AuthError,
  ConnectionError,
  DfosClient,
  DfosError,
  LocalError,
  NotFoundError,
  PermissionError,
  ProtocolError,
  QuotaError,
  type ProgressEvent,
} from '../src/client/index.js';
import { toDfosError } from '../src/client/errorMapping.js';
import { parseListDate } from '../src/client/RemoteEntry.js';
import { closedPort, collector, connectClient, sameBytes, startControlRelay, tempDir } from './helpers/clientFixtures.js';
import { auditRecords } from './helpers/logFiles.js';
import { RawFtp } from './helpers/rawFtp.js';
import { startTestServer } from './helpers/testServer.js';

const USERS = [
  { name: 'alice', password: 'alice-pw' },
  { name: 'ro', password: 'ro-pw', readOnly: true },
];

/** Asserts a rejection is exactly `Class` (a DfosError) and returns it. */
async function rejectsWith<E extends DfosError>(
  t: { true: (v: boolean, m?: string) => void; fail: (m: string) => void },
  promise: Promise<unknown>,
  Class: new (...args: never[]) => E,
): Promise<E> {
  try {
    await promise;
  } catch (err) {
    t.true(err instanceof DfosError, `not a DfosError: ${String(err)}`);
    t.true(err instanceof Class, `expected ${Class.name}, got ${(err as Error).name}: ${(err as Error).message}`);
    return err as E;
  }
  t.fail(`expected ${Class.name}, but the call succeeded`);
  throw new Error('unreachable');
}

test('every method against the real server: upload (path, Buffer, Readable), list, size, view, download (path, Writable), rename, mkdir, delete, removeDir', async (t) => {
  const srv = await startTestServer({ users: USERS });
  t.teardown(() => srv.stop());
  const dir = await tempDir(t);
  const client = await connectClient(t, srv);
  t.is(client.host, '127.0.0.1');
  t.is(client.port, srv.port);
  t.is(client.user, 'alice');

  const local = join(dir, 'local.bin');
  const content = randomBytes(200_000);
  await writeFile(local, content);
  t.deepEqual(await client.upload(local, 'from-path.bin'), { bytes: content.length, resumedFrom: 0 });
  t.deepEqual(await client.upload(Buffer.from('buffer\n'), 'from-buffer.txt'), { bytes: 7, resumedFrom: 0 });
  t.deepEqual(await client.upload(Readable.from([Buffer.from('read'), Buffer.from('able\n')]), 'from-stream.txt'), {
    bytes: 9,
    resumedFrom: 0,
  });
  await client.mkdir('sub');
  const aliceRoot = join(srv.storage, 'alice');
  sameBytes(t, await readFile(join(aliceRoot, 'from-path.bin')), content);
  t.is(await readFile(join(aliceRoot, 'from-buffer.txt'), 'utf8'), 'buffer\n');
  t.is(await readFile(join(aliceRoot, 'from-stream.txt'), 'utf8'), 'readable\n');

  // A known modification time in the past (LIST shows "Mmm dd  yyyy" for it) and a recent one.
  const old = new Date(Date.UTC(2021, 2, 4, 5, 6, 7));
  await utimes(join(aliceRoot, 'from-buffer.txt'), old, old);
  // Listings that MLSD refuses first (a missing path, a file): basic-ftp alone would fall back
  // to LIST there and then keep LIST for good, losing exact times.
  await rejectsWith(t, client.list('no-such-dir'), NotFoundError);
  await client.list('from-path.bin').catch(() => undefined);
  const entries = await client.list();
  const byName = new Map(entries.map((e) => [e.name, e]));
  t.deepEqual([...byName.keys()].sort(), ['from-buffer.txt', 'from-path.bin', 'from-stream.txt', 'sub']);
  t.like(byName.get('from-path.bin'), { type: 'file', size: content.length });
  t.like(byName.get('sub'), { type: 'directory' });
  t.true(byName.get('sub')!.modifiedAt instanceof Date);
  // MLSD when FEAT offers it (exact to the second), else LIST (UTC, to the minute; older files to the day).
  const raw = await RawFtp.login(srv.port, 'alice', 'alice-pw');
  const mlsd = (await raw.command('FEAT')).lines.some((l) => /^ MLST\b/.test(l));
  raw.close();
  t.log(mlsd ? 'the server offers MLSD' : 'the server offers LIST only');
  const mtime = (await stat(join(aliceRoot, 'from-path.bin'))).mtime.getTime();
  if (mlsd) {
    t.is(byName.get('from-buffer.txt')!.modifiedAt.toISOString(), '2021-03-04T05:06:07.000Z');
    t.is(Math.floor(byName.get('from-path.bin')!.modifiedAt.getTime() / 1000), Math.floor(mtime / 1000));
  } else {
    t.is(byName.get('from-buffer.txt')!.modifiedAt.toISOString(), '2021-03-04T00:00:00.000Z');
    t.is(byName.get('from-path.bin')!.modifiedAt.getTime(), mtime - (mtime % 60_000));
  }

  t.is(await client.size('from-path.bin'), content.length);
  t.deepEqual(await client.view('from-buffer.txt'), Buffer.from('buffer\n'));
  t.like(await client.preview('from-path.bin'), { fileSize: content.length, truncated: true, mode: 'hex' });
  t.deepEqual((await client.preview('from-path.bin')).bytes, content.subarray(0, 1024));

  const target = join(dir, 'down.bin');
  t.deepEqual(await client.download('from-path.bin', target), { bytes: content.length, resumedFrom: 0 });
  sameBytes(t, await readFile(target), content);
  const sink = collector();
  let finished = false;
  sink.on('finish', () => (finished = true));
  await client.download('from-stream.txt', sink);
  t.is(sink.bytes().toString(), 'readable\n');
  t.true(finished, 'the Writable is ended after a successful download');

  await client.rename('from-stream.txt', 'sub/moved.txt');
  t.deepEqual((await client.list('sub')).map((e) => e.name), ['moved.txt']);
  t.false(existsSync(join(aliceRoot, 'from-stream.txt')));
  await client.delete('sub/moved.txt');
  await client.removeDir('sub');
  t.deepEqual((await client.list()).map((e) => e.name).sort(), ['from-buffer.txt', 'from-path.bin']);
  t.deepEqual(await readdir(dir), ['down.bin', 'local.bin'], 'no temporary files left next to the target');
});

test('AuthError: wrong password and unknown user (530), with code, command and no password in the message', async (t) => {
  const srv = await startTestServer({ users: USERS });
  t.teardown(() => srv.stop());
  const err = await rejectsWith(
    t,
    DfosClient.connect({ host: srv.host, port: srv.port, user: 'alice', password: 'wrong-secret' }),
    AuthError,
  );
  t.is(err.code, 530);
  t.regex(err.command, /PASS \*\*\*/);
  t.regex(err.message, /alice/);
  t.regex(err.message, /530/);
  t.notRegex(err.message, /wrong-secret/);
  const unknown = await rejectsWith(t, DfosClient.connect({ host: srv.host, port: srv.port, user: 'nobody', password: 'x' }), AuthError);
  t.is(unknown.code, 530);
});

test('NotFoundError (550 missing path) from every path method, naming the path', async (t) => {
  const srv = await startTestServer({ users: USERS });
  t.teardown(() => srv.stop());
  const dir = await tempDir(t);
  const client = await connectClient(t, srv);
  const calls: [string, () => Promise<unknown>][] = [
    ['download', () => client.download('missing.txt', join(dir, 'x'))],
    ['download to stream', () => client.download('missing.txt', collector())],
    ['size', () => client.size('missing.txt')],
    ['view', () => client.view('missing.txt')],
    ['delete', () => client.delete('missing.txt')],
    ['removeDir', () => client.removeDir('missing.txt')],
    ['rename', () => client.rename('missing.txt', 'other.txt')],
    ['list', () => client.list('missing.txt')],
    ['mkdir in a missing parent', () => client.mkdir('missing.txt/child')],
    ['upload into a missing directory', () => client.upload(Buffer.from('x'), 'missing.txt/child')],
  ];
  for (const [what, call] of calls) {
    const err = await rejectsWith(t, call(), NotFoundError);
    t.is(err.code, 550, what);
    t.regex(err.message, /missing\.txt/, what);
    t.regex(err.message, /No such file or directory/, what);
    t.true(err.command.length > 0, what);
    t.truthy(err.reply, what);
    t.false(err.cause instanceof DfosError);
    t.true(err.cause instanceof FTPError, `${what}: the basic-ftp error is kept as cause`);
  }
  // The client is still usable after all those errors.
  t.deepEqual(await client.list(), []);
});

test('PermissionError: read-only account (550), existing name (550), reserved temporary name (553)', async (t) => {
  const srv = await startTestServer({ users: USERS });
  t.teardown(() => srv.stop());
  const alice = await connectClient(t, srv);
  await alice.mkdir('exists');
  const existing = await rejectsWith(t, alice.mkdir('exists'), PermissionError);
  t.is(existing.code, 550);
  t.regex(existing.message, /mkdir exists failed: .*Already exists/);
  const reserved = await rejectsWith(t, alice.upload(Buffer.from('x'), '.dfos-upload-x.part'), PermissionError);
  t.is(reserved.code, 553);

  await mkdir(join(srv.storage, 'ro'), { recursive: true });
  await writeFile(join(srv.storage, 'ro', 'file.txt'), 'data');
  const ro = await connectClient(t, srv, 'ro');
  for (const call of [
    () => ro.upload(Buffer.from('x'), 'new.txt'),
    () => ro.delete('file.txt'),
    () => ro.mkdir('dir'),
    () => ro.rename('file.txt', 'other.txt'),
  ]) {
    const err = await rejectsWith(t, call(), PermissionError);
    t.is(err.code, 550);
    t.regex(err.message, /Permission denied/);
  }
  // Reading still works for the read-only account.
  t.deepEqual(await ro.view('file.txt'), Buffer.from('data'));
});

test('ConnectionError: refused connection, use after close, a stalled network (timeout), a stopped server', async (t) => {
  const srv = await startTestServer({ users: USERS });
  t.teardown(() => srv.stop());
  const port = await closedPort();
  const refused = await rejectsWith(t, DfosClient.connect({ host: '127.0.0.1', port, user: 'alice', password: 'x' }), ConnectionError);
  t.is(refused.code, undefined);
  t.regex(refused.message, /ECONNREFUSED/);
  t.regex(refused.message, new RegExp(`127\\.0\\.0\\.1:${port}`));

  const client = await connectClient(t, srv);
  client.close();
  t.true(client.closed);
  const afterClose = await rejectsWith(t, client.list(), ConnectionError);
  t.regex(afterClose.message, /closed/);
  await rejectsWith(t, client.upload(Buffer.from('x'), 'x.txt'), ConnectionError);

  // A network that stops delivering: the call times out (timeoutMs) instead of hanging.
  const relay = await startControlRelay(srv.port, { split: false });
  t.teardown(() => relay.close());
  const slow = await DfosClient.connect({ host: '127.0.0.1', port: relay.port, user: 'alice', password: 'alice-pw', timeoutMs: 5000 });
  t.teardown(() => slow.close());
  relay.stalled = true;
  const timedOut = await rejectsWith(t, slow.size('x'), ConnectionError);
  t.regex(timedOut.message, /timeout/i);
  t.is(timedOut.command, 'SIZE x');

  // The server goes away: the next call cannot reconnect.
  const other = await connectClient(t, srv);
  await srv.server.shutdown(1000);
  await rejectsWith(t, other.list(), ConnectionError);
});

test('ConnectionError when the client is closed during a running transfer; the call does not hang', async (t) => {
  const srv = await startTestServer({ users: USERS });
  t.teardown(() => srv.stop());
  const client = await connectClient(t, srv);
  const big = randomBytes(8 * 1024 * 1024);
  await client.upload(big, 'big.bin');
  let closedAt = -1;
  const err = await rejectsWith(
    t,
    client.download('big.bin', collector(), {
      onProgress: (p) => {
        if (closedAt < 0) {
          closedAt = p.bytes;
          client.close();
        }
      },
    }),
    ConnectionError,
  );
  t.true(closedAt > 0 && closedAt < big.length);
  t.regex(err.message, /download big\.bin failed/);
});

test('LocalError: missing local source, unreadable target directory, a source stream that fails mid-upload', async (t) => {
  const srv = await startTestServer({ users: USERS });
  t.teardown(() => srv.stop());
  const dir = await tempDir(t);
  const client = await connectClient(t, srv);
  const missing = await rejectsWith(t, client.upload(join(dir, 'nope.txt'), 'nope.txt'), LocalError);
  t.regex(missing.message, /upload nope\.txt failed: local side: .*ENOENT/);
  await client.upload(Buffer.from('abc'), 'a.txt');
  await rejectsWith(t, client.download('a.txt', join(dir, 'no-such-dir', 'a.txt')), LocalError);
  const dirTarget = await rejectsWith(t, client.download('a.txt', dir), LocalError);
  t.regex(dirTarget.message, /is a directory/);

  let sent = 0;
  const failing = new Readable({
    read() {
      if (sent++ < 3) this.push(randomBytes(64 * 1024));
      else this.destroy(new Error('disk read failed'));
    },
  });
  const midway = await rejectsWith(t, client.upload(failing, 'partial.bin'), LocalError);
  t.regex(midway.message, /disk read failed/);
  // The upload was aborted: DFOS keeps nothing, and the next call reconnects and works.
  t.deepEqual((await client.list()).map((e) => e.name), ['a.txt']);
});

test('ProtocolError: unusable remote paths (CR, LF, NUL, empty) are refused before anything is sent', async (t) => {
  const srv = await startTestServer({ users: USERS });
  t.teardown(() => srv.stop());
  const client = await connectClient(t, srv);
  for (const path of ['a\r\nDELE b', 'x\n', 'nul\0', '']) {
    const err = await rejectsWith(t, client.delete(path), ProtocolError);
    t.is(err.code, undefined);
    t.regex(err.message, /CR, LF or NUL/);
  }
  const invalid = await rejectsWith(t, DfosClient.connect({ host: '127.0.0.1', port: 70000, user: 'a', password: 'b' }), ProtocolError);
  t.regex(invalid.message, /port must be/);
  t.deepEqual(await client.list(), []);
});

test('error mapping by reply code: 530 auth, 550 missing/refused, 553 refused, 552/452 quota, 421/425/426 connection, others protocol', (t) => {
  const op = { action: 'upload', path: 'r/q1.csv', command: 'STOR r/q1.csv' };
  const cases: [number, string, new (...a: never[]) => DfosError][] = [
    [530, '530 Login incorrect', AuthError],
    [550, '550 /r/q1.csv: No such file or directory', NotFoundError],
    [550, '550 /r/q1.csv: Permission denied (read-only account)', PermissionError],
    [553, '553 /r/q1.csv: File name not allowed', PermissionError],
    [552, '552 Exceeded storage allocation', QuotaError],
    [452, '452 /r/q1.csv: Insufficient storage space', QuotaError],
    [421, '421 Server shutting down', ConnectionError],
    [425, "425 Can't open data connection", ConnectionError],
    [426, '426 Connection closed; transfer aborted', ConnectionError],
    [554, '554 Invalid REST offset', ProtocolError],
    [502, '502 Command not implemented', ProtocolError],
  ];
  for (const [code, message, Class] of cases) {
    const err = toDfosError(new FTPError({ code, message }), op);
    t.true(err instanceof Class, `${code} → ${Class.name}, got ${err.name}`);
    t.is(err.name, Class.name);
    t.is(err.code, code);
    t.is(err.command, 'STOR r/q1.csv');
    t.is(err.path, 'r/q1.csv');
    t.is(err.message, `upload r/q1.csv failed: ${message} (STOR r/q1.csv)`);
  }
  const reset = Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' });
  t.true(toDfosError(reset, op) instanceof ConnectionError);
  t.true(toDfosError(new Error('Timeout (data socket)'), op) instanceof ConnectionError);
  t.true(toDfosError(new Error('Unexpected FTP response is requesting an answer: 350 x'), op) instanceof ProtocolError);
  t.true(toDfosError(new Error('x'), { ...op, localError: new Error('EACCES') }) instanceof LocalError);
});

test('progress: reported during upload and download, then once at the end with the full count', async (t) => {
  const srv = await startTestServer({ users: USERS });
  t.teardown(() => srv.stop());
  const dir = await tempDir(t);
  const client = await connectClient(t, srv);
  const size = 3 * 1024 * 1024 + 123;
  const content = randomBytes(size);
  const local = join(dir, 'up.bin');
  await writeFile(local, content);

  const check = (events: ProgressEvent[], total: number, what: string) => {
    t.true(events.length >= 3, `${what}: ${events.length} events`);
    const last = events.at(-1)!;
    t.deepEqual(last, { bytes: total, totalBytes: total }, what);
    t.is(events.filter((e) => e.bytes === total).length, 1, `${what}: the full count is reported once, at the end`);
    t.true(events.some((e) => e.bytes > 0 && e.bytes < total), `${what}: reported during the transfer`);
    for (let i = 1; i < events.length; i++) t.true(events[i]!.bytes >= events[i - 1]!.bytes, `${what}: never goes back`);
  };

  const fromPath: ProgressEvent[] = [];
  await client.upload(local, 'a.bin', { onProgress: (e) => fromPath.push(e) });
  check(fromPath, size, 'upload from a path');
  t.true(fromPath.every((e) => e.totalBytes === size), 'a local file has a known total');

  const fromStream: ProgressEvent[] = [];
  await client.upload(Readable.from([content.subarray(0, 1_000_000), content.subarray(1_000_000)]), 'b.bin', {
    onProgress: (e) => fromStream.push(e),
  });
  t.deepEqual(fromStream.at(-1), { bytes: size, totalBytes: size }, 'a stream: the total is known at the end');
  t.true(fromStream.slice(0, -1).every((e) => e.totalBytes === undefined));

  const down: ProgressEvent[] = [];
  await client.download('a.bin', join(dir, 'down.bin'), { onProgress: (e) => down.push(e) });
  check(down, size, 'download');
  t.true(down.every((e) => e.totalBytes === size), 'the remote size comes from SIZE');

  const downStream: ProgressEvent[] = [];
  await client.download('b.bin', collector(), { onProgress: (e) => downStream.push(e) });
  check(downStream, size, 'download to a stream');

  const empty: ProgressEvent[] = [];
  await client.upload(Buffer.alloc(0), 'empty.bin', { onProgress: (e) => empty.push(e) });
  t.deepEqual(empty, [{ bytes: 0, totalBytes: 0 }]);

  // A progress handler that throws aborts the transfer with a LocalError.
  const err = await rejectsWith(
    t,
    client.upload(content, 'c.bin', {
      onProgress: () => {
        throw new Error('handler broke');
      },
    }),
    LocalError,
  );
  t.regex(err.message, /handler broke/);
});

test('concurrent calls on one client are queued and all succeed (vanilla basic-ftp closes the client instead)', async (t) => {
  const srv = await startTestServer({ users: USERS });
  t.teardown(() => srv.stop());
  const client = await connectClient(t, srv);
  const files = Array.from({ length: 8 }, (_, i) => ({ name: `f${i}.bin`, data: randomBytes(50_000 + i) }));
  const results = await Promise.all([
    ...files.map((f) => client.upload(f.data, f.name)),
    client.mkdir('d'),
    client.list(),
  ]);
  t.is(results.length, 10);
  const [views, sizes, lists] = await Promise.all([
    Promise.all(files.map((f) => client.view(f.name))),
    Promise.all(files.map((f) => client.size(f.name))),
    Promise.all([client.list(), client.list('d')]),
  ]);
  t.deepEqual(views, files.map((f) => f.data.subarray(0, 1024)));
  t.deepEqual(sizes, files.map((f) => f.data.length));
  t.is(lists[0].length, 9);
  const downloads = files.map(() => collector());
  await Promise.all(files.map((f, i) => client.download(f.name, downloads[i]!)));
  files.forEach((f, i) => sameBytes(t, downloads[i]!.bytes(), f.data, f.name));
  // A failure in the middle of the queue does not affect the calls around it.
  const mixed = await Promise.allSettled([client.size('f0.bin'), client.size('missing'), client.size('f1.bin')]);
  t.deepEqual(mixed.map((r) => r.status), ['fulfilled', 'rejected', 'fulfilled']);

  const vanilla = new Client(5000);
  t.teardown(() => vanilla.close());
  await vanilla.access({ host: srv.host, port: srv.port, user: 'alice', password: 'alice-pw' });
  const raw = await Promise.allSettled([vanilla.size('f0.bin'), vanilla.size('f1.bin')]);
  t.true(
    raw.some((r) => r.status === 'rejected' && /another one is still running/.test(String(r.reason))),
    'without the queue, basic-ftp fails concurrent calls',
  );
});

test('await using closes the client at the end of the scope', async (t) => {
  const srv = await startTestServer({ users: USERS });
  t.teardown(() => srv.stop());
  t.is(typeof Symbol.asyncDispose, 'symbol', 'Node provides Symbol.asyncDispose');
  let kept: DfosClient | undefined;
  {
    await using client = await DfosClient.connect({ host: srv.host, port: srv.port, user: 'alice', password: 'alice-pw' });
    kept = client;
    await client.upload(Buffer.from('scoped'), 's.txt');
    t.false(client.closed);
  }
  t.true(kept.closed);
  await rejectsWith(t, kept.view('s.txt'), ConnectionError);
});

test('a connection lost between calls (server idle timeout) is reopened by the next call', async (t) => {
  const srv = await startTestServer({ users: USERS, config: { idleTimeout: 1 } });
  t.teardown(() => srv.stop());
  const client = await connectClient(t, srv);
  await client.upload(Buffer.from('still here'), 'k.txt');
  // The server closes idle sessions after 1 s: wait until it has logged the logout.
  const logout = await auditRecords(srv.logDir, (r) => r.action === 'logout' && r.user === 'alice', 1, 15_000);
  t.is(logout.length, 1, 'the idle session was closed');
  t.deepEqual(await client.view('k.txt'), Buffer.from('still here'));
  // A second session logged in: the one the view opened.
  const logins = await auditRecords(srv.logDir, (r) => r.action === 'login' && r.user === 'alice', 2, 15_000);
  t.is(new Set(logins.map((r) => r.session)).size, 2, 'the client logged in again');
});

test('resume: upload continues with APPE from the remote size (path, Buffer and Readable sources)', async (t) => {
  const srv = await startTestServer({ users: USERS });
  t.teardown(() => srv.stop());
  const dir = await tempDir(t);
  const client = await connectClient(t, srv);
  const content = randomBytes(300_000);
  const local = join(dir, 'full.bin');
  await writeFile(local, content);
  const remoteFile = join(srv.storage, 'alice', 'r.bin');

  await client.upload(content.subarray(0, 100_000), 'r.bin');
  const events: ProgressEvent[] = [];
  t.deepEqual(await client.upload(local, 'r.bin', { resume: true, onProgress: (e) => events.push(e) }), {
    bytes: 200_000,
    resumedFrom: 100_000,
  });
  sameBytes(t, await readFile(remoteFile), content);
  t.true(events[0]!.bytes > 100_000, 'progress counts from the start of the file');
  t.deepEqual(events.at(-1), { bytes: 300_000, totalBytes: 300_000 });

  await client.upload(content.subarray(0, 12_345), 'r.bin');
  t.deepEqual(await client.upload(content, 'r.bin', { resume: true }), { bytes: 300_000 - 12_345, resumedFrom: 12_345 });
  sameBytes(t, await readFile(remoteFile), content);

  await client.upload(content.subarray(0, 54_321), 'r.bin');
  const stream = Readable.from([content.subarray(0, 50_000), content.subarray(50_000)]);
  t.deepEqual(await client.upload(stream, 'r.bin', { resume: true }), { bytes: 300_000 - 54_321, resumedFrom: 54_321 });
  sameBytes(t, await readFile(remoteFile), content);

  // Already complete: nothing is sent. Missing remote file: a plain upload.
  t.deepEqual(await client.upload(content, 'r.bin', { resume: true }), { bytes: 0, resumedFrom: 300_000 });
  t.deepEqual(await client.upload(content, 'fresh.bin', { resume: true }), { bytes: 300_000, resumedFrom: 0 });
  // The remote file is longer than the source: resuming is impossible.
  const err = await rejectsWith(t, client.upload(content.subarray(0, 10), 'r.bin', { resume: true }), ProtocolError);
  t.regex(err.message, /cannot resume/);
  sameBytes(t, await readFile(remoteFile), content);
});

test('download to a path: a missing remote file or a failed transfer leaves no local file; resume keeps the part and continues with REST', async (t) => {
  const srv = await startTestServer({ users: USERS });
  t.teardown(() => srv.stop());
  const dir = await tempDir(t);
  const client = await connectClient(t, srv);
  const content = randomBytes(6 * 1024 * 1024);
  await client.upload(content, 'big.bin');

  await rejectsWith(t, client.download('missing.bin', join(dir, 'missing.bin')), NotFoundError);
  await rejectsWith(t, client.download('missing.bin', join(dir, 'missing.bin'), { resume: true }), NotFoundError);
  t.deepEqual(await readdir(dir), [], 'no file, no temporary');

  // An existing local file is not touched by a failed download.
  await writeFile(join(dir, 'keep.bin'), 'previous');
  const interrupt = async (target: string, resume: boolean) => {
    const c = await connectClient(t, srv);
    let cut = false;
    await rejectsWith(
      t,
      c.download('big.bin', target, {
        resume,
        onProgress: (p) => {
          if (!cut && p.bytes > 1024 * 1024) {
            cut = true;
            c.close();
          }
        },
      }),
      ConnectionError,
    );
  };
  await interrupt(join(dir, 'keep.bin'), false);
  t.deepEqual(await readdir(dir), ['keep.bin']);
  t.is(await readFile(join(dir, 'keep.bin'), 'utf8'), 'previous');

  await interrupt(join(dir, 'resumed.bin'), true);
  const part = join(dir, '.resumed.bin.dfos-part');
  const partSize = (await stat(part)).size;
  t.true(partSize > 0 && partSize < content.length, `part of ${partSize} bytes kept`);
  t.false(existsSync(join(dir, 'resumed.bin')));
  const events: ProgressEvent[] = [];
  t.deepEqual(await client.download('big.bin', join(dir, 'resumed.bin'), { resume: true, onProgress: (e) => events.push(e) }), {
    bytes: content.length - partSize,
    resumedFrom: partSize,
  });
  sameBytes(t, await readFile(join(dir, 'resumed.bin')), content);
  t.false(existsSync(part));
  t.true(events[0]!.bytes > partSize);
  t.deepEqual(events.at(-1), { bytes: content.length, totalBytes: content.length });

  // A leftover part longer than the remote file cannot be its beginning: start over.
  await client.upload(Buffer.from('short'), 'short.txt');
  await writeFile(join(dir, '.short.txt.dfos-part'), 'much longer than five bytes');
  t.deepEqual(await client.download('short.txt', join(dir, 'short.txt'), { resume: true }), { bytes: 5, resumedFrom: 0 });
  t.is(await readFile(join(dir, 'short.txt'), 'utf8'), 'short');
  t.deepEqual((await readdir(dir)).sort(), ['keep.bin', 'resumed.bin', 'short.txt']);
});

test('download to a Writable: a failure leaves the stream open (not ended, not destroyed)', async (t) => {
  const srv = await startTestServer({ users: USERS });
  t.teardown(() => srv.stop());
  const client = await connectClient(t, srv);
  const sink = collector();
  await rejectsWith(t, client.download('missing', sink), NotFoundError);
  t.false(sink.writableEnded);
  t.false(sink.destroyed);
  await rejectsWith(t, client.download('missing', sink, { resume: true } as never), ProtocolError);
});

test('parseListDate reads LIST dates as UTC and picks the year closest to now', (t) => {
  const now = new Date(Date.UTC(2026, 0, 10, 12, 0));
  t.is(parseListDate('Jan 10 11:59', now).toISOString(), '2026-01-10T11:59:00.000Z');
  t.is(parseListDate('Dec 31 23:00', now).toISOString(), '2025-12-31T23:00:00.000Z');
  t.is(parseListDate('Mar  4  2021', now).toISOString(), '2021-03-04T00:00:00.000Z');
  t.is(parseListDate('03-04-21 05:06PM', now).toISOString(), '2021-03-04T17:06:00.000Z');
  t.true(Number.isNaN(parseListDate('yesterday', now).getTime()));
});
