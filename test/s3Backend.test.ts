import { createHash, randomBytes } from 'node:crypto';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { once } from 'node:events';
import test from 'ava';
import {
  CreateMultipartUploadCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { S3Backend, parseS3Url, type S3BackendOptions } from '../src/storage/S3Backend.js';
import { StorageError, type ReadHandle, type UserStorage, type WriteSink } from '../src/storage/StorageBackend.js';
import { freePort, startCephRgw, type CephRgw } from './helpers/ceph.js';
import { storageContract } from './helpers/storageContract.js';
import type { TestServer } from './helpers/testServer.js';
import { startDataCommand, writeData } from './helpers/dataTransfer.js';
import { rawLogin, waitFor } from './helpers/interop.js';
import { spawnServer } from './helpers/serverProcess.js';

/**
 * The S3 backend against a real Ceph RGW (booted once for this file, ~15-40 s): first the
 * backend on its own, then the storage contract (test/helpers/storageContract.ts) through
 * real servers. Every backend test uses its own user, so tests never see each other's
 * keys; they run serially because start() aborts every unfinished upload under the
 * prefix, including another test's. Each contract server gets its own prefix in its own
 * bucket, so those run side by side.
 */

const BUCKET = 'dfos-test';
const CONTRACT_BUCKET = 'dfos-contract';
const PREFIX = 'srv';
const MIB = 1024 * 1024;
let ceph: CephRgw;
const backends: S3Backend[] = [];

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
});

/** A started backend on the test bucket (closed after the file). */
async function backend(options: Partial<S3BackendOptions> = {}): Promise<S3Backend> {
  const b = new S3Backend({ bucket: BUCKET, prefix: PREFIX, endpoint: ceph.endpoint, partSizeBytes: 5 * MIB, ...options });
  backends.push(b);
  await b.start();
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
  const b = new S3Backend({ bucket: 'no-such-bucket', prefix: '', endpoint: ceph.endpoint });
  backends.push(b);
  const err = await within(30_000, 'start()', t.throwsAsync(b.start()));
  t.is(err?.message, `S3 bucket "no-such-bucket" does not exist at ${ceph.endpoint}; create it or fix --storage`);
});

test.serial('start() on a closed port says the endpoint is unreachable in one line within 30 s', async (t) => {
  const port = await freePort();
  const b = new S3Backend({ bucket: BUCKET, prefix: '', endpoint: `http://127.0.0.1:${port}` });
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

test.serial('start() aborts a multipart upload left under the prefix', async (t) => {
  const key = `${PREFIX}/crashed/partial.bin`;
  const { UploadId } = await ceph.client.send(new CreateMultipartUploadCommand({ Bucket: BUCKET, Key: key }));
  await ceph.client.send(
    new UploadPartCommand({ Bucket: BUCKET, Key: key, UploadId, PartNumber: 1, Body: randomBytes(5 * MIB), ContentLength: 5 * MIB }),
  );
  const outside = `elsewhere/partial.bin`;
  await ceph.client.send(new CreateMultipartUploadCommand({ Bucket: BUCKET, Key: outside }));
  t.deepEqual(await multipartUploads(key), [key]);
  await backend();
  t.deepEqual(await multipartUploads(key), []);
  t.deepEqual(await multipartUploads('elsewhere/'), [outside], 'uploads outside the prefix are not touched');
});

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

test.serial('a server killed (-9) mid-upload leaves a multipart upload; the restarted server aborts it at start', async (t) => {
  t.timeout(120_000);
  const prefix = `crash-${randomBytes(4).toString('hex')}`;
  const env = { AWS_ACCESS_KEY_ID: ceph.accessKeyId, AWS_SECRET_ACCESS_KEY: ceph.secretAccessKey, AWS_EC2_METADATA_DISABLED: 'true' };
  const args = ['--storage', `s3://${CONTRACT_BUCKET}/${prefix}`, '--s3-endpoint', ceph.endpoint];
  const proc = await spawnServer({ args, env });
  t.teardown(() => proc.cleanup());
  const raw = await rawLogin(proc.port, 'alice', 'alice-pw');
  t.teardown(() => raw.close());
  const { data } = await startDataCommand(raw, 'STOR big.bin');
  await writeData(data, randomBytes(24 * MIB)); // several 8 MiB parts
  const pending = () => ceph.client.send(new ListMultipartUploadsCommand({ Bucket: CONTRACT_BUCKET, Prefix: `${prefix}/` })).then((p) => p.Uploads ?? []);
  await waitFor('a multipart upload in progress', async () => ((await pending()).length > 0 ? true : undefined), 30_000);
  proc.child.kill('SIGKILL');
  await proc.waitExit(10_000);
  data.destroy();
  t.is((await pending()).length, 1, 'the killed server left its multipart upload');
  const again = await spawnServer({ dirs: proc, args, env });
  t.teardown(() => again.cleanup());
  t.deepEqual(await pending(), [], 'the restarted server aborted it before serving');
  const object = await ceph.client.send(new ListObjectsV2Command({ Bucket: CONTRACT_BUCKET, Prefix: `${prefix}/alice/big` }));
  t.is(object.KeyCount ?? 0, 0, 'no partial object');
});
