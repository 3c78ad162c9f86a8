import test, { type ExecutionContext } from 'ava';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, open, readdir, readFile, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { Client } from 'basic-ftp';
import { decodePreview } from '../src/preview/previewFormat.js';
import { DfosClient } from '../src/client/index.js';
import { recordSentVerbs, sha256, tempsUnder } from './helpers/interop.js';
import { FAMILIES, startServer } from './helpers/protocolFixtures.js';
import type { TestServer } from './helpers/testServer.js';

/**
 * Issue 4, interop matrix for the Node clients, over IPv4 and IPv6: basic-ftp (what the
 * DFOS client is built on) and DFOS's own client (src/client). Each does login, mkdir,
 * upload, list (MLSD), download, resume an interrupted download, rename, SITE VIEW through
 * its raw-command feature, delete. The external clients (curl, lftp, ftplib, tnftp,
 * rclone, wget, ncftp) have their own interop.*.test.ts files.
 */

const MTIME = new Date(Date.UTC(2023, 6, 14, 9, 26, 53));

async function prepare(t: ExecutionContext, host: string): Promise<{ srv: TestServer; work: string; home: string }> {
  const srv = await startServer({ config: { host } });
  const work = await mkdtemp(join(tmpdir(), 'dfos-matrix-'));
  t.teardown(async () => {
    await srv.stop();
    await rm(work, { recursive: true, force: true });
  });
  const home = join(srv.storage, 'alice');
  await mkdir(home, { recursive: true });
  return { srv, work, home };
}

/** A Writable to a local file that writes slowly (so a transfer into it can be cut mid-way). */
function slowFileWriter(path: string, onBytes: (total: number) => void): Writable {
  let total = 0;
  let handle: Awaited<ReturnType<typeof open>> | undefined;
  return new Writable({
    highWaterMark: 16 * 1024,
    async write(chunk: Buffer, _enc, cb) {
      try {
        handle ??= await open(path, 'w');
        await handle.write(chunk);
        total += chunk.length;
        await new Promise((r) => setTimeout(r, 15));
        onBytes(total);
        cb();
      } catch (err) {
        cb(err as Error);
      }
    },
    async final(cb) {
      await handle?.close();
      cb();
    },
    async destroy(err, cb) {
      await handle?.close().catch(() => undefined);
      cb(err);
    },
  });
}

for (const family of FAMILIES) {
  (family.available ? test : test.skip)(`basic-ftp (${family.name}): login, mkdir, upload, list via MLSD, download, interrupted download resumed (REST), rename, SITE VIEW via send(), delete`, async (t) => {
    const { srv, work, home } = await prepare(t, family.host);
    const client = new Client(15_000);
    t.teardown(() => client.close());
    const sent = recordSentVerbs(client);
    await client.access({ host: family.host, port: srv.port, user: 'alice', password: 'alice-pw' });
    t.is(client.ftp.socket.remoteAddress, family.host);

    await client.ensureDir('m/sub'); // MKD (and CWD) each level
    await client.cd('/');
    const content = randomBytes(6000);
    await client.uploadFrom(Readable.from([content]), 'm/sub/f.bin');
    t.deepEqual(await readFile(join(home, 'm', 'sub', 'f.bin')), content);
    await utimes(join(home, 'm', 'sub', 'f.bin'), MTIME, MTIME);

    const list = await client.list('m/sub');
    t.true(sent.includes('MLSD'), `basic-ftp listed with MLSD: ${sent.join(' ')}`);
    const entry = list.find((e) => e.name === 'f.bin');
    t.is(entry?.size, content.length);
    t.is(entry?.modifiedAt?.getTime(), MTIME.getTime(), `exact modification time from MLSD: ${entry?.modifiedAt?.toISOString()}`);
    if (family.name === 'IPv6') t.false(sent.includes('PASV'), 'no PASV over IPv6');

    const chunks: Buffer[] = [];
    await client.downloadTo(new Writable({ write: (c: Buffer, _e, cb) => (chunks.push(c), cb()) }), 'm/sub/f.bin');
    t.is(sha256(Buffer.concat(chunks)), sha256(content));

    // Resume: a second connection starts a download into a slow local file and is closed mid-way.
    const big = randomBytes(2_000_000);
    await writeFile(join(home, 'big.bin'), big);
    const local = join(work, 'big.bin');
    const cutter = new Client(15_000);
    t.teardown(() => cutter.close());
    await cutter.access({ host: family.host, port: srv.port, user: 'alice', password: 'alice-pw' });
    await t.throwsAsync(cutter.downloadTo(slowFileWriter(local, (n) => n >= 200_000 && cutter.close()), 'big.bin'));
    await new Promise((r) => setTimeout(r, 100));
    const partial = (await stat(local)).size;
    t.true(partial > 0 && partial < big.length, `interrupted after ${partial} bytes`);
    sent.length = 0;
    await client.downloadTo(local, 'big.bin', partial);
    t.true(sent.includes('REST'), `REST before RETR: ${sent.join(' ')}`);
    t.is(sha256(await readFile(local)), sha256(big), 'the resumed download is byte-exact');

    await client.rename('m/sub/f.bin', 'm/sub/g.bin');
    t.deepEqual(await readdir(join(home, 'm', 'sub')), ['g.bin']);
    await writeFile(join(home, 'm', 'note.txt'), 'viewed through basic-ftp\n');
    const view = await client.send('SITE VIEW m/note.txt');
    t.is(view.code, 200);
    t.is(decodePreview(view.message).bytes.toString(), 'viewed through basic-ftp\n');

    await client.remove('m/sub/g.bin');
    await client.remove('m/note.txt');
    await client.removeDir('m');
    await client.remove('big.bin');
    t.deepEqual(await readdir(home), []);
    t.deepEqual(await tempsUnder(srv.storage), []);
  });

  (family.available ? test : test.skip)(`DfosClient (${family.name}): login, mkdir, upload, list (MLSD: exact times), download, interrupted download resumed, rename, view (SITE VIEW), delete`, async (t) => {
    const { srv, work, home } = await prepare(t, family.host);
    const client = await DfosClient.connect({ host: family.host, port: srv.port, user: 'alice', password: 'alice-pw', timeoutMs: 15_000 });
    t.teardown(() => client.close());

    await client.mkdir('d');
    const content = randomBytes(5000);
    const up = await client.upload(content, 'd/f.bin');
    t.is(up.bytes, content.length);
    t.deepEqual(await readFile(join(home, 'd', 'f.bin')), content);
    await utimes(join(home, 'd', 'f.bin'), MTIME, MTIME);

    const list = await client.list('d');
    t.deepEqual(list.map((e) => [e.name, e.type, e.size]), [['f.bin', 'file', content.length]]);
    t.is(list[0]?.modifiedAt.getTime(), MTIME.getTime(), `exact to the second, as only MLSD gives: ${list[0]?.modifiedAt.toISOString()}`);

    const chunks: Buffer[] = [];
    await client.download('d/f.bin', new Writable({ write: (c: Buffer, _e, cb) => (chunks.push(c), cb()) }));
    t.is(sha256(Buffer.concat(chunks)), sha256(content));

    // Resume: the first download is aborted by its progress handler mid-way (the partial
    // file is kept with `resume`), the second continues from it.
    const big = randomBytes(2_000_000);
    await writeFile(join(home, 'big.bin'), big);
    const local = join(work, 'big.bin');
    await t.throwsAsync(
      client.download('big.bin', local, {
        resume: true,
        onProgress: (p) => {
          if (p.bytes >= 200_000) throw new Error('interrupted by the test');
        },
      }),
    );
    const again = client.closed ? await DfosClient.connect({ host: family.host, port: srv.port, user: 'alice', password: 'alice-pw', timeoutMs: 15_000 }) : client;
    if (again !== client) t.teardown(() => again.close());
    const resumed = await again.download('big.bin', local, { resume: true });
    t.true(resumed.resumedFrom > 0 && resumed.resumedFrom < big.length, `resumed from ${resumed.resumedFrom}`);
    t.is(resumed.resumedFrom + resumed.bytes, big.length);
    t.is(sha256(await readFile(local)), sha256(big), 'the resumed download is byte-exact');

    await again.rename('d/f.bin', 'd/g.bin');
    t.deepEqual(await readdir(join(home, 'd')), ['g.bin']);
    await writeFile(join(home, 'd', 'note.txt'), 'viewed through DfosClient\n');
    t.is((await again.view('d/note.txt')).toString(), 'viewed through DfosClient\n');

    await again.delete('d/g.bin');
    await again.delete('d/note.txt');
    await again.removeDir('d');
    await again.delete('big.bin');
    t.deepEqual(await readdir(home), []);
    t.deepEqual(await tempsUnder(srv.storage), []);
  });
}
