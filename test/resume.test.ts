import test, { type ExecutionContext } from 'ava';
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, readdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { REPLY_MS, type RawFtp } from './helpers/rawFtp.js';
import { startTestServer } from './helpers/testServer.js';
import { rawLogin, waitFor, waitNoTemps } from './helpers/interop.js';
import { rawDownload, rawUpload, startDataCommand, writeData } from './helpers/dataTransfer.js';

/**
 * REST, APPE and STOU (issue 2, point 6). Vanilla ftp-srv opens REST + STOR with `w+`
 * plus `start`, so `REST 3` + STOR `XYZ` over `abcdefgh` gives `\0\0\0XYZ`, and keeps a
 * REST offset after a failed transfer (defect 16); STOU without argument fails (defect 10).
 */

async function setup(t: ExecutionContext) {
  const srv = await startTestServer();
  t.teardown(() => srv.stop());
  const home = join(srv.storage, 'alice');
  await mkdir(home, { recursive: true });
  const raw = await rawLogin(srv.port, 'alice', 'alice-pw');
  t.teardown(() => raw.close());
  t.is((await raw.command('TYPE I', REPLY_MS)).code, 200);
  return { srv, home, raw };
}

async function isRefused(t: ExecutionContext, raw: RawFtp, line: string): Promise<void> {
  const epsv = await raw.command('EPSV', REPLY_MS);
  t.is(epsv.code, 229);
  const r = await raw.command(line, REPLY_MS);
  t.true(r.code >= 500 && r.code < 600, `${line} must get a 5xx: ${r.raw}`);
}

test('defect 16: REST 3 + STOR XYZ over abcdefgh gives abcXYZ (kept prefix, never zero-filled)', async (t) => {
  const { home, raw } = await setup(t);
  await writeFile(join(home, 'f.txt'), 'abcdefgh');
  t.is((await raw.command('REST 3', REPLY_MS)).code, 350);
  const { final } = await rawUpload(raw, 'STOR f.txt', Buffer.from('XYZ'));
  t.is(final.code, 226, final.raw);
  const stored = await readFile(join(home, 'f.txt'));
  t.false(stored.includes(0), 'no zero bytes');
  t.is(stored.toString('latin1'), 'abcXYZ');
  const { bytes } = await rawDownload(raw, 'RETR f.txt');
  t.is(bytes.toString(), 'abcXYZ');
  t.deepEqual(await waitNoTemps(home), []);
});

test('defect 16: REST n + STOR of a large binary file keeps exactly the first n bytes', async (t) => {
  const { home, raw } = await setup(t);
  const old = randomBytes(700_000);
  const tail = randomBytes(400_000);
  await writeFile(join(home, 'big.bin'), old);
  t.is((await raw.command('REST 500000', REPLY_MS)).code, 350);
  const { final } = await rawUpload(raw, 'STOR big.bin', tail);
  t.is(final.code, 226, final.raw);
  t.deepEqual(await readFile(join(home, 'big.bin')), Buffer.concat([old.subarray(0, 500_000), tail]));
});

test('defect 16: REST + STOR is atomic: mid-upload the target is the old file, a reset keeps it', async (t) => {
  const { home, raw } = await setup(t);
  await writeFile(join(home, 'f.txt'), 'abcdefgh');
  t.is((await raw.command('REST 4', REPLY_MS)).code, 350);
  const { data } = await startDataCommand(raw, 'STOR f.txt');
  await writeData(data, randomBytes(100_000));
  await waitFor('the resume temporary', async () => ((await readdir(home)).some((n) => n.startsWith('.dfos-upload-')) ? true : undefined));
  t.is(await readFile(join(home, 'f.txt'), 'latin1'), 'abcdefgh');
  data.resetAndDestroy();
  const r = await raw.read(REPLY_MS);
  t.true(r.code >= 400, r.raw);
  t.deepEqual(await waitNoTemps(home), []);
  t.is(await readFile(join(home, 'f.txt'), 'latin1'), 'abcdefgh');
});

test('defect 16: REST beyond the end of the file + STOR is refused with a 5xx and the file is untouched', async (t) => {
  const { home, raw } = await setup(t);
  await writeFile(join(home, 'f.txt'), 'abcdefgh');
  t.is((await raw.command('REST 9', REPLY_MS)).code, 350);
  await isRefused(t, raw, 'STOR f.txt');
  t.is(await readFile(join(home, 'f.txt'), 'latin1'), 'abcdefgh');
  t.is((await raw.command('REST 1000', REPLY_MS)).code, 350);
  await isRefused(t, raw, 'STOR f.txt');
  t.is(await readFile(join(home, 'f.txt'), 'latin1'), 'abcdefgh');
  // A missing file has size 0: any positive offset is beyond its end.
  t.is((await raw.command('REST 3', REPLY_MS)).code, 350);
  await isRefused(t, raw, 'STOR missing.txt');
  t.deepEqual((await readdir(home)).sort(), ['f.txt']);
  // REST equal to the size resumes at the end (an append).
  t.is((await raw.command('REST 8', REPLY_MS)).code, 350);
  const { final } = await rawUpload(raw, 'STOR f.txt', Buffer.from('IJ'));
  t.is(final.code, 226, final.raw);
  t.is(await readFile(join(home, 'f.txt'), 'latin1'), 'abcdefghIJ');
});

test('REST 0 + STOR is a plain STOR (replaces the whole file)', async (t) => {
  const { home, raw } = await setup(t);
  await writeFile(join(home, 'f.txt'), 'abcdefgh');
  t.is((await raw.command('REST 0', REPLY_MS)).code, 350);
  const { final } = await rawUpload(raw, 'STOR f.txt', Buffer.from('XY'));
  t.is(final.code, 226, final.raw);
  t.is(await readFile(join(home, 'f.txt'), 'latin1'), 'XY');
});

test('defect 16: the REST offset does not leak to the next transfer after a failed one', async (t) => {
  const { home, raw } = await setup(t);
  await writeFile(join(home, 'f.txt'), 'abcdefgh');

  // REST, then a STOR that fails before any data (no such directory): the next STOR is plain.
  t.is((await raw.command('REST 3', REPLY_MS)).code, 350);
  await isRefused(t, raw, 'STOR nodir/x.txt');
  let { final } = await rawUpload(raw, 'STOR f.txt', Buffer.from('XY'));
  t.is(final.code, 226, final.raw);
  t.is(await readFile(join(home, 'f.txt'), 'latin1'), 'XY', 'the failed STOR consumed the REST offset');

  // REST beyond the end (refused), then a plain STOR.
  await writeFile(join(home, 'f.txt'), 'abcdefgh');
  t.is((await raw.command('REST 50', REPLY_MS)).code, 350);
  await isRefused(t, raw, 'STOR f.txt');
  ({ final } = await rawUpload(raw, 'STOR f.txt', Buffer.from('XY')));
  t.is(final.code, 226, final.raw);
  t.is(await readFile(join(home, 'f.txt'), 'latin1'), 'XY');

  // REST, then a RETR of a missing file: the next RETR starts at 0.
  await writeFile(join(home, 'f.txt'), 'abcdefgh');
  t.is((await raw.command('REST 5', REPLY_MS)).code, 350);
  await isRefused(t, raw, 'RETR missing.txt');
  const { bytes, final: retrFinal } = await rawDownload(raw, 'RETR f.txt');
  t.is(retrFinal.code, 226);
  t.is(bytes.toString(), 'abcdefgh');

  // REST, then an upload reset half-way: the next STOR is plain.
  t.is((await raw.command('REST 2', REPLY_MS)).code, 350);
  const { data } = await startDataCommand(raw, 'STOR f.txt');
  await writeData(data, Buffer.from('partial'));
  // Reset only once the server has read the bytes (kept prefix 2 + 7 bytes in the temporary).
  await waitFor('the resume temporary to hold 9 bytes', async () => {
    for (const n of await readdir(home)) {
      if (n.startsWith('.dfos-upload-') && (await stat(join(home, n)).then((s) => s.size, () => 0)) >= 9) return true;
    }
    return undefined;
  });
  data.resetAndDestroy();
  const resetReply = await raw.read(REPLY_MS);
  t.true(resetReply.code >= 400, resetReply.raw);
  t.is(await readFile(join(home, 'f.txt'), 'latin1'), 'abcdefgh');
  ({ final } = await rawUpload(raw, 'STOR f.txt', Buffer.from('new')));
  t.is(final.code, 226);
  t.is(await readFile(join(home, 'f.txt'), 'latin1'), 'new');
});

test('REST + RETR returns the tail of the file', async (t) => {
  const { home, raw } = await setup(t);
  const content = randomBytes(300_000);
  await writeFile(join(home, 'f.txt'), 'abcdefgh');
  await writeFile(join(home, 'b.bin'), content);
  t.is((await raw.command('REST 3', REPLY_MS)).code, 350);
  let { bytes, final } = await rawDownload(raw, 'RETR f.txt');
  t.is(final.code, 226, final.raw);
  t.is(bytes.toString(), 'defgh');
  t.is((await raw.command('REST 123457', REPLY_MS)).code, 350);
  ({ bytes, final } = await rawDownload(raw, 'RETR b.bin'));
  t.is(final.code, 226, final.raw);
  t.deepEqual(bytes, content.subarray(123_457));
  t.is((await raw.command('REST 8', REPLY_MS)).code, 350);
  ({ bytes, final } = await rawDownload(raw, 'RETR f.txt'));
  t.is(final.code, 226, final.raw);
  t.is(bytes.length, 0, 'REST at the end gives nothing');
  // And the offset was used once only.
  ({ bytes } = await rawDownload(raw, 'RETR f.txt'));
  t.is(bytes.toString(), 'abcdefgh');
});

test('APPE appends to an existing file and creates a missing one', async (t) => {
  const { home, raw } = await setup(t);
  await writeFile(join(home, 'log.txt'), 'line1\n');
  let { final } = await rawUpload(raw, 'APPE log.txt', Buffer.from('line2\n'));
  t.is(final.code, 226, final.raw);
  t.is(await readFile(join(home, 'log.txt'), 'utf8'), 'line1\nline2\n');
  const more = randomBytes(500_000);
  ({ final } = await rawUpload(raw, 'APPE log.txt', more));
  t.is(final.code, 226, final.raw);
  t.deepEqual(await readFile(join(home, 'log.txt')), Buffer.concat([Buffer.from('line1\nline2\n'), more]));
  ({ final } = await rawUpload(raw, 'APPE fresh.txt', Buffer.from('first')));
  t.is(final.code, 226, final.raw);
  t.is(await readFile(join(home, 'fresh.txt'), 'utf8'), 'first');
  t.deepEqual(await waitNoTemps(home), []);
});

test('APPE appends in place: mid-append the old content stays the prefix; a reset append restores it exactly', async (t) => {
  const { srv, home, raw } = await setup(t);
  await writeFile(join(home, 'log.txt'), 'old content\n');
  const { data } = await startDataCommand(raw, 'APPE log.txt');
  await writeData(data, randomBytes(200_000));
  await waitFor('the append journal', async () => ((await readdir(home)).some((n) => n.startsWith('.dfos-upload-')) ? true : undefined));
  const reader = await rawLogin(srv.port, 'alice', 'alice-pw');
  t.teardown(() => reader.close());
  const { bytes } = await rawDownload(reader, 'RETR log.txt');
  t.is(bytes.subarray(0, 12).toString(), 'old content\n', 'another session reads the old content as the prefix');
  data.resetAndDestroy();
  t.true((await raw.read(REPLY_MS)).code >= 400);
  t.deepEqual(await waitNoTemps(home), []);
  t.is(await readFile(join(home, 'log.txt'), 'utf8'), 'old content\n');
});

test('defect 10: STOU stores under a unique name announced as "150 FILE: <name>"', async (t) => {
  const { home, raw } = await setup(t);
  const names: string[] = [];
  for (const line of ['STOU', 'STOU', 'STOU report.txt']) {
    const content = randomBytes(10_000);
    const { first: preliminary, final } = await rawUpload(raw, line, content);
    t.is(preliminary.code, 150, preliminary.raw);
    const m = /^150 FILE: (\S+)$/.exec(preliminary.lines[0] ?? '');
    t.truthy(m, `150 reply names the file: ${preliminary.raw}`);
    const name = m![1]!;
    t.false(name.includes('/'), 'a bare file name');
    t.is(final.code, 226, final.raw);
    t.deepEqual(await readFile(join(home, name)), content, `${name} holds the upload`);
    names.push(name);
  }
  t.is(new Set(names).size, 3, 'every STOU got its own name');
  t.deepEqual((await readdir(home)).sort(), [...names].sort());
  t.deepEqual(await waitNoTemps(home), []);
});
