import test, { type ExecutionContext } from 'ava';
import { randomBytes, randomInt } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import type { Socket } from 'node:net';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { FTPError } from 'basic-ftp';
import { parseServerConfig } from '../src/config/serverConfig.js';
import { DfosServer } from '../src/server/DfosServer.js';
import { REPLY_MS, type RawFtp, type RawReply } from './helpers/rawFtp.js';
import { startTestServer, writeUsersFile, type TestServer } from './helpers/testServer.js';
import {
  rawLogin,
  TEMP_NAME,
  download,
  sha256,
  sleep,
  socketClosed,
  tempsIn,
  tempsUnder,
  waitFor,
  waitNoTemps,
} from './helpers/interop.js';
import { rawDownload, startDataCommand, writeData } from './helpers/dataTransfer.js';

/**
 * Atomic uploads (issue 2, point 6): data goes to a hidden `.dfos-upload-*.part` next to
 * the target and replaces it only when the upload completed. Vanilla ftp-srv writes in
 * place (defect 18) and truncates on a `close` listener (defect 17).
 */

const CHUNK = 64 * 1024;

async function login(srv: TestServer, user = 'alice', password = `${user}-pw`): Promise<RawFtp> {
  const raw = await rawLogin(srv.port, user, password);
  const type = await raw.command('TYPE I', REPLY_MS);
  if (type.code !== 200) throw new Error(`TYPE I: ${type.raw}`);
  return raw;
}

/**
 * Starts `verb name` over a raw session, sends `first` bytes and waits until they are on
 * disk in an upload temporary in `dir`; returns the data socket and the temporary's name.
 */
async function uploadHalfway(raw: RawFtp, verb: string, name: string, first: Buffer, dir: string, tempSizeAtLeast = first.length) {
  const before = new Set(await tempsIn(dir));
  const { data, preliminary } = await startDataCommand(raw, `${verb} ${name}`);
  await writeData(data, first);
  const temp = await waitFor(`an upload temporary holding ${tempSizeAtLeast} bytes in ${dir}`, async () => {
    for (const n of await tempsIn(dir)) {
      if (before.has(n)) continue;
      const size = await stat(join(dir, n)).then((s) => s.size, () => -1);
      if (size >= tempSizeAtLeast) return n;
    }
    return undefined;
  });
  return { data, temp, preliminary };
}

async function readIfExists(file: string): Promise<Buffer | undefined> {
  return readFile(file).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return undefined;
    throw err;
  });
}

async function setup(t: ExecutionContext, fsync: 'always' | 'never' = 'always') {
  const srv = await startTestServer({ config: { fsync } });
  t.teardown(() => srv.stop());
  // First login creates the home directory.
  const client = await srv.client();
  const home = join(srv.storage, 'alice');
  return { srv, client, home };
}

for (const fsync of ['always', 'never'] as const)
test(`defect 18: an upload goes to a hidden temporary and replaces the target only at the end; readers get the old version meanwhile (--fsync ${fsync})`, async (t) => {
  const { srv, client, home } = await setup(t, fsync);
  const old = randomBytes(300_000);
  await client.uploadFrom(Readable.from([old]), 'a.bin');
  t.deepEqual(await readFile(join(home, 'a.bin')), old);

  const next = randomBytes(5 * CHUNK + 123);
  const raw = await login(srv);
  t.teardown(() => raw.close());
  const { data, temp } = await uploadHalfway(raw, 'STOR', 'a.bin', next.subarray(0, 2 * CHUNK), home);
  t.regex(temp, TEMP_NAME, 'the temporary is hidden (dot file) and named .dfos-upload-*.part');

  // Mid-upload: the target on disk and what another session downloads is the old, complete file.
  t.deepEqual(await readFile(join(home, 'a.bin')), old, 'target unchanged on disk during the upload');
  const reader = await srv.client();
  t.is(sha256(await download(reader, 'a.bin')), sha256(old), 'another session downloads the previous complete version');
  t.is(await reader.size('a.bin'), old.length);
  t.deepEqual((await reader.list()).map((e) => e.name), ['a.bin'], 'the temporary is not listed');

  await writeData(data, next.subarray(2 * CHUNK));
  data.end();
  const final = await raw.read(REPLY_MS);
  t.is(final.code, 226, final.raw);
  t.deepEqual(await readFile(join(home, 'a.bin')), next, 'the new content replaced the target');
  t.is(sha256(await download(reader, 'a.bin')), sha256(next));
  t.deepEqual(await waitNoTemps(home), [], 'no temporary left after success');
});

test('defect 18: while a new file is being uploaded, other sessions get 550 for it and do not list it', async (t) => {
  const { srv, home } = await setup(t);
  const raw = await login(srv);
  t.teardown(() => raw.close());
  const content = randomBytes(3 * CHUNK);
  const { data } = await uploadHalfway(raw, 'STOR', 'new.bin', content.subarray(0, CHUNK), home);

  const reader = await srv.client();
  const err = await t.throwsAsync(download(reader, 'new.bin'));
  t.true(err instanceof FTPError && err.code === 550, `RETR of a file still being uploaded: ${String(err)}`);
  t.deepEqual(await reader.list(), [], 'nothing listed during the upload');
  t.is(await readIfExists(join(home, 'new.bin')), undefined, 'no target on disk yet');

  await writeData(data, content.subarray(CHUNK));
  data.end();
  t.is((await raw.read(REPLY_MS)).code, 226);
  t.deepEqual(await download(reader, 'new.bin'), content);
  t.deepEqual(await waitNoTemps(home), []);
});

test('defect 17: a complete multi-megabyte upload in many small writes ends with 226 and is stored whole (not truncated)', async (t) => {
  const { srv, home } = await setup(t);
  const raw = await login(srv);
  t.teardown(() => raw.close());
  const content = randomBytes(3 * 1024 * 1024 + 17);
  const { data } = await startDataCommand(raw, 'STOR big.bin');
  for (let off = 0; off < content.length; off += 7919) await writeData(data, content.subarray(off, off + 7919));
  data.end();
  const final = await raw.read(REPLY_MS);
  t.is(final.code, 226, final.raw);
  t.is(sha256(await readFile(join(home, 'big.bin'))), sha256(content));
  t.deepEqual(await waitNoTemps(home), []);
});

test('defect 18: temporaries never appear in LIST/NLST and RETR, SITE VIEW, DELE, RNFR, SIZE, STOR, APPE of a temporary are refused', async (t) => {
  const { srv, home } = await setup(t);
  await mkdir(join(home, 'sub'));
  // A temporary planted directly on disk, and one belonging to a running upload.
  const planted = '.dfos-upload-planted.part';
  await writeFile(join(home, planted), 'planted temp');
  await writeFile(join(home, 'sub', planted), 'planted temp in sub');
  await writeFile(join(home, 'visible.txt'), 'visible');

  const uploader = await login(srv);
  t.teardown(() => uploader.close());
  const content = randomBytes(4 * CHUNK);
  const { data, temp } = await uploadHalfway(uploader, 'STOR', 'up.bin', content.subarray(0, CHUNK), home);

  const raw = await login(srv);
  t.teardown(() => raw.close());
  for (const line of ['LIST', 'LIST -a', 'LIST -la', 'NLST', 'NLST -a', 'LIST /', 'NLST sub', 'LIST -a sub']) {
    const { bytes, final } = await rawDownload(raw, line);
    t.is(final.code, 226, `${line}: ${final.raw}`);
    const text = bytes.toString('utf8');
    t.false(text.includes('.dfos-upload-'), `${line} shows a temporary: ${text}`);
    if (!line.includes('sub')) t.true(text.includes('visible.txt'), `${line} lists real files: ${text}`);
  }
  const client = await srv.client();
  t.deepEqual((await client.list()).map((e) => e.name).sort(), ['sub', 'visible.txt']);
  t.deepEqual((await client.list('sub')).map((e) => e.name), []);

  for (const name of [temp, planted, `/${temp}`, `./${planted}`, `sub/${planted}`, `sub/../${temp}`]) {
    for (const line of [`SITE VIEW ${name}`, `DELE ${name}`, `RNFR ${name}`, `SIZE ${name}`, `MDTM ${name}`]) {
      const r = await raw.command(line, REPLY_MS);
      t.true(r.code >= 500 && r.code < 600, `${line} must be refused: ${r.raw}`);
      t.false(r.raw.includes(home), `${line}: the reply must not show a server path`);
    }
    for (const verb of ['RETR', 'STOR', 'APPE']) {
      const epsv = await raw.command('EPSV', REPLY_MS);
      t.is(epsv.code, 229);
      const r = await raw.command(`${verb} ${name}`, REPLY_MS);
      t.true(r.code >= 500 && r.code < 600, `${verb} ${name} must be refused: ${r.raw}`);
    }
  }
  // RNTO onto a temporary's name is refused too.
  t.is((await raw.command('RNFR visible.txt', REPLY_MS)).code, 350);
  const rnto = await raw.command(`RNTO ${temp}`, REPLY_MS);
  t.true(rnto.code >= 500 && rnto.code < 600, `RNTO onto a temporary: ${rnto.raw}`);

  // Nothing was touched: the planted temporaries are intact and the running upload still succeeds.
  t.is(await readFile(join(home, planted), 'utf8'), 'planted temp');
  t.is(await readFile(join(home, 'sub', planted), 'utf8'), 'planted temp in sub');
  t.is(await readFile(join(home, 'visible.txt'), 'utf8'), 'visible');
  await writeData(data, content.subarray(CHUNK));
  data.end();
  const final = await uploader.read(REPLY_MS);
  t.is(final.code, 226, final.raw);
  t.deepEqual(await readFile(join(home, 'up.bin')), content);
  t.deepEqual((await tempsIn(home)).sort(), [planted], 'only the planted temporary remains');
});

/** Ways an upload can be interrupted half-way; each must leave the target as it was and no temporary. */
const interruptions: { title: string; interrupt: (ctx: { raw: RawFtp; data: Socket }) => Promise<string | void> }[] = [
  {
    title: 'defect 18: a data connection reset (RST) mid-upload',
    async interrupt({ raw, data }) {
      data.resetAndDestroy();
      const reply = await raw.read(REPLY_MS);
      if (reply.code < 400) return `a reset upload was answered ${reply.raw}`;
    },
  },
  {
    title: 'defect 18: the client crashes mid-upload (data connection reset, control connection dropped)',
    async interrupt({ raw, data }) {
      data.resetAndDestroy();
      raw.close();
    },
  },
  {
    title: 'defect 11 + 18: ABOR mid-upload (answered while the data connection is still open)',
    async interrupt({ raw, data }) {
      raw.write('ABOR\r\n');
      // RFC 959: the server closes the data connection, answers 426 for the transfer, then 226 for ABOR.
      const first = await raw.read(REPLY_MS).catch((err: Error) => err);
      if (first instanceof Error) {
        data.resetAndDestroy();
        return `no reply to ABOR while the upload was running (${first.message})`;
      }
      if (first.code !== 426 && first.code !== 451) return `first reply after ABOR: ${first.raw}`;
      const second = await raw.read(REPLY_MS).catch((err: Error) => err);
      if (second instanceof Error || (second.code !== 226 && second.code !== 225)) return `ABOR's own reply: ${second instanceof Error ? second.message : second.raw}`;
      if (!(await socketClosed(data))) return 'the server did not close the data connection after ABOR';
    },
  },
  {
    title: 'defect 18: QUIT mid-upload, then the client drops the data connection',
    async interrupt({ raw, data }) {
      raw.write('QUIT\r\n');
      // The client leaves without finishing the file: its data connection is cut.
      data.resetAndDestroy();
      const replies: RawReply[] = [];
      for (let i = 0; i < 3 && !raw.closed; i++) {
        const r = await raw.read(REPLY_MS).catch(() => undefined);
        if (!r) break;
        replies.push(r);
      }
      await raw.waitClosed(10_000).catch(() => undefined);
      if (!raw.closed) return 'the server did not close the control connection after QUIT';
      const codes = replies.map((r) => r.code);
      // The failed transfer is answered (4xx) and QUIT closes the session (221), in that order.
      if (codes.length !== 2 || codes[0]! < 400 || codes[1] !== 221) return `replies after QUIT: ${replies.map((r) => r.raw.trim()).join(' | ')}`;
    },
  },
  {
    title: 'defect 18: the control connection drops mid-upload (data connection left open)',
    async interrupt({ raw, data }) {
      raw.close();
      // The server must discard the upload when its session ends, even though the data
      // connection is still open; only then do we let the data connection go.
      const dataGone = await socketClosed(data);
      data.resetAndDestroy();
      if (!dataGone) return 'the server kept the data connection of a closed session open';
    },
  },
];

for (const { title, interrupt } of interruptions) {
  for (const existing of [true, false]) {
    test(`${title} leaves the ${existing ? 'existing target byte-identical' : 'missing target absent'} and no temporary`, async (t) => {
      const { srv, client, home } = await setup(t);
      const old = randomBytes(200_000);
      if (existing) await client.uploadFrom(Readable.from([old]), 'target.bin');
      const raw = await login(srv);
      t.teardown(() => raw.close());
      const { data } = await uploadHalfway(raw, 'STOR', 'target.bin', randomBytes(3 * CHUNK), home);
      const problem = await interrupt({ raw, data });
      t.is(problem, undefined, problem ?? '');
      t.deepEqual(await waitNoTemps(home), [], 'no temporary left behind');
      // Give a late commit a chance to show up before checking the target.
      await sleep(200);
      if (existing) t.deepEqual(await readFile(join(home, 'target.bin')), old, 'old content byte-identical');
      else t.is(await readIfExists(join(home, 'target.bin')), undefined, 'no partial target');
      // The server is still healthy for the next upload of the same name.
      await client.uploadFrom(Readable.from([Buffer.from('after')]), 'target.bin');
      t.is(await readFile(join(home, 'target.bin'), 'utf8'), 'after');
      t.deepEqual(await tempsUnder(home), []);
    });
  }
}

test('defect 18: a data connection reset right after its data was sent (reset queued behind unread bytes) is not taken for a complete upload', async (t) => {
  const { srv, client, home } = await setup(t);
  const old = randomBytes(50_000);
  await client.uploadFrom(Readable.from([old]), 'target.bin');
  const raw = await login(srv);
  t.teardown(() => raw.close());
  // The client sends part of a file and resets at once, before the server has read it:
  // the kernel then holds the bytes followed by the RST. A FIN would mean "file complete";
  // an RST never does.
  for (let i = 0; i < 5; i++) {
    const { data } = await startDataCommand(raw, 'STOR target.bin');
    await writeData(data, randomBytes(1000));
    data.resetAndDestroy();
    const reply = await raw.read(REPLY_MS);
    t.true(reply.code >= 400, `attempt ${i}: a reset upload was answered ${reply.raw.trim()}`);
    t.deepEqual(await waitNoTemps(home), [], `attempt ${i}: no temporary left`);
    t.is(sha256(await readFile(join(home, 'target.bin'))), sha256(old), `attempt ${i}: target replaced by a partial upload`);
  }
});

for (const fsync of ['always', 'never'] as const)
test(`defect 18: an interrupted APPE leaves the original content and no temporary or journal (--fsync ${fsync})`, async (t) => {
  const { srv, client, home } = await setup(t, fsync);
  const old = randomBytes(100_000);
  await client.uploadFrom(Readable.from([old]), 'log.bin');
  const raw = await login(srv);
  t.teardown(() => raw.close());
  // An APPE writes in place (issue 7 row 10) after journalling the old size.
  const { data } = await startDataCommand(raw, 'APPE log.bin');
  await writeData(data, randomBytes(CHUNK));
  await waitFor('the appended bytes on disk', async () => ((await stat(join(home, 'log.bin'))).size >= old.length + CHUNK ? true : undefined));
  t.deepEqual((await readFile(join(home, 'log.bin'))).subarray(0, old.length), old, 'the old content stays the prefix during APPE');
  t.is((await tempsIn(home)).length, 1, 'one journal while the append runs');
  data.resetAndDestroy();
  const reply = await raw.read(REPLY_MS);
  t.true(reply.code >= 400, reply.raw);
  t.deepEqual(await waitNoTemps(home), []);
  t.deepEqual(await readFile(join(home, 'log.bin')), old);
});

test('defect 18: two clients storing the same name at once leave exactly one of the two complete files, and readers only ever see complete versions', async (t) => {
  t.timeout(120_000, 'ten rounds of two concurrent 1-5 MB uploads');
  const { srv, home } = await setup(t);
  const a = await srv.client();
  const b = await srv.client();
  const reader = await srv.client();
  const rounds = 10;
  let previous: string | undefined;
  for (let round = 0; round < rounds; round++) {
    const ca = randomBytes(randomInt(1 << 20, 5 << 20));
    const cb = randomBytes(randomInt(1 << 20, 5 << 20));
    const allowed = new Set([sha256(ca), sha256(cb), ...(previous ? [previous] : [])]);
    let uploading = true;
    const reads: string[] = [];
    const readerLoop = (async () => {
      // Bounded: at most 50 reads per round.
      for (let i = 0; i < 50 && uploading; i++) {
        try {
          reads.push(sha256(await download(reader, 'same.bin')));
        } catch (err) {
          if (!(err instanceof FTPError && err.code === 550 && previous === undefined)) throw err;
        }
      }
    })();
    const results = await Promise.allSettled([
      a.uploadFrom(Readable.from([ca]), 'same.bin'),
      b.uploadFrom(Readable.from([cb]), 'same.bin'),
    ]);
    uploading = false;
    await readerLoop;
    for (const r of results) t.is(r.status, 'fulfilled', `round ${round}: ${r.status === 'rejected' ? String(r.reason) : ''}`);
    const final = sha256(await readFile(join(home, 'same.bin')));
    t.true(final === sha256(ca) || final === sha256(cb), `round ${round}: the file is exactly one of the two uploads`);
    t.is(sha256(await download(reader, 'same.bin')), final);
    for (const h of reads) t.true(allowed.has(h), `round ${round}: a reader saw a partial or mixed file`);
    t.deepEqual(await waitNoTemps(home), [], `round ${round}: no temporary left`);
    previous = final;
  }
});

test('stale upload temporaries under the storage root are removed at startup; other files stay', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'dfos-stale-'));
  const storage = join(dir, 'storage');
  await mkdir(join(storage, 'alice', 'sub', 'deeper'), { recursive: true });
  await mkdir(join(storage, 'bob'), { recursive: true });
  const stale = [
    'alice/.dfos-upload-x.part',
    'alice/sub/.dfos-upload-x.part',
    'alice/sub/deeper/.dfos-upload-0123abcd.part',
    'bob/.dfos-upload-y.part',
  ];
  for (const p of stale) await writeFile(join(storage, p), 'half an upload');
  const kept = ['alice/keep.txt', 'alice/sub/keep.part', 'alice/sub/deeper/.hidden', 'bob/notes.txt'];
  for (const p of kept) await writeFile(join(storage, p), `kept ${p}`);
  const usersFile = join(dir, 'users.json');
  await writeUsersFile(usersFile, [
    { name: 'alice', password: 'alice-pw' },
    { name: 'bob', password: 'bob-pw' },
  ]);
  const config = parseServerConfig({
    host: '127.0.0.1',
    port: 0,
    pasvMin: 0,
    pasvMax: 0,
    storage,
    logDir: join(dir, 'logs'),
    users: usersFile,
    stateDir: join(dir, 'state'),
    authFailDelay: 0.05,
    console: false,
    adminListen: 'off',
  });
  const server = await DfosServer.start(config);
  t.teardown(async () => {
    await server.shutdown(1000);
    await rm(dir, { recursive: true, force: true });
  });
  t.deepEqual(await tempsUnder(storage), [], 'every stale temporary was removed before serving');
  for (const p of kept) t.is(await readFile(join(storage, p), 'utf8'), `kept ${p}`, `${p} kept`);
  const raw = await rawLogin(server.address.port, 'alice', 'alice-pw');
  t.teardown(() => raw.close());
  t.is((await raw.command('SIZE keep.txt', REPLY_MS)).code, 213);
});
