import test from 'ava';
import { Readable, Writable } from 'node:stream';
import { startTestServer } from './helpers/testServer.js';
import { RawFtp } from './helpers/rawFtp.js';

test('upload, list, view, download and delete with basic-ftp', async (t) => {
  const srv = await startTestServer();
  t.teardown(() => srv.stop());
  const client = await srv.client();
  await client.uploadFrom(Readable.from([Buffer.from('hello\n')]), 'a.txt');
  t.deepEqual((await client.list()).map((e) => e.name), ['a.txt']);
  const chunks: Buffer[] = [];
  await client.downloadTo(new Writable({ write: (c, _e, cb) => (chunks.push(c), cb()) }), 'a.txt');
  t.is(Buffer.concat(chunks).toString(), 'hello\n');
  const raw = await RawFtp.login(srv.port, 'alice', 'alice-pw');
  const view = await raw.command('SITE VIEW a.txt');
  t.deepEqual(view.lines, ['200-VIEW text bytes=6 size=6 eol=lf', ' hello', '200 VIEW end']);
  raw.close();
  await client.remove('a.txt');
  t.deepEqual(await client.list(), []);
});
