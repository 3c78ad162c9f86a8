import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import {
  AbortMultipartUploadCommand,
  CreateMultipartUploadCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  UploadPartCommand,
  type MultipartUpload,
} from '@aws-sdk/client-s3';
import { S3Backend, parseS3Url, type S3BackendOptions } from '../src/storage/S3Backend.js';
import { StorageError, type ReadHandle, type UserStorage, type WriteSink } from '../src/storage/StorageBackend.js';
import { freePort, startCephRgw, type CephRgw } from './helpers/ceph.js';
import { storageContract } from './helpers/storageContract.js';
import type { TestServer } from './helpers/testServer.js';
import { startRawTransfer, writeAndEnd, writeData } from './helpers/dataTransfer.js';
import { rawLogin, waitFor } from './helpers/interop.js';
import { dfosRecords } from './helpers/logFiles.js';
import { REPLY_MS, type RawFtp } from './helpers/rawFtp.js';
import { spawnServer, type ServerDirs, type ServerProcess } from './helpers/serverProcess.js';

/**
 * The S3 backend against a real Ceph RGW (booted once for this file, ~15-40 s): first the
 * backend on its own, then the storage contract (test/helpers/storageContract.ts) through
 * real servers, then several nodes on one bucket (journal, sweep, kill -9, rolling
 * restart). Every backend test uses its own user, so tests never see each other's keys,
 * and its own state dir; they run serially to spare the machine. Each contract server and
 * each multi-node test gets its own prefix in its own bucket, so those run side by side.
 */

const BUCKET = 'dfos-test';
const CONTRACT_BUCKET = 'dfos-contract';
const PREFIX = 'srv';
const MIB = 1024 * 1024;
let ceph: CephRgw;
const backends: S3Backend[] = [];
/** Temporary state dirs of in-process backends (removed after the file). */
const stateDirs: string[] = [];

test.before(async () => {
  ceph = await startCephRgw();
  // The backend takes its credentials from the SDK's default chain, as in production.
  process.env.AWS_ACCESS_KEY_ID = ceph.accessKeyId;
  process.env.AWS_SECRET_ACCESS_KEY = ceph.secretAccessKey;
  process.env.AWS_EC2_METADATA_DISABLED = 'true';
  await ceph.createBucket(BUCKET);
  await ceph.createBucket(CONTRACT_BUCKET);
});

test.after.always(async () => {
  for (const backend of backends) await backend.close().catch(() => undefined);
  await ceph?.stop();
  for (const dir of stateDirs) await rm(dir, { recursive: true, force: true });
});

/** A fresh temporary state dir for one backend. */
async function stateDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'dfos-s3-state-'));
  stateDirs.push(dir);
  return dir;
}

/** What a backend logged through start()'s log. */
type LogRecord = { message: string; fields: Record<string, unknown>; level: string };

/** A started backend on the test bucket (closed after the file), with its own state dir unless given. */
async function backend(options: Partial<S3BackendOptions> = {}, logs: LogRecord[] = []): Promise<S3Backend> {
  const b = new S3Backend({
    bucket: BUCKET,
    prefix: PREFIX,
    endpoint: ceph.endpoint,
    partSizeBytes: 5 * MIB,
    stateDir: options.stateDir ?? (await stateDir()),
    ...options,
  });
  backends.push(b);
  await b.start((message, fields, level = 'info') => logs.push({ message, fields, level }));
  return b;
}

/** Writes `data` into the sink's stream in 256 KiB chunks with backpressure, then ends it. */
async function writeAll(sink: WriteSink, data: Buffer, end = true): Promise<void> {
  const chunk = 256 * 1024;
  for (let i = 0; i < data.length; i += chunk) {
    if (!sink.stream.write(data.subarray(i, i + chunk))) await once(sink.stream, 'drain');
  }
  if (end) {
    sink.stream.end();
    await once(sink.stream, 'finish');
  }
}

async function upload(storage: UserStorage, path: string, data: Buffer): Promise<void> {
  const sink = await storage.openWrite(path);
  await writeAll(sink, data);
  await sink.commit();
}

async function readAll(handle: ReadHandle): Promise<Buffer> {
  const chunks: Buffer[] = [];
  try {
    for await (const chunk of handle.stream()) chunks.push(chunk as Buffer);
  } finally {
    await handle.close();
  }
  return Buffer.concat(chunks);
}

const sha = (data: Buffer): string => createHash('sha256').update(data).digest('hex');

async function objectExists(key: string): Promise<boolean> {
  try {
    await ceph.client.send(new HeadObjectCommand({ Bucket: BUCKET, Key: key }));
    return true;
  } catch (err) {
    if ((err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode === 404) return false;
    throw err;
  }
}

async function multipartUploads(prefix: string): Promise<string[]> {
  const answer = await ceph.client.send(new ListMultipartUploadsCommand({ Bucket: BUCKET, Prefix: prefix }));
  return (answer.Uploads ?? []).map((u) => u.Key ?? '');
}

/** Runs `work`, failing if it takes longer than `ms` (a bound against hangs, not a speed check). */
async function within<T>(ms: number, what: string, work: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms / 1000} s`)), ms);
  });
  try {
    return await Promise.race([work, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

function isStorageError(kind: string): (err: unknown) => boolean {
  return (err) => err instanceof StorageError && err.kind === kind;
}

// ---- configuration ----

test.serial('parseS3Url accepts s3://BUCKET[/PREFIX] and refuses anything else in one line naming --storage', (t) => {
  t.deepEqual(parseS3Url('s3://my-bucket'), { bucket: 'my-bucket', prefix: '' });
  t.deepEqual(parseS3Url('s3://my-bucket/'), { bucket: 'my-bucket', prefix: '' });
  t.deepEqual(parseS3Url('s3://my.bucket/ftp/homes/'), { bucket: 'my.bucket', prefix: 'ftp/homes' });
  for (const bad of ['/srv/ftp', 'http://b/x', 's3://', 's3://B', 's3://ab', 's3://bucket//x', 's3://bucket/a/../b', 's3:/bucket']) {
    const err = t.throws(() => parseS3Url(bad), undefined, bad);
    t.regex(err?.message ?? '', /--storage/);
    t.regex(err?.message ?? '', /s3:\/\/BUCKET\[\/PREFIX\]/);
    t.false((err?.message ?? '').includes('\n'));
  }
});

test.serial('start() on a missing bucket names the bucket and the fix in one line within 30 s', async (t) => {
  const b = new S3Backend({ bucket: 'no-such-bucket', prefix: '', endpoint: ceph.endpoint, stateDir: await stateDir() });
  backends.push(b);
  const err = await within(30_000, 'start()', t.throwsAsync(b.start()));
  t.is(err?.message, `S3 bucket "no-such-bucket" does not exist at ${ceph.endpoint}; create it or fix --storage`);
});

test.serial('start() on a closed port says the endpoint is unreachable in one line within 30 s', async (t) => {
  const port = await freePort();
  const b = new S3Backend({ bucket: BUCKET, prefix: '', endpoint: `http://127.0.0.1:${port}`, stateDir: await stateDir() });
  backends.push(b);
  const err = await within(30_000, 'start()', t.throwsAsync(b.start()));
  t.regex(err?.message ?? '', /^S3 endpoint http:\/\/127\.0\.0\.1:\d+ is unreachable \(ECONNREFUSED\); start the S3 service or fix --s3-endpoint$/);
});

test.serial('start() with wrong credentials says access was denied in one line', async (t) => {
  const b = new S3Backend({
    bucket: BUCKET,
    prefix: '',
    endpoint: ceph.endpoint,
    credentials: { accessKeyId: 'WRONGKEY', secretAccessKey: 'wrong' },
    stateDir: await stateDir(),
  });
  backends.push(b);
  const err = await within(30_000, 'start()', t.throwsAsync(b.start()));
  t.regex(err?.message ?? '', /^S3 denied access to bucket "dfos-test" at http:\S+ \((InvalidAccessKeyId|HTTP 403)\); check AWS_ACCESS_KEY_ID/);
  t.false((err?.message ?? '').includes('\n'));
});

// ---- directories ----

test.serial('openHome creates the home marker; stat("/") works', async (t) => {
  const b = await backend();
  t.false(await objectExists(`${PREFIX}/home1/`));
  const home = await b.openHome('home1');
  t.true(await objectExists(`${PREFIX}/home1/`));
  const root = await home.stat('/');
  t.is(root.type, 'directory');
  t.is(root.name, '/');
  t.deepEqual(await home.list('/'), []);
  t.is((await b.openHome('home1').then((h) => h.stat('/'))).type, 'directory');
});

test.serial('mkdir, list, rmdir behave like a disk', async (t) => {
  const home = await (await backend()).openHome('dirs');
  await home.mkdir('/a');
  await home.mkdir('/a/b');
  await t.throwsAsync(home.mkdir('/a'), { instanceOf: StorageError, message: '/a: Already exists' });
  const missing = await t.throwsAsync(home.mkdir('/x/y'));
  t.true(isStorageError('not-found')(missing));
  t.deepEqual((await home.list('/')).map((e) => [e.name, e.type]), [['a', 'directory']]);
  t.deepEqual((await home.list('/a')).map((e) => [e.name, e.type]), [['b', 'directory']]);
  t.deepEqual(await home.list('/a/b'), []);
  t.is((await home.stat('/a/b')).type, 'directory');
  await upload(home, '/a/f.txt', Buffer.from('x'));
  t.true(isStorageError('not-a-directory')(await t.throwsAsync(home.list('/a/f.txt'))));
  t.true(isStorageError('not-a-directory')(await t.throwsAsync(home.mkdir('/a/f.txt/z'))));
  t.true(isStorageError('exists')(await t.throwsAsync(home.mkdir('/a/f.txt'))));
  t.true(isStorageError('not-found')(await t.throwsAsync(home.list('/nope'))));
  t.true(isStorageError('not-empty')(await t.throwsAsync(home.rmdir('/a'))));
  t.true(isStorageError('not-a-directory')(await t.throwsAsync(home.rmdir('/a/f.txt'))));
  await home.rmdir('/a/b');
  t.true(isStorageError('not-found')(await t.throwsAsync(home.stat('/a/b'))));
  await home.delete('/a/f.txt');
  await home.rmdir('/a');
  t.deepEqual(await home.list('/'), []);
  t.true(isStorageError('not-found')(await t.throwsAsync(home.rmdir('/a'))));
});

test.serial('a directory with 5,000 entries lists completely', async (t) => {
  const b = await backend();
  const home = await b.openHome('many');
  await home.mkdir('/big');
  const names = Array.from({ length: 5000 }, (_, i) => `f${String(i).padStart(5, '0')}`);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < names.length) {
      const name = names[next++];
      await ceph.client.send(
        new PutObjectCommand({ Bucket: BUCKET, Key: `${PREFIX}/many/big/${name}`, Body: new Uint8Array(1), ContentLength: 1 }),
      );
    }
  };
  await within(300_000, 'creating 5,000 objects', Promise.all(Array.from({ length: 32 }, worker)));
  await home.mkdir('/big/sub');
  const entries = await home.list('/big');
  t.is(entries.length, 5001);
  t.deepEqual(entries.filter((e) => e.type === 'file').map((e) => e.name).sort(), names);
  t.deepEqual(entries.filter((e) => e.type === 'directory').map((e) => e.name), ['sub']);
});

// ---- uploads ----

test.serial('a small upload (single PUT) and a 20 MiB upload (5 MiB parts) read back byte-exact', async (t) => {
  const home = await (await backend()).openHome('up');
  const small = randomBytes(1000);
  await upload(home, '/small.bin', small);
  t.is(sha(await readAll(await home.openRead('/small.bin'))), sha(small));
  const large = randomBytes(20 * MIB + 123);
  await upload(home, '/large.bin', large);
  const entry = await home.stat('/large.bin');
  t.is(entry.type, 'file');
  t.is(entry.size, large.length);
  const handle = await home.openRead('/large.bin');
  t.is(handle.size, large.length);
  t.is(sha(await readAll(handle)), sha(large));
  const empty = Buffer.alloc(0);
  await upload(home, '/empty.bin', empty);
  t.is((await home.stat('/empty.bin')).size, 0);
  t.is((await readAll(await home.openRead('/empty.bin'))).length, 0);
  t.deepEqual((await home.list('/')).map((e) => [e.name, e.size]).sort(), [
    ['empty.bin', 0],
    ['large.bin', large.length],
    ['small.bin', 1000],
  ]);
});

test.serial('the object is absent while the upload runs, and appears at commit', async (t) => {
  const home = await (await backend()).openHome('pending');
  const key = `${PREFIX}/pending/f.bin`;
  const data = randomBytes(12 * MIB);
  const sink = await home.openWrite('/f.bin');
  await writeAll(sink, data, false);
  // Two full parts are out; wait (bounded) until lib-storage has started the multipart upload.
  for (let i = 0; i < 100 && (await multipartUploads(key)).length === 0; i++) await new Promise((r) => setTimeout(r, 100));
  t.deepEqual(await multipartUploads(key), [key]);
  t.false(await objectExists(key));
  sink.stream.end();
  await once(sink.stream, 'finish');
  t.false(await objectExists(key), 'a finished stream publishes nothing');
  t.is(sink.bytesWritten, data.length);
  await sink.commit();
  t.true(await objectExists(key));
  t.deepEqual(await multipartUploads(key), []);
  t.is(sha(await readAll(await home.openRead('/f.bin'))), sha(data));
});

test.serial('abort after parts leaves no object, no multipart upload, and the previous version intact', async (t) => {
  const home = await (await backend()).openHome('abort');
  const old = randomBytes(3000);
  await upload(home, '/f.bin', old);
  const key = `${PREFIX}/abort/f.bin`;

  const sink = await home.openWrite('/f.bin');
  await writeAll(sink, randomBytes(16 * MIB), true); // stream finished, never committed
  await sink.abort();
  await sink.abort(); // idempotent
  t.deepEqual(await multipartUploads(`${PREFIX}/abort/`), []);
  t.is(sha(await readAll(await home.openRead('/f.bin'))), sha(old));
  await t.throwsAsync(sink.commit(), { instanceOf: StorageError });

  const fresh = await home.openWrite('/new.bin');
  await writeAll(fresh, randomBytes(11 * MIB), false); // stream still open
  await fresh.abort();
  t.false(await objectExists(`${PREFIX}/abort/new.bin`));
  const small = await home.openWrite('/small.bin');
  await writeAll(small, randomBytes(100), true);
  await small.abort();
  t.false(await objectExists(`${PREFIX}/abort/small.bin`));
  t.deepEqual(await multipartUploads(`${PREFIX}/abort/`), []);
  t.true(await objectExists(key));
});

test.serial('ranged reads return exactly offset..offset+length-1', async (t) => {
  const home = await (await backend()).openHome('range');
  const data = randomBytes(6 * MIB + 17);
  await upload(home, '/f.bin', data);
  for (const [offset, length] of [
    [0, 1],
    [1, 100],
    [5 * MIB - 3, 10],
    [6 * MIB, undefined],
    [data.length - 1, 50],
    [12345, 2 * MIB],
  ] as const) {
    const handle = await home.openRead('/f.bin', { offset, length });
    const expected = data.subarray(offset, length === undefined ? undefined : offset + length);
    t.is(handle.size, expected.length);
    t.true((await readAll(handle)).equals(expected), `offset ${offset} length ${length}`);
  }
  const atEnd = await home.openRead('/f.bin', { offset: data.length });
  t.is(atEnd.size, 0);
  t.is((await readAll(atEnd)).length, 0);
  t.true(isStorageError('bad-offset')(await t.throwsAsync(home.openRead('/f.bin', { offset: data.length + 1 }))));
  await home.mkdir('/d');
  t.true(isStorageError('is-a-directory')(await t.throwsAsync(home.openRead('/d'))));
  t.true(isStorageError('not-found')(await t.throwsAsync(home.openRead('/missing'))));
});

// ---- rename, delete, unsupported ----

test.serial('rename a file (replacing a target), delete, and errors', async (t) => {
  const home = await (await backend()).openHome('ren');
  await home.mkdir('/d');
  await upload(home, '/a.txt', Buffer.from('alpha'));
  await upload(home, '/d/b.txt', Buffer.from('beta'));
  await home.rename('/a.txt', '/d/b.txt');
  t.true(isStorageError('not-found')(await t.throwsAsync(home.stat('/a.txt'))));
  t.is((await readAll(await home.openRead('/d/b.txt'))).toString(), 'alpha');
  await home.rename('/d/b.txt', '/c.txt');
  t.is((await readAll(await home.openRead('/c.txt'))).toString(), 'alpha');
  t.true(isStorageError('not-found')(await t.throwsAsync(home.rename('/nope', '/x'))));
  t.true(isStorageError('not-found')(await t.throwsAsync(home.rename('/c.txt', '/nodir/x'))));
  t.true(isStorageError('is-a-directory')(await t.throwsAsync(home.rename('/c.txt', '/d'))));
  await home.delete('/c.txt');
  t.true(isStorageError('not-found')(await t.throwsAsync(home.delete('/c.txt'))));
  t.true(isStorageError('is-a-directory')(await t.throwsAsync(home.delete('/d'))));
  t.deepEqual((await home.list('/')).map((e) => e.name), ['d']);
});

test.serial('rename above the single-copy limit copies in parts (UploadPartCopy)', async (t) => {
  const home = await (await backend({ singleCopyLimit: 6 * MIB, copyPartBytes: 5 * MIB })).openHome('bigren');
  const data = randomBytes(12 * MIB + 5);
  await upload(home, '/big.bin', data);
  await home.rename('/big.bin', '/moved.bin');
  t.true(isStorageError('not-found')(await t.throwsAsync(home.stat('/big.bin'))));
  t.is(sha(await readAll(await home.openRead('/moved.bin'))), sha(data));
  t.deepEqual(await multipartUploads(`${PREFIX}/bigren/`), []);
});

test.serial('append, resume, chmod and directory rename are refused as unsupported', async (t) => {
  const b = await backend();
  t.like(b.capabilities, { append: false, resume: false, atomicReplace: true, chmod: false, renameDirectory: false });
  const home = await b.openHome('unsup');
  await upload(home, '/f', Buffer.from('x'));
  await home.mkdir('/d');
  const unsupported = isStorageError('unsupported');
  t.true(unsupported(await t.throwsAsync(home.openWrite('/f', { append: true }))));
  t.true(unsupported(await t.throwsAsync(home.openWrite('/f', { resumeAt: 1 }))));
  t.true(unsupported(await t.throwsAsync(home.chmod('/f', 0o644))));
  const dirRename = await t.throwsAsync(home.rename('/d', '/e'));
  t.true(unsupported(dirRename));
  t.is(dirRename?.message, '/d: Renaming a directory is not supported on S3 storage');
});

// ---- crash cleanup, isolation, failures ----

test.serial('users are isolated: keys live under PREFIX/<user>/ and lists never show another user', async (t) => {
  const b = await backend();
  const alice = await b.openHome('alice');
  const bob = await b.openHome('bob');
  await alice.mkdir('/docs');
  await upload(alice, '/docs/a.txt', Buffer.from('a'));
  await upload(bob, '/b.txt', Buffer.from('b'));
  t.deepEqual((await alice.list('/')).map((e) => e.name), ['docs']);
  t.deepEqual((await bob.list('/')).map((e) => e.name), ['b.txt']);
  t.true(isStorageError('not-found')(await t.throwsAsync(alice.stat('/b.txt'))));
  const keys = await ceph.client.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: `${PREFIX}/alice` }));
  t.deepEqual((keys.Contents ?? []).map((o) => o.Key).sort(), [`${PREFIX}/alice/`, `${PREFIX}/alice/docs/`, `${PREFIX}/alice/docs/a.txt`]);
  const bad = await t.throwsAsync(b.openHome('../bob'));
  t.true(isStorageError('invalid-name')(bad));
  t.true(isStorageError('invalid-name')(await t.throwsAsync(alice.stat('/../bob/b.txt'))));
});

/** A TCP proxy to RGW that can be cut (refusing) or turned into a black hole (accepting, never answering). */
async function proxy(target: URL): Promise<{ port: number; cut(): Promise<void>; server: Server }> {
  const sockets = new Set<Socket>();
  const server = createServer((client) => {
    sockets.add(client);
    const upstream = connect(Number(target.port), target.hostname);
    sockets.add(upstream);
    client.pipe(upstream).pipe(client);
    const drop = (): void => {
      client.destroy();
      upstream.destroy();
    };
    client.on('error', drop).on('close', drop);
    upstream.on('error', drop).on('close', drop);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;
  return {
    port,
    server,
    async cut() {
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

test.serial('S3 going away mid-session gives a StorageError naming only the client path within 60 s', async (t) => {
  const p = await proxy(new URL(ceph.endpoint));
  const b = await backend({ endpoint: `http://127.0.0.1:${p.port}` });
  const home = await b.openHome('gone');
  await upload(home, '/f.txt', Buffer.from('hello'));
  const sink = await home.openWrite('/g.txt');
  sink.stream.on('error', () => undefined);
  await p.cut();
  for (const op of [home.stat('/f.txt'), home.list('/'), home.openRead('/f.txt'), home.mkdir('/x')]) {
    const err = await within(60_000, 'an operation on a closed endpoint', t.throwsAsync(op));
    t.true(err instanceof StorageError && (err.kind === 'unavailable' || err.kind === 'io'), String(err));
    t.notRegex(err?.message ?? '', /127\.0\.0\.1|dfos-test|srv\//);
  }
  await writeAll(sink, Buffer.from('data'), true);
  const commitErr = await within(60_000, 'commit on a closed endpoint', t.throwsAsync(sink.commit()));
  t.true(commitErr instanceof StorageError, String(commitErr));
  t.notRegex(commitErr?.message ?? '', /127\.0\.0\.1|dfos-test|srv\//);
});

test.serial('an endpoint that accepts but never answers fails a request and an upload within 60 s (timeouts)', async (t) => {
  const p = await proxy(new URL(ceph.endpoint));
  const b = await backend({ endpoint: `http://127.0.0.1:${p.port}` });
  const home = await b.openHome('hole');
  const sink = await home.openWrite('/up.bin');
  sink.stream.on('error', () => undefined);
  await p.cut();
  // A black hole on the same port: accepts connections, reads nothing back.
  const held: Socket[] = [];
  const hole = createServer((s) => held.push(s));
  hole.listen(p.port, '127.0.0.1');
  await once(hole, 'listening');
  try {
    await writeAll(sink, Buffer.from('bytes'), true);
    // A metadata request (time-bounded) and an upload (idle-bounded) at once.
    const [statErr, commitErr] = await Promise.all([
      within(60_000, 'stat on a black hole', t.throwsAsync(home.stat('/x'))),
      within(60_000, 'commit on a black hole', t.throwsAsync(sink.commit())),
    ]);
    t.true(statErr instanceof StorageError && statErr.kind === 'unavailable', String(statErr));
    t.true(commitErr instanceof StorageError && commitErr.kind === 'unavailable', String(commitErr));
  } finally {
    for (const s of held) s.destroy();
    hole.close();
  }
});

// ---- several nodes on one bucket: the upload journal and the abandoned-upload sweep ----

type JournalRecord = { bucket: string; key: string; uploadId: string };

/** The journal records in a state dir (`s3-uploads/*.json`); one being written (not yet JSON) counts as not there. */
async function journal(dir: string): Promise<JournalRecord[]> {
  const folder = join(dir, 's3-uploads');
  const names = (await readdir(folder).catch(() => [])).filter((n) => n.endsWith('.json'));
  const records: JournalRecord[] = [];
  for (const name of names) {
    try {
      records.push(JSON.parse(await readFile(join(folder, name), 'utf8')) as JournalRecord);
    } catch {
      /* just created, or just removed */
    }
  }
  return records;
}

/** Waits (bounded) until a state dir's journal lists `count` uploads. */
function journaled(dir: string, count: number): Promise<JournalRecord[]> {
  return waitFor(`${count} journaled upload(s)`, async () => {
    const records = await journal(dir);
    return records.length === count ? records : undefined;
  }, 30_000);
}

/** The multipart uploads under a prefix of a bucket. */
async function uploadsUnder(bucket: string, prefix: string): Promise<MultipartUpload[]> {
  return (await ceph.client.send(new ListMultipartUploadsCommand({ Bucket: bucket, Prefix: prefix }))).Uploads ?? [];
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test.serial('a multipart upload is journaled in the state dir while it runs; commit and abort remove it; single PUTs need none', async (t) => {
  const dir = await stateDir();
  const home = await (await backend({ stateDir: dir })).openHome('journal');
  t.deepEqual(await journal(dir), []);
  const data = randomBytes(12 * MIB);
  const sink = await home.openWrite('/f.bin');
  await writeAll(sink, data, false);
  const [entry] = await journaled(dir, 1);
  const [live] = await uploadsUnder(BUCKET, `${PREFIX}/journal/`);
  t.deepEqual(entry, { bucket: BUCKET, key: `${PREFIX}/journal/f.bin`, uploadId: live?.UploadId });
  sink.stream.end();
  await once(sink.stream, 'finish');
  await sink.commit();
  t.deepEqual(await journal(dir), [], 'completed: forgotten');
  t.is(sha(await readAll(await home.openRead('/f.bin'))), sha(data));

  const cut = await home.openWrite('/g.bin');
  await writeAll(cut, randomBytes(11 * MIB), false);
  await journaled(dir, 1);
  await cut.abort();
  t.deepEqual(await journal(dir), [], 'aborted: forgotten');
  t.deepEqual(await multipartUploads(`${PREFIX}/journal/`), []);
  await upload(home, '/small.bin', randomBytes(1000));
  t.deepEqual(await journal(dir), [], 'a single PUT has no multipart upload to journal');
});

test.serial('another node starting leaves this node\'s upload running; a restart on the same state dir aborts exactly the uploads its journal lists', async (t) => {
  const dirA = await stateDir();
  const home = await (await backend({ stateDir: dirA })).openHome('nodes');
  const data = randomBytes(12 * MIB);
  const running = await home.openWrite('/f.bin');
  await writeAll(running, data.subarray(0, 11 * MIB), false);
  await journaled(dirA, 1);
  const logsB: LogRecord[] = [];
  await backend({}, logsB); // node B: its own state dir, same bucket and prefix
  t.deepEqual(await multipartUploads(`${PREFIX}/nodes/`), [`${PREFIX}/nodes/f.bin`], 'B\'s start left A\'s upload alone');
  t.deepEqual(logsB, [], 'B had nothing to abort');
  await writeAll(running, data.subarray(11 * MIB), true);
  await running.commit();
  t.is(sha(await readAll(await home.openRead('/f.bin'))), sha(data), 'A\'s upload completed intact');

  // A "crashes" with an upload in flight: its sink is left as it is, and a new A starts on the same state dir.
  const cut = await home.openWrite('/g.bin');
  cut.stream.on('error', () => undefined);
  await writeAll(cut, randomBytes(11 * MIB), false);
  const [record] = await journaled(dirA, 1);
  const logsA: LogRecord[] = [];
  await backend({ stateDir: dirA }, logsA);
  t.deepEqual(await multipartUploads(`${PREFIX}/nodes/`), [], 'the restarted A aborted its own upload');
  t.deepEqual(await journal(dirA), []);
  t.deepEqual(logsA.map((r) => [r.message, r.fields.count, r.fields.alreadyGone]), [['Aborted the S3 uploads the previous run left unfinished', 1, 0]]);
  t.is(record?.key, `${PREFIX}/nodes/g.bin`);
  await cut.abort();
  t.false(await objectExists(`${PREFIX}/nodes/g.bin`));
});

test.serial('an abort S3 does not answer stays journaled, and the next start aborts it', async (t) => {
  const p = await proxy(new URL(ceph.endpoint));
  const dir = await stateDir();
  const home = await (await backend({ endpoint: `http://127.0.0.1:${p.port}`, stateDir: dir })).openHome('unanswered');
  const sink = await home.openWrite('/f.bin');
  sink.stream.on('error', () => undefined);
  await writeAll(sink, randomBytes(11 * MIB), false);
  await journaled(dir, 1);
  await p.cut();
  await within(60_000, 'abort with S3 gone', sink.abort());
  t.is((await journal(dir)).length, 1, 'kept for the next start');
  t.deepEqual(await multipartUploads(`${PREFIX}/unanswered/`), [`${PREFIX}/unanswered/f.bin`]);
  const logs: LogRecord[] = [];
  await backend({ stateDir: dir }, logs);
  t.deepEqual(await multipartUploads(`${PREFIX}/unanswered/`), []);
  t.deepEqual(await journal(dir), []);
  t.is(logs[0]?.fields.count, 1);
});

test.serial('the sweep aborts uploads inactive past the age, at start and periodically; recent, still-active and own uploads stay; nothing outside the prefix is touched', async (t) => {
  const key = (name: string) => `${PREFIX}/sweep/${name}`;
  const create = async (k: string): Promise<string> =>
    (await ceph.client.send(new CreateMultipartUploadCommand({ Bucket: BUCKET, Key: k }))).UploadId ?? '';
  await create(key('idle.bin')); // never a part
  const slow = await create(key('slow.bin')); // a part later: slow but alive
  const outside = await create('elsewhere/old.bin');
  await sleep(3500);
  await ceph.client.send(new UploadPartCommand({ Bucket: BUCKET, Key: key('slow.bin'), UploadId: slow, PartNumber: 1, Body: randomBytes(1024), ContentLength: 1024 }));
  await create(key('fresh.bin'));
  const logs: LogRecord[] = [];
  // Started 3.5 s after idle and slow were initiated: only idle has been inactive for 2.5 s.
  const b = await backend({ abandonedUploadAgeMs: 2500, sweepEveryMs: 500 }, logs);
  t.deepEqual((await multipartUploads(key(''))).sort(), [key('fresh.bin'), key('slow.bin')]);
  const aborted = logs.filter((r) => r.message === 'Aborted an abandoned S3 multipart upload' && String(r.fields.key).startsWith(key('')));
  t.deepEqual(aborted.map((r) => [r.fields.key, r.fields.lastPart, r.fields.inactiveFor]), [[key('idle.bin'), null, 'more than 2.5s']]);

  // This node's own upload, in flight with no part for longer than the age, is never swept.
  const home = await b.openHome('sweep');
  const data = randomBytes(6 * MIB);
  const own = await home.openWrite('/own.bin');
  await writeAll(own, data, false);
  await waitFor('own upload started', async () => ((await multipartUploads(key('own.bin'))).length === 1 ? true : undefined));
  // The periodic sweep (every 0.5 s) takes slow and fresh once they are 2.5 s inactive.
  await waitFor('the periodic sweep', async () => (sameKeys(await multipartUploads(key('')), [key('own.bin')]) ? true : undefined), 20_000);
  await sleep(1500); // several more sweeps
  t.deepEqual(await multipartUploads(key('')), [key('own.bin')], 'the node\'s own upload is still there');
  own.stream.end();
  await once(own.stream, 'finish');
  await own.commit();
  t.is(sha(await readAll(await home.openRead('/own.bin'))), sha(data));
  t.deepEqual(await multipartUploads('elsewhere/old.bin'), ['elsewhere/old.bin'], 'outside the prefix: untouched');
  await ceph.client.send(new AbortMultipartUploadCommand({ Bucket: BUCKET, Key: 'elsewhere/old.bin', UploadId: outside }));
  await b.close();
});

function sameKeys(a: string[], b: string[]): boolean {
  return JSON.stringify([...a].sort()) === JSON.stringify([...b].sort());
}

/** The key prefix a contract test server stores under. */
function prefixOf(srv: TestServer): string {
  return parseS3Url(srv.server.config.storage).prefix;
}

storageContract(test, 'S3 (Ceph RGW)', {
  config: async () => ({ storage: `s3://${CONTRACT_BUCKET}/t-${randomBytes(6).toString('hex')}`, s3Endpoint: ceph.endpoint }),
  capabilities: { atomicReplace: true, resume: false, append: false, chmod: false, renameDirectory: false, setModificationTime: false },
  async stored(srv, user, path) {
    try {
      const object = await ceph.client.send(new GetObjectCommand({ Bucket: CONTRACT_BUCKET, Key: `${prefixOf(srv)}/${user}${path}` }));
      return Buffer.from(await object.Body!.transformToByteArray());
    } catch (err) {
      if ((err as { name?: string }).name === 'NoSuchKey') return undefined;
      throw err;
    }
  },
  async leftovers(srv) {
    const page = await ceph.client.send(new ListMultipartUploadsCommand({ Bucket: CONTRACT_BUCKET, Prefix: `${prefixOf(srv)}/` }));
    return (page.Uploads ?? []).map((u) => u.Key ?? '?');
  },
});


// ---- several DFOS processes on one bucket and prefix ----

/** The S3 credentials a spawned server takes from its environment, as in production. */
function s3Env(): Record<string, string> {
  return { AWS_ACCESS_KEY_ID: ceph.accessKeyId, AWS_SECRET_ACCESS_KEY: ceph.secretAccessKey, AWS_EC2_METADATA_DISABLED: 'true' };
}

/** A `dfos serve` process on CONTRACT_BUCKET/prefix (its state dir is DIR/state; pass `dirs` to restart on it). */
async function node(t: { teardown(fn: () => unknown): void }, prefix: string, options: { dirs?: ServerDirs; args?: string[] } = {}): Promise<ServerProcess> {
  const proc = await spawnServer({
    dirs: options.dirs,
    args: ['--storage', `s3://${CONTRACT_BUCKET}/${prefix}`, '--s3-endpoint', ceph.endpoint, ...(options.args ?? [])],
    env: s3Env(),
  });
  t.teardown(() => proc.cleanup());
  return proc;
}

/** The keys of the multipart uploads under `prefix/` in CONTRACT_BUCKET. */
async function pendingUnder(prefix: string): Promise<string[]> {
  return (await uploadsUnder(CONTRACT_BUCKET, `${prefix}/`)).map((u) => u.Key ?? '?').sort();
}

/** alice's stored file in CONTRACT_BUCKET/prefix, or undefined. */
async function storedFile(prefix: string, name: string): Promise<Buffer | undefined> {
  try {
    const object = await ceph.client.send(new GetObjectCommand({ Bucket: CONTRACT_BUCKET, Key: `${prefix}/alice/${name}` }));
    return Buffer.from(await object.Body!.transformToByteArray());
  } catch (err) {
    if ((err as { name?: string }).name === 'NoSuchKey') return undefined;
    throw err;
  }
}

/** True when alice's stored file is exactly `content` (compared by hash: large buffers are slow to diff). */
async function storedEquals(prefix: string, name: string, content: Buffer): Promise<boolean> {
  const stored = await storedFile(prefix, name);
  return stored !== undefined && sha(stored) === sha(content);
}

/** An upload begun over FTP (TYPE I, STOR): `sent` bytes of `content` written, the data connection open. */
interface OpenUpload {
  raw: RawFtp;
  data: Socket;
  name: string;
  content: Buffer;
  sent: number;
}

async function beginUpload(port: number, name: string, content: Buffer, sent: number): Promise<OpenUpload> {
  const raw = await rawLogin(port, 'alice', 'alice-pw');
  const { data } = await startRawTransfer(raw, 'STOR', name);
  await writeData(data, content.subarray(0, sent));
  return { raw, data, name, content, sent };
}

/** Sends the rest, closes the data connection, and returns the final reply's code. */
async function finishUpload(u: OpenUpload): Promise<number> {
  await writeAndEnd(u.data, u.content.subarray(u.sent));
  const code = (await u.raw.read(REPLY_MS)).code;
  u.raw.close();
  return code;
}

/** A whole upload written in 1 MiB chunks 40 ms apart (so it spans a restart); its final code, or 0 if refused or cut. */
async function pacedUpload(port: number, name: string, content: Buffer): Promise<number> {
  let u: OpenUpload | undefined;
  try {
    u = await beginUpload(port, name, content, 0);
    for (; u.sent < content.length - MIB; u.sent += MIB) {
      await writeData(u.data, content.subarray(u.sent, u.sent + MIB));
      await sleep(40);
    }
    return await finishUpload(u);
  } catch {
    u?.data.destroy();
    u?.raw.close();
    return 0;
  }
}

test.serial('kill -9 of a node during uploads: its restart aborts its own multipart uploads and nothing else; each upload is absent or complete; the other node serves on', async (t) => {
  t.timeout(180_000);
  const prefix = `kill-${randomBytes(4).toString('hex')}`;
  const a = await node(t, prefix);
  const b = await node(t, prefix);
  const onB = await beginUpload(b.port, 'on-b.bin', randomBytes(20 * MIB), 12 * MIB);
  const done = randomBytes(9 * MIB);
  t.is(await pacedUpload(a.port, 'done.bin', done), 226);
  // Five uploads on A, four of them past a part (multipart), one below it (nothing in S3 yet);
  // the last one's data connection is closed just before the kill, so its commit races the kill.
  const sizes = [24, 12, 9, 16, 3, 10];
  const cut = await Promise.all(
    sizes.map((mib, i) => beginUpload(a.port, `cut-${i}.bin`, randomBytes((mib + (i === 5 ? 0 : 8)) * MIB), mib * MIB)),
  );
  const journalA = join(a.dir, 'state');
  await journaled(journalA, 5);
  await journaled(join(b.dir, 'state'), 1);
  t.is((await pendingUnder(prefix)).length, 6, 'five multipart uploads of A and one of B');
  void writeAndEnd(cut[5]!.data, Buffer.alloc(0)).catch(() => undefined);
  a.child.kill('SIGKILL');
  await a.waitExit(10_000);
  for (const u of cut) {
    u.data.destroy();
    u.raw.close();
  }
  const left = (await journal(journalA)).length;
  t.true(left >= 4, `the killed node left its multipart uploads journaled (${left})`);
  t.is((await pendingUnder(prefix)).length, left + 1, 'and in the bucket');

  // Meanwhile new sessions go to the other node.
  const meanwhile = randomBytes(9 * MIB);
  t.is(await pacedUpload(b.port, 'meanwhile.bin', meanwhile), 226);
  t.true(await storedEquals(prefix, 'meanwhile.bin', meanwhile), 'meanwhile.bin');

  await node(t, prefix, { dirs: a });
  t.deepEqual(await pendingUnder(prefix), [`${prefix}/alice/on-b.bin`], 'A\'s restart aborted its own uploads, not B\'s');
  t.deepEqual(await journal(journalA), []);
  const [recovery] = await dfosRecords(a.logDir, (r) => r.message === 'Aborted the S3 uploads the previous run left unfinished');
  t.is(Number(recovery?.count) + Number(recovery?.alreadyGone), left, JSON.stringify(recovery));

  t.is(await finishUpload(onB), 226, 'B\'s upload ran through A\'s crash and restart');
  t.true(await storedEquals(prefix, 'on-b.bin', onB.content), 'on-b.bin');
  t.true(await storedEquals(prefix, 'done.bin', done), 'done.bin');
  for (const u of cut) {
    const stored = await storedFile(prefix, u.name);
    t.true(stored === undefined || stored.equals(u.content), `${u.name}: absent or complete`);
    if (u.name !== 'cut-5.bin') t.true(stored === undefined, `${u.name}: never finished, so absent`);
  }
  t.deepEqual(await journal(join(b.dir, 'state')), []);
});

test.serial('two nodes on one prefix: starting one leaves the other\'s upload running; a rolling restart during a stream of uploads completes every 226 and leaves nothing else', async (t) => {
  t.timeout(240_000);
  const prefix = `roll-${randomBytes(4).toString('hex')}`;
  const a = await node(t, prefix);
  const before = await beginUpload(a.port, 'before-b.bin', randomBytes(20 * MIB), 12 * MIB);
  await journaled(join(a.dir, 'state'), 1);
  const nodes = { a, b: await node(t, prefix) };
  t.deepEqual(await pendingUnder(prefix), [`${prefix}/alice/before-b.bin`], 'B\'s start left A\'s upload alone');
  t.is(await finishUpload(before), 226);
  t.true(await storedEquals(prefix, 'before-b.bin', before.content), 'before-b.bin');

  // A steady stream: two clients upload 9 MiB files one after the other, alternating nodes
  // and going to the other one when a node refuses (as a load balancer would).
  const results: { name: string; content: Buffer; code: number }[] = [];
  let streaming = true;
  const worker = async (w: number): Promise<void> => {
    for (let i = 0; streaming; i++) {
      const name = `s${w}-${i}.bin`;
      const content = randomBytes(9 * MIB);
      const order: ('a' | 'b')[] = (i + w) % 2 === 0 ? ['a', 'b'] : ['b', 'a'];
      const target = order.find((n) => nodes[n].running()) ?? 'a';
      const code = await pacedUpload(nodes[target].port, name, content);
      results.push({ name, content, code });
      if (code !== 226) await sleep(100);
    }
  };
  const workers = [worker(0), worker(1)];
  const completed = () => results.filter((r) => r.code === 226).length;
  const moreCompleted = (n: number) => {
    const goal = completed() + n;
    return waitFor(`${n} more uploads completed`, async () => (completed() >= goal ? true : undefined), 60_000);
  };
  try {
    await moreCompleted(2);
    for (const which of ['a', 'b'] as const) {
      // An upload running on the node when SIGTERM comes is drained: 226 and complete.
      const drained = await beginUpload(nodes[which].port, `drained-${which}.bin`, randomBytes(20 * MIB), 12 * MIB);
      await waitFor('its multipart upload', async () => ((await pendingUnder(prefix)).includes(`${prefix}/alice/drained-${which}.bin`) ? true : undefined), 30_000);
      const old = nodes[which];
      old.child.kill('SIGTERM');
      await sleep(300);
      t.is(await finishUpload(drained), 226, `${which}: the upload running at SIGTERM completes`);
      t.deepEqual(await old.waitExit(30_000), { code: 0, signal: null });
      t.true(await storedEquals(prefix, `drained-${which}.bin`, drained.content), `drained-${which}.bin`);
      await moreCompleted(1); // the other node alone
      nodes[which] = await node(t, prefix, { dirs: old });
      await moreCompleted(2);
    }
  } finally {
    streaming = false;
    await Promise.all(workers);
  }
  const ok = results.filter((r) => r.code === 226);
  t.log(`${results.length} uploads in the stream: ${ok.length} with 226, ${results.length - ok.length} refused or cut`);
  for (const r of results) {
    const stored = await storedFile(prefix, r.name);
    if (r.code === 226) t.true(stored?.equals(r.content) === true, `${r.name}: 226, so complete`);
    else t.true(stored === undefined, `${r.name}: no 226 (${r.code}), so absent`);
  }
  t.deepEqual(await pendingUnder(prefix), [], 'no multipart upload left');
  t.deepEqual(await journal(join(nodes.a.dir, 'state')), []);
  t.deepEqual(await journal(join(nodes.b.dir, 'state')), []);
});

test.serial('a server started with --s3-abandoned-upload-age aborts the inactive uploads under its prefix, logs each, and keeps one with a recent part', async (t) => {
  t.timeout(60_000);
  const prefix = `sweep-${randomBytes(4).toString('hex')}`;
  const create = async (key: string): Promise<string> =>
    (await ceph.client.send(new CreateMultipartUploadCommand({ Bucket: CONTRACT_BUCKET, Key: key }))).UploadId ?? '';
  await create(`${prefix}/alice/gone.bin`);
  const alive = await create(`${prefix}/alice/alive.bin`);
  const outside = await create(`${prefix}-other/x.bin`);
  await sleep(4500);
  await ceph.client.send(
    new UploadPartCommand({ Bucket: CONTRACT_BUCKET, Key: `${prefix}/alice/alive.bin`, UploadId: alive, PartNumber: 1, Body: randomBytes(1024), ContentLength: 1024 }),
  );
  // All three were initiated 4.5 s before the server starts; only alive had a part since (as long as the start takes under 4 s).
  const proc = await node(t, prefix, { args: ['--s3-abandoned-upload-age', '4s'] });
  t.deepEqual(await pendingUnder(prefix), [`${prefix}/alice/alive.bin`]);
  t.deepEqual(await pendingUnder(`${prefix}-other`), [`${prefix}-other/x.bin`], 'a neighbouring prefix is not touched');
  const lines = await dfosRecords(proc.logDir, (r) => r.message === 'Aborted an abandoned S3 multipart upload');
  t.is(lines.length, 1);
  t.like(lines[0], { key: `${prefix}/alice/gone.bin`, lastPart: null, inactiveFor: 'more than 4s' });
  for (const [key, id] of [[`${prefix}-other/x.bin`, outside], [`${prefix}/alice/alive.bin`, alive]] as const) {
    await ceph.client.send(new AbortMultipartUploadCommand({ Bucket: CONTRACT_BUCKET, Key: key, UploadId: id }));
  }
});
