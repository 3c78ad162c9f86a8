import test, { type ExecutionContext } from 'ava';
import { readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { RawFtp, type RawReply } from './helpers/rawFtp.js';
import { startTestServer, type TestServer } from './helpers/testServer.js';
import { HAS_IPV6 } from './helpers/protocolFixtures.js';
import { exists, snapshotTree } from './helpers/jailFixtures.js';
import type { ServerConfigInput } from '../src/config/serverConfig.js';
import { rawUpload } from './helpers/dataTransfer.js';

async function server(t: ExecutionContext, options: Parameters<typeof startTestServer>[0] = {}): Promise<TestServer> {
  const srv = await startTestServer(options);
  t.teardown(() => srv.stop());
  return srv;
}

async function connect(t: ExecutionContext, srv: TestServer, host = '127.0.0.1'): Promise<RawFtp> {
  const raw = await RawFtp.connect(srv.port, host);
  t.teardown(() => raw.close());
  return raw;
}

async function login(t: ExecutionContext, srv: TestServer, user = 'alice', password = 'alice-pw'): Promise<RawFtp> {
  const raw = await RawFtp.login(srv.port, user, password);
  t.teardown(() => raw.close());
  return raw;
}

/** Sends PASS and returns the reply with the time it took to arrive. */
async function timedPass(raw: RawFtp, password: string): Promise<{ reply: RawReply; ms: number }> {
  const started = process.hrtime.bigint();
  const reply = await raw.command(`PASS ${password}`);
  return { reply, ms: Number(process.hrtime.bigint() - started) / 1e6 };
}

async function exactlyOne(t: ExecutionContext, raw: RawFtp, line: string): Promise<RawReply> {
  const r = await raw.command(line);
  t.true(await raw.silentFor(300), `${line}: more than one reply: ${JSON.stringify(r.raw + raw.pending)}`);
  return r;
}

// Serial: runs before this file's other tests start their servers, so their scrypt work
// does not queue in front of these logins (the timing is what is measured).
test.serial('unknown user and wrong password get the identical 530 after about the configured delay', async (t) => {
  const srv = await server(t, { config: { authFailDelay: 0.3 } });
  const unknown: number[] = [];
  const wrong: number[] = [];
  const texts = new Set<string>();
  // A few alternating rounds; each kind is judged by its fastest round, so a load spike
  // on a busy test machine does not decide the comparison.
  for (let round = 0; round < 3; round++) {
    const a = await connect(t, srv);
    t.is((await a.command('USER nobody-here')).code, 331, 'USER must not reveal whether the user exists');
    const u = await timedPass(a, 'whatever');
    const b = await connect(t, srv);
    t.is((await b.command('USER alice')).code, 331);
    const w = await timedPass(b, 'not-alice-pw');
    t.is(u.reply.code, 530);
    t.is(w.reply.code, 530);
    texts.add(u.reply.raw).add(w.reply.raw);
    unknown.push(u.ms);
    wrong.push(w.ms);
    a.close();
    b.close();
  }
  t.is(texts.size, 1, `the failures must be indistinguishable: ${JSON.stringify([...texts])}`);
  for (const ms of [...unknown, ...wrong]) t.true(ms >= 250, `a failed login answered after ${ms} ms`);
  const [u, w] = [Math.min(...unknown), Math.min(...wrong)];
  t.true(Math.abs(u - w) < 200, `durations differ: unknown user ${u} ms, wrong password ${w} ms`);
  // An empty password is just another wrong password.
  const c = await connect(t, srv);
  t.is((await c.command('USER alice')).code, 331);
  t.true(texts.has((await c.command('PASS')).raw), 'an empty password gets another 530 text');
});

test('after a failed PASS the client can retry USER/PASS on the same connection', async (t) => {
  const srv = await server(t);
  const raw = await connect(t, srv);
  await raw.command('USER alice');
  t.is((await raw.command('PASS wrong')).code, 530);
  t.is((await raw.command('PWD')).code, 530, 'a failed login must not authenticate');
  await raw.command('USER bob');
  t.is((await raw.command('PASS alice-pw')).code, 530, "alice's password is not bob's");
  t.is((await raw.command('USER alice')).code, 331);
  t.is((await raw.command('PASS alice-pw')).code, 230);
  const pwd = await raw.command('PWD');
  t.is(pwd.code, 257);
  t.regex(pwd.lines[0]!, /^257 "\/"/);
});

test('a localOnly user can log in from 127.0.0.1 and gets the same 530 text for a wrong password', async (t) => {
  const srv = await server(t, {
    users: [
      { name: 'demo', password: 'demo', localOnly: true },
      { name: 'alice', password: 'alice-pw' },
    ],
  });
  const raw = await login(t, srv, 'demo', 'demo');
  t.is((await raw.command('NOOP')).code, 200);
  const bad = await connect(t, srv);
  await bad.command('USER demo');
  const r1 = await bad.command('PASS nope');
  await bad.command('USER nobody');
  const r2 = await bad.command('PASS nope');
  t.is(r1.code, 530);
  t.is(r1.raw, r2.raw);
});

(HAS_IPV6 ? test : test.skip)('a localOnly user can log in from ::1 (server on ::1)', async (t) => {
  const config: ServerConfigInput = { host: '::1' };
  const srv = await server(t, { users: [{ name: 'demo', password: 'demo', localOnly: true }], config });
  const raw = await RawFtp.connect(srv.port, '::1');
  t.teardown(() => raw.close());
  t.is(raw.socket.remoteAddress, '::1');
  t.is((await raw.command('USER demo')).code, 331);
  t.is((await raw.command('PASS demo')).code, 230);
  t.is((await raw.command('PWD')).code, 257);
  t.is((await raw.command('MKD v6')).lines[0], '257 "/v6" created');
});

test('commands before login get 530 and change nothing', async (t) => {
  const srv = await server(t);
  const raw = await connect(t, srv);
  for (const line of ['SITE VIEW x', 'LIST', 'NLST', 'STOR x', 'RETR x', 'DELE x', 'MKD x', 'XMKD x', 'RMD x', 'CWD x', 'SIZE x', 'RNFR x', 'SITE CHMOD 777 x', 'EPSV', 'PASV']) {
    const r = await exactlyOne(t, raw, line);
    t.is(r.code, 530, `${line} before login: ${r.raw}`);
  }
  t.deepEqual(await readdir(srv.storage), [], 'something was created before login');
});

test('HELP lists the verbs and HELP SITE lists VIEW', async (t) => {
  const srv = await server(t);
  const raw = await connect(t, srv);
  const help = await raw.command('HELP');
  t.is(help.code, 214);
  const words = new Set(help.lines.slice(1, -1).join(' ').split(/\s+/));
  for (const verb of ['USER', 'PASS', 'LIST', 'NLST', 'RETR', 'STOR', 'APPE', 'STOU', 'DELE', 'MKD', 'RMD', 'RNFR', 'RNTO', 'SIZE', 'MDTM', 'SITE', 'EPSV', 'PASV', 'QUIT', 'HELP']) {
    t.true(words.has(verb), `HELP does not list ${verb}`);
  }
  for (const line of help.lines.slice(1, -1)) t.false(/^\d{3}[ -]/.test(line), `content line looks like a reply: ${line}`);
  const site = await raw.command('HELP SITE');
  t.is(site.code, 214);
  t.true(site.lines.some((l) => /\bVIEW\b/.test(l)), `HELP SITE: ${site.raw}`);
  t.true(site.lines.some((l) => /\bCHMOD\b/.test(l)));
  const one = await raw.command('help retr');
  t.is(one.code, 214);
  t.regex(one.raw, /RETR/);
});

test('defect 7: a command split across TCP segments gets exactly one reply', async (t) => {
  const srv = await server(t);
  const raw = await login(t, srv);
  raw.write('NO');
  await new Promise((r) => setTimeout(r, 100));
  raw.write('OP\r\n');
  const r = await raw.read();
  t.is(r.code, 200);
  t.true(await raw.silentFor(300), `extra replies: ${JSON.stringify(raw.pending)}`);
  // Also split inside the CRLF, and a command cut into single bytes.
  raw.write('PWD\r');
  await new Promise((r) => setTimeout(r, 50));
  raw.write('\n');
  t.is((await raw.read()).code, 257);
  for (const ch of 'MKD split\r\n') {
    raw.write(ch);
    await new Promise((r) => setTimeout(r, 5));
  }
  t.is((await raw.read()).lines[0], '257 "/split" created');
  t.true(await raw.silentFor(300), `extra replies: ${JSON.stringify(raw.pending)}`);
});

test('defect 7: a UTF-8 name split inside a multi-byte character across two writes works', async (t) => {
  const srv = await server(t);
  const raw = await login(t, srv);
  const name = 'dir-ü日本-😀';
  const bytes = Buffer.from(`MKD ${name}\r\n`, 'utf8');
  const cut = bytes.indexOf(Buffer.from('日', 'utf8')) + 1; // inside the 3-byte character
  raw.write(bytes.subarray(0, cut));
  await new Promise((r) => setTimeout(r, 100));
  raw.write(bytes.subarray(cut));
  const r = await raw.read();
  t.is(r.lines[0], `257 "/${name}" created`);
  t.deepEqual(await readdir(join(srv.storage, 'alice')), [name]);
  // The same for a 4-byte character, then use the name.
  const file = Buffer.from(`MKD ${name}/😀x\r\n`, 'utf8');
  const cut2 = file.lastIndexOf(Buffer.from('😀', 'utf8')) + 2;
  raw.write(file.subarray(0, cut2));
  await new Promise((r) => setTimeout(r, 100));
  raw.write(file.subarray(cut2));
  t.is((await raw.read()).code, 257);
  t.deepEqual(await readdir(join(srv.storage, 'alice', name)), ['😀x']);
  t.true(await raw.silentFor(200));
});

test('defect 7: a 70 KB line gets one 500 reply that does not echo it, and the session still works', async (t) => {
  const srv = await server(t);
  const raw = await login(t, srv);
  const long = 'MKD ' + 'A'.repeat(70 * 1024);
  const r = await exactlyOne(t, raw, long);
  t.is(r.code, 500);
  t.true(r.raw.length < 300, `the reply is ${r.raw.length} bytes long`);
  t.false(r.raw.includes('AAAAAAAAAA'), 'the reply echoes the line');
  t.deepEqual(await readdir(join(srv.storage, 'alice')), []);
  t.is((await raw.command('NOOP')).code, 200);
  t.is((await raw.command('MKD after')).lines[0], '257 "/after" created');
  // Before login, too (the line must not be buffered or echoed either).
  const anon = await connect(t, srv);
  const r2 = await exactlyOne(t, anon, 'USER ' + 'B'.repeat(70 * 1024));
  t.is(r2.code, 500);
  t.false(r2.raw.includes('BBBBBBBBBB'));
  t.is((await anon.command('USER alice')).code, 331);
  t.is((await anon.command('PASS alice-pw')).code, 230);
});

test('defect 8: bare SITE, SITE CHMOD and SITE FOO each get exactly one reply', async (t) => {
  const srv = await server(t);
  const raw = await login(t, srv);
  for (const line of ['SITE', 'SITE CHMOD', 'SITE FOO', 'SITE CHMOD 777', 'SITE VIEW', 'site', 'SITE  ']) {
    const r = await exactlyOne(t, raw, line);
    t.true(r.code >= 500 && r.code < 600, `${line}: ${r.raw}`);
  }
  t.is((await raw.command('NOOP')).code, 200);
});

test('defect 8: bare OPTS and PORT each get exactly one reply', async (t) => {
  const srv = await server(t);
  const raw = await login(t, srv);
  for (const line of ['OPTS', 'PORT']) {
    const r = await exactlyOne(t, raw, line);
    t.true(r.code >= 400 && r.code < 600, `${line}: ${r.raw}`);
  }
  t.is((await raw.command('NOOP')).code, 200);
});

test('an empty line, a bare CR LF and a whitespace-only line each get exactly one 500, before and after login', async (t) => {
  const srv = await server(t);
  const raw = await RawFtp.connect(srv.port);
  t.teardown(() => raw.close());
  for (const line of ['', '   ', '\t']) {
    const r = await exactlyOne(t, raw, line);
    t.is(r.code, 500, `before login ${JSON.stringify(line)}: ${r.raw}`);
  }
  const logged = await login(t, srv);
  for (const line of ['', '  ']) {
    const r = await exactlyOne(t, logged, line);
    t.is(r.code, 500, `logged in ${JSON.stringify(line)}: ${r.raw}`);
  }
  // A bare LF counts as a line end too.
  logged.write('\n');
  t.is((await logged.read()).code, 500);
  t.is((await logged.command('NOOP')).code, 200);
});

test('defect 9: DELE -a and MKD "q" work on names starting with - and containing quotes', async (t) => {
  const srv = await server(t);
  const raw = await login(t, srv);
  const home = join(srv.storage, 'alice');
  await writeFile(join(home, '-a'), 'dash\n');
  t.is((await raw.command('SIZE -a')).lines[0], '213 5');
  t.is((await raw.command('DELE -a')).code, 250);
  t.false(await exists(join(home, '-a')), 'DELE -a did not delete the file named -a');
  const mkd = await raw.command('MKD "q"');
  t.is(mkd.code, 257);
  t.is(mkd.lines[0], '257 "/""q""" created', 'RFC 959: quotes in a 257 path are doubled');
  t.true((await stat(join(home, '"q"'))).isDirectory());
  t.false(await exists(join(home, 'q')));
  t.is((await raw.command('MKD -x')).code, 257);
  t.true((await stat(join(home, '-x'))).isDirectory());
  t.is((await raw.command('RMD -x')).code, 250);
  t.is((await rawUpload(raw, 'STOR say "hi".txt', 'hi\n')).code, 226);
  t.is(await readFile(join(home, 'say "hi".txt'), 'utf8'), 'hi\n');
  t.deepEqual(Object.keys(await snapshotTree(home)).sort(), ['"q"', 'say "hi".txt']);
});

test('defect 5: PASS is never logged, even at trace level', async (t) => {
  const password = 'Zebra-Secret-4711-xyzzy';
  const wrongPassword = 'Wrong-Secret-9913-plugh';
  const srv = await server(t, { users: [{ name: 'alice', password }], config: { logLevel: 'trace' } });
  const bad = await connect(t, srv);
  await bad.command('USER alice');
  t.is((await bad.command(`PASS ${wrongPassword}`)).code, 530);
  await bad.command('USER alice');
  t.is((await bad.command(`pass ${wrongPassword}`)).code, 530);
  const raw = await connect(t, srv);
  await raw.command('USER alice');
  t.is((await raw.command(`PASS ${password}`)).code, 230);
  t.true((await raw.command(`PASS ${password}`)).code < 400, 'PASS when already logged in');
  await raw.command('PWD');
  await raw.command('MKD logged');
  await raw.command('SITE VIEW nothing');
  t.is((await rawUpload(raw, 'STOR f.txt', 'data\n')).code, 226);
  await raw.command('QUIT');
  const client = await srv.client('alice', password);
  await client.list();
  client.close();
  await srv.server.shutdown(1000); // flushes the logs; srv.stop() later is a no-op drain
  const files = await readdir(srv.logDir);
  t.true(files.length > 0);
  let all = '';
  for (const f of files) all += await readFile(join(srv.logDir, f), 'utf8');
  t.regex(all, /"level":"trace"/, 'trace logging was not active, so the test proves nothing');
  t.true(all.includes('alice'), 'the logs do not mention the user at all');
  for (const secret of [password, wrongPassword, 'Zebra-Secret', 'Wrong-Secret']) {
    t.false(all.includes(secret), `a log file contains ${secret}`);
  }
});
