import type { TestFn } from 'ava';
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { Client, FTPError } from 'basic-ftp';
import type { ServerConfigInput } from '../../src/config/serverConfig.js';
import { decodePreview } from '../../src/preview/previewFormat.js';
import type { StorageCapabilities } from '../../src/storage/StorageBackend.js';
import { rawList, rawUpload, startDataCommand, writeData } from './dataTransfer.js';
import { download, rawLogin, waitFor } from './interop.js';
import { REPLY_MS } from './rawFtp.js';
import { startTestServer, type TestServer, type TestUser } from './testServer.js';

/**
 * The behaviour every storage backend must show through FTP, written once and run against
 * each backend (test/contract.local.test.ts, test/contract.s3.test.ts). A backend gives
 * the server configuration that selects it and two ways to look behind the server: the
 * stored bytes of a file, and what an interrupted upload may have left behind (local
 * temporaries, unfinished S3 multipart uploads).
 */
export interface ContractBackend {
  /** Server configuration keys selecting the backend (storage, s3Endpoint…). */
  config(): Promise<ServerConfigInput>;
  capabilities: StorageCapabilities;
  /** The stored content of `user`'s `path`, or undefined when nothing is stored there. */
  stored(server: TestServer, user: string, path: string): Promise<Buffer | undefined>;
  /** Leftovers of unfinished uploads for the whole server (must be empty after every test). */
  leftovers(server: TestServer): Promise<string[]>;
}

const USERS: TestUser[] = [
  { name: 'alice', password: 'alice-pw' },
  { name: 'bob', password: 'bob-pw' },
  { name: 'reader', password: 'reader-pw', readOnly: true },
  { name: 'quota', password: 'quota-pw', quotaBytes: 800 << 10, quotaFiles: 3, maxFileSize: 600 << 10 },
];

/** Registers the contract tests under `title` for one backend. */
export function storageContract(test: TestFn, title: string, backend: ContractBackend): void {
  async function server(t: { teardown(fn: () => unknown): void }): Promise<TestServer> {
    const srv = await startTestServer({ users: USERS, config: await backend.config() });
    t.teardown(() => srv.stop());
    return srv;
  }

  async function upload(client: Client, path: string, content: Buffer): Promise<void> {
    await client.uploadFrom(Readable.from([content]), path);
  }

  test(`${title}: users are isolated: each sees only its own home as /, .. stays inside`, async (t) => {
    const srv = await server(t);
    const alice = await srv.client('alice');
    const bob = await srv.client('bob');
    await upload(alice, 'secret.txt', Buffer.from('alice only\n'));
    t.deepEqual((await bob.list()).map((e) => e.name), []);
    for (const path of ['../alice/secret.txt', '/../alice/secret.txt', '..\\alice\\secret.txt']) {
      const err = await t.throwsAsync(download(bob, path));
      t.is((err as FTPError).code, 550, path);
    }
    t.deepEqual(await backend.stored(srv, 'bob', '/secret.txt'), undefined);
    t.deepEqual(await backend.stored(srv, 'alice', '/secret.txt'), Buffer.from('alice only\n'));
  });

  test(`${title}: an upload appears only when complete; a reset or ABOR leaves the old version and nothing behind`, async (t) => {
    const srv = await server(t);
    const client = await srv.client('alice');
    const old = randomBytes(50_000);
    await upload(client, 'target.bin', old);
    for (const how of ['reset', 'abor'] as const) {
      const raw = await rawLogin(srv.port, 'alice', 'alice-pw');
      t.teardown(() => raw.close());
      const { data } = await startDataCommand(raw, 'STOR target.bin');
      await writeData(data, randomBytes(3 << 20));
      t.deepEqual(await download(client, 'target.bin'), old, `${how}: readers get the old version mid-upload`);
      if (how === 'reset') data.resetAndDestroy();
      else raw.write('ABOR\r\n');
      const reply = await raw.read(REPLY_MS);
      t.true(reply.code >= 400, `${how}: ${reply.raw}`);
      if (how === 'abor') t.is((await raw.read(REPLY_MS)).code, 226);
      data.destroy();
      t.deepEqual(await waitFor(`no leftovers after ${how}`, async () => ((await backend.leftovers(srv)).length === 0 ? [] : undefined)), []);
      t.deepEqual(await backend.stored(srv, 'alice', '/target.bin'), old, `${how}: the target is unchanged`);
    }
  });

  test(`${title}: an upload cut by the server's shutdown is discarded`, async (t) => {
    const srv = await server(t);
    const raw = await rawLogin(srv.port, 'alice', 'alice-pw');
    t.teardown(() => raw.close());
    const { data } = await startDataCommand(raw, 'STOR cut.bin');
    await writeData(data, randomBytes(1 << 20));
    await srv.server.shutdown(300);
    data.destroy();
    t.is(await backend.stored(srv, 'alice', '/cut.bin'), undefined);
    t.deepEqual(await backend.leftovers(srv), []);
  });

  test(`${title}: SITE VIEW shows the first 1024 bytes, exactly`, async (t) => {
    const srv = await server(t);
    const client = await srv.client('alice');
    const text = Buffer.from('line one\nline two\twith tab\n'.repeat(100));
    await upload(client, 'notes.txt', text);
    const raw = await rawLogin(srv.port, 'alice', 'alice-pw');
    t.teardown(() => raw.close());
    const reply = await raw.command('SITE VIEW notes.txt', REPLY_MS);
    t.is(reply.code, 200);
    const preview = decodePreview(reply.lines.join('\n'));
    t.deepEqual(preview.bytes, text.subarray(0, 1024));
    t.is(preview.fileSize, text.length);
    t.is((await raw.command('SITE VIEW missing.txt', REPLY_MS)).code, 550);
  });

  test(`${title}: listings (LIST, NLST, MLSD) show files and directories; MKD, RMD (refused while not empty), CWD`, async (t) => {
    const srv = await server(t);
    const client = await srv.client('alice');
    await client.ensureDir('/docs/deep');
    await client.cd('/');
    await upload(client, 'docs/a.txt', Buffer.from('a'));
    await upload(client, 'b.bin', randomBytes(1234));
    const entries = await client.list();
    t.deepEqual(entries.map((e) => `${e.name}:${e.isDirectory ? 'dir' : e.size}`).sort(), ['b.bin:1234', 'docs:dir']);
    const raw = await rawLogin(srv.port, 'alice', 'alice-pw');
    t.teardown(() => raw.close());
    t.deepEqual((await rawList(raw, 'docs', 'NLST')).names.sort(), ['a.txt', 'deep']);
    t.is((await raw.command('RMD docs', REPLY_MS)).code, 550, 'RMD of a non-empty directory');
    t.is((await raw.command('MKD docs', REPLY_MS)).code, 550, 'MKD of an existing directory');
    t.is((await raw.command('MKD nodir/x', REPLY_MS)).code, 550, 'MKD under a missing parent');
    t.is((await raw.command('CWD docs/deep', REPLY_MS)).code, 250);
    t.is((await raw.command('CWD /nodir', REPLY_MS)).code, 550);
    t.is((await raw.command('RMD /docs/deep', REPLY_MS)).code, 250);
    t.deepEqual((await rawList(raw, '/docs', 'NLST')).names, ['a.txt']);
  });

  test(`${title}: rename and delete files`, async (t) => {
    const srv = await server(t);
    const client = await srv.client('alice');
    const content = randomBytes(10_000);
    await upload(client, 'old.bin', content);
    await client.rename('old.bin', 'new.bin');
    t.deepEqual(await download(client, 'new.bin'), content);
    t.is(await backend.stored(srv, 'alice', '/old.bin'), undefined);
    await client.remove('new.bin');
    t.is(await backend.stored(srv, 'alice', '/new.bin'), undefined);
    const err = await t.throwsAsync(client.remove('new.bin'));
    t.is((err as FTPError).code, 550);
  });

  test(`${title}: resume: REST + RETR always; REST + STOR and APPE where the backend can, else a clear 5xx and nothing changed`, async (t) => {
    const srv = await server(t);
    const client = await srv.client('alice');
    const content = randomBytes(100_000);
    await upload(client, 'file.bin', content);
    const raw = await rawLogin(srv.port, 'alice', 'alice-pw');
    t.teardown(() => raw.close());
    t.is((await raw.command('REST 60000', REPLY_MS)).code, 350);
    const { data } = await startDataCommand(raw, 'RETR file.bin');
    const chunks: Buffer[] = [];
    for await (const c of data) chunks.push(c as Buffer);
    t.is((await raw.read(REPLY_MS)).code, 226);
    t.deepEqual(Buffer.concat(chunks), content.subarray(60_000));

    // REST at the end + STOR (resume an upload), then APPE.
    const tail = randomBytes(5000);
    t.is((await raw.command(`REST ${content.length}`, REPLY_MS)).code, 350);
    const resumed = await rawUpload(raw, 'STOR file.bin', tail);
    const more = Buffer.from('appended\n');
    const appended = await rawUpload(raw, 'APPE file.bin', more);
    if (backend.capabilities.resume) t.is(resumed.code, 226);
    else {
      t.is(resumed.code, 502, resumed.replies[0]?.raw);
      t.regex(resumed.replies[0]?.raw ?? '', /not supported/i);
    }
    if (backend.capabilities.append) t.is(appended.code, 226);
    else t.is(appended.code, 502, appended.replies[0]?.raw);
    const expected = Buffer.concat([content, backend.capabilities.resume ? tail : Buffer.alloc(0), backend.capabilities.append ? more : Buffer.alloc(0)]);
    t.deepEqual(await backend.stored(srv, 'alice', '/file.bin'), expected);
    t.deepEqual(await backend.leftovers(srv), []);
  });

  test(`${title}: MFMT sets a file's modification time where the backend can (MDTM and MLST show it), else 502, and FEAT says which`, async (t) => {
    const srv = await server(t);
    const client = await srv.client('alice');
    await upload(client, 'synced.txt', Buffer.from('x'));
    const raw = await rawLogin(srv.port, 'alice', 'alice-pw');
    t.teardown(() => raw.close());
    const feat = await raw.command('FEAT', REPLY_MS);
    t.is(feat.lines.some((l) => l.trim() === 'MFMT'), backend.capabilities.setModificationTime, feat.raw);
    const reply = await raw.command('MFMT 20200102030405 synced.txt', REPLY_MS);
    if (backend.capabilities.setModificationTime) {
      t.is(reply.lines[0], '213 Modify=20200102030405; /synced.txt');
      t.is((await raw.command('MDTM synced.txt', REPLY_MS)).lines[0], '213 20200102030405');
      t.regex((await raw.command('MLST synced.txt', REPLY_MS)).raw, /modify=20200102030405(\.000)?;/);
    } else {
      t.is(reply.code, 502, reply.raw);
    }
    t.is((await raw.command('MFMT 20201302030405 synced.txt', REPLY_MS)).code, 501, 'month 13');
    t.is((await raw.command('MFMT 20200102030405 missing.txt', REPLY_MS)).code, backend.capabilities.setModificationTime ? 550 : 502);
    const reader = await rawLogin(srv.port, 'reader', 'reader-pw');
    t.teardown(() => reader.close());
    t.is((await reader.command('MFMT 20200102030405 anything.txt', REPLY_MS)).code, 550, 'read-only');
  });

  test(`${title}: 50 sessions upload and download at once, every byte intact`, async (t) => {
    t.timeout(120_000);
    const srv = await server(t);
    const sessions = await Promise.all(Array.from({ length: 50 }, (_, i) => srv.client(i % 2 === 0 ? 'alice' : 'bob')));
    const contents = sessions.map(() => randomBytes(64 * 1024 + Math.floor(Math.random() * 256 * 1024)));
    await Promise.all(sessions.map((c, i) => upload(c, `f${i}.bin`, contents[i]!)));
    const back = await Promise.all(sessions.map((c, i) => download(c, `f${i}.bin`)));
    t.is(back.filter((b, i) => !b.equals(contents[i]!)).length, 0);
    t.is((await sessions[0]!.list()).length, 25, 'alice sees exactly her 25 files');
    t.deepEqual(await backend.leftovers(srv), []);
  });

  test(`${title}: a read-only user can read and list but changes nothing`, async (t) => {
    const srv = await server(t);
    const reader = await srv.client('reader', 'reader-pw');
    const raw = await rawLogin(srv.port, 'reader', 'reader-pw');
    t.teardown(() => raw.close());
    t.deepEqual((await reader.list()).map((e) => e.name), []);
    for (const line of ['MKD d', 'DELE x', 'RMD d', 'SITE CHMOD 644 x']) t.is((await raw.command(line, REPLY_MS)).code, 550, line);
    const err = await t.throwsAsync(upload(reader, 'x.txt', Buffer.from('x')));
    t.is((err as FTPError).code, 550);
    t.is(await backend.stored(srv, 'reader', '/x.txt'), undefined);
  });

  test(`${title}: quotas: usage measured by walking the home once, kept current, enforced while the upload runs (552, old version kept, nothing left)`, async (t) => {
    const config = await backend.config();
    const first = await startTestServer({ users: USERS, config });
    t.teardown(() => first.stop());
    const client = await first.client('quota', 'quota-pw');
    await client.ensureDir('/dir');
    await upload(client, '/dir/b.bin', randomBytes(100 << 10));
    await upload(client, '/a.bin', randomBytes(200 << 10));
    client.close();

    // The same storage with a new state directory: nothing recorded, so the home is walked at the first login.
    const srv = await startTestServer({ users: USERS, config: { ...config, storage: first.storage } });
    t.teardown(() => srv.stop());
    const raw = await rawLogin(srv.port, 'quota', 'quota-pw');
    t.teardown(() => raw.close());
    const quota = async () => (await raw.command('SITE QUOTA', REPLY_MS)).raw;
    t.regex(await quota(), / Bytes: 300 KiB \(307200 bytes\) used of 800 KiB \(37\.5%\)\r\n Files: 2 of 3 \(66\.6%\)\r\n Largest file: 600 KiB/);

    const a = await backend.stored(srv, 'quota', '/a.bin');
    t.is((await raw.command('TYPE I', REPLY_MS)).code, 200);
    const tooLarge = await rawUpload(raw, 'STOR a.bin', randomBytes(700 << 10));
    t.is(tooLarge.code, 552, tooLarge.final.raw);
    const overQuota = await rawUpload(raw, 'STOR c.bin', randomBytes(590 << 10));
    t.is(overQuota.code, 552, overQuota.final.raw);
    t.deepEqual(await backend.stored(srv, 'quota', '/a.bin'), a);
    t.is(await backend.stored(srv, 'quota', '/c.bin'), undefined);
    t.deepEqual(await waitFor('no leftovers', async () => ((await backend.leftovers(srv)).length === 0 ? [] : undefined)), []);

    t.is((await rawUpload(raw, 'STOR c.bin', randomBytes(10 << 10))).code, 226);
    t.is((await rawUpload(raw, 'STOR d.bin', 'x')).code, 552, 'a fourth file');
    t.is((await raw.command('RNFR c.bin', REPLY_MS)).code, 350);
    t.is((await raw.command('RNTO dir/b.bin', REPLY_MS)).code, 250);
    t.is((await raw.command('DELE a.bin', REPLY_MS)).code, 250);
    t.regex(await quota(), / Bytes: 10 KiB \(10240 bytes\) used of 800 KiB \(1\.2%\)\r\n Files: 1 of 3 \(33\.3%\)/);
    t.is((await rawUpload(raw, 'STOR d.bin', randomBytes(590 << 10))).code, 226);
  });
}
