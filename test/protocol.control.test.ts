import test, { type ExecutionContext } from 'ava';
import type { ServerConfigInput } from '../src/config/serverConfig.js';
import { mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { openEpsvData, RawFtp, REPLY_MS } from './helpers/rawFtp.js';
import { rawLogin } from './helpers/interop.js';
import { helpVerbs, oneReply, readOneReply } from './helpers/protocolFixtures.js';
import { startTestServer, type TestServer } from './helpers/testServer.js';
import { readToEnd, writeAndEnd } from './helpers/dataTransfer.js';

/**
 * Issue 4, control channel: OPTS UTF8 before login, STAT codes, STOU without argument,
 * HELP and FEAT telling the truth, Telnet IAC bytes before ABOR, and names starting with
 * `-` (while `LIST -la` keeps working). Defect numbers refer to
 * ../shared/reference/ftp-srv-4.6.3.md.
 */

async function setup(t: ExecutionContext, config: ServerConfigInput = {}): Promise<{ srv: TestServer; home: string }> {
  const srv = await startTestServer({ config });
  t.teardown(() => srv.stop());
  const home = join(srv.storage, 'alice');
  await mkdir(home, { recursive: true });
  return { srv, home };
}

async function login(t: ExecutionContext, srv: TestServer): Promise<RawFtp> {
  const raw = await rawLogin(srv.port, 'alice', 'alice-pw');
  t.teardown(() => raw.close());
  return raw;
}

/** EPSV, connect, send `line`; returns the preliminary reply, the data bytes and the final reply. */
async function dataCommand(raw: RawFtp, line: string, upload?: Buffer): Promise<{ preliminary: string; data: Buffer; final: string; finalCode: number }> {
  const epsv = await raw.command('EPSV', REPLY_MS);
  if (epsv.code !== 229) throw new Error(`EPSV: ${epsv.raw}`);
  const socket = await openEpsvData(epsv);
  socket.on('error', () => undefined);
  const pre = await raw.command(line, REPLY_MS);
  if (pre.code >= 200) {
    socket.destroy();
    return { preliminary: '', data: Buffer.alloc(0), final: pre.raw, finalCode: pre.code };
  }
  let data: Buffer = Buffer.alloc(0);
  if (upload) await writeAndEnd(socket, upload);
  else data = await readToEnd(socket);
  const final = await raw.read(REPLY_MS);
  return { preliminary: pre.raw, data, final: final.raw, finalCode: final.code };
}

test('defect 12: OPTS UTF8 ON works before login (200) and after login', async (t) => {
  const { srv } = await setup(t);
  const raw = await RawFtp.connect(srv.port);
  t.teardown(() => raw.close());
  const before = await oneReply(raw, 'OPTS UTF8 ON');
  t.is(before.final.code, 200, `OPTS UTF8 ON before login: ${before.final.raw}`);
  t.is((await raw.command('USER alice', REPLY_MS)).code, 331);
  t.is((await raw.command('PASS alice-pw', REPLY_MS)).code, 230);
  const after = await oneReply(raw, 'opts utf8 on');
  t.is(after.final.code, 200, `OPTS UTF8 ON after login: ${after.final.raw}`);
});

test('STAT without an argument is a 211 multi-line server status', async (t) => {
  const { srv } = await setup(t);
  const raw = await login(t, srv);
  const { final } = await oneReply(raw, 'STAT');
  t.is(final.code, 211, final.raw);
  t.true(final.lines.length >= 3, `a multi-line reply (211- … 211 …): ${final.raw}`);
  t.regex(final.lines[0]!, /^211-/);
  t.regex(final.lines.at(-1)!, /^211 /);
  for (const line of final.lines.slice(1, -1)) t.false(/^\d{3} /.test(line), `content line looks like the end of the reply: ${line}`);
});

test('defect 10: STAT <dir> answers 212 and STAT <file> answers 213, each listing the entry', async (t) => {
  const { srv, home } = await setup(t);
  await mkdir(join(home, 'docs'));
  await writeFile(join(home, 'docs', 'inside.txt'), 'in\n');
  await writeFile(join(home, 'report.txt'), '12345');
  const raw = await login(t, srv);
  const dir = (await oneReply(raw, 'STAT docs')).final;
  t.is(dir.code, 212, `STAT of a directory: ${dir.raw}`);
  t.regex(dir.raw, /inside\.txt/, 'the directory status lists its entries');
  const file = (await oneReply(raw, 'STAT report.txt')).final;
  t.is(file.code, 213, `STAT of a file: ${file.raw}`);
  t.regex(file.raw, /\b5\b.*report\.txt/, 'the file status shows its size and name');
  const missing = (await oneReply(raw, 'STAT nope.txt')).final;
  t.true(missing.code === 450 || missing.code === 550, `STAT of a missing path: ${missing.raw}`);
});

test('defect 10: STOU without an argument stores under a unique name announced as "150 FILE: <name>"', async (t) => {
  const { srv, home } = await setup(t);
  const raw = await login(t, srv);
  const names: string[] = [];
  for (const content of ['first\n', 'second\n']) {
    const r = await dataCommand(raw, 'STOU', Buffer.from(content));
    const m = /^150 FILE: (.+)\r\n$/.exec(r.preliminary);
    t.truthy(m, `STOU preliminary reply: ${JSON.stringify(r.preliminary || r.final)}`);
    t.is(r.finalCode, 226, r.final);
    if (!m) continue;
    const name = m[1]!;
    t.false(name.includes('/'), `a bare file name: ${name}`);
    names.push(name);
    t.is(await readFile(join(home, name), 'utf8'), content, `the file ${name} holds what was sent`);
  }
  if (names.length === 2) t.not(names[0], names[1], 'two STOUs get two different names');
  t.is((await readdir(home)).length, names.length, 'nothing else on disk');
});

test('HELP lists the real verbs: each listed verb is implemented (never answered 500/502)', async (t) => {
  t.timeout(50_000);
  const { srv, home } = await setup(t);
  await writeFile(join(home, 'f.txt'), 'x\n');
  const raw = await RawFtp.connect(srv.port);
  t.teardown(() => raw.close());
  const help = (await oneReply(raw, 'HELP')).final;
  t.is(help.code, 214, help.raw);
  const listed = helpVerbs(help);
  t.true(listed.length >= 30, help.raw);
  const problems: string[] = [];
  const session = await rawLogin(srv.port, 'alice', 'alice-pw');
  t.teardown(() => session.close());
  for (const verb of listed) {
    if (verb === 'QUIT') continue;
    // Session-changing and data-connection verbs get a connection of their own.
    const own = ['REIN', 'USER', 'PASS', 'ACCT', 'PASV', 'EPSV', 'PORT', 'EPRT', 'AUTH', 'PBSZ', 'PROT'].includes(verb);
    const conn = own ? await rawLogin(srv.port, 'alice', 'alice-pw') : session;
    try {
      const { final } = await oneReply(conn, verb, { allowPreliminary: true });
      if (final.code === 500 || final.code === 502) problems.push(`${verb}: ${final.raw.trim()}`);
    } catch (err) {
      problems.push((err as Error).message);
    } finally {
      if (own) conn.close();
    }
  }
  t.deepEqual(problems, [], 'HELP lists verbs the server does not implement');
});

test('defect 12: FEAT lists exactly EPRT, EPSV, MDTM, MFMT, MLST type*;size*;modify*;perm*, PASV, REST STREAM, SIZE, TVFS, UTF8 (no TLS features while TLS is off)', async (t) => {
  const { srv } = await setup(t, { tls: 'off' });
  for (const loggedIn of [false, true]) {
    const raw = loggedIn ? await login(t, srv) : await RawFtp.connect(srv.port);
    if (!loggedIn) t.teardown(() => raw.close());
    const { final } = await oneReply(raw, 'FEAT');
    t.is(final.code, 211, final.raw);
    t.regex(final.lines[0]!, /^211-/, 'RFC 2389: a multi-line reply');
    t.regex(final.lines.at(-1)!, /^211 /);
    const features = final.lines.slice(1, -1);
    for (const line of features) t.regex(line, /^ \S/, `RFC 2389: each feature line starts with one space: ${JSON.stringify(line)}`);
    const byName = new Map(features.map((l) => {
      const text = l.trim();
      const space = text.indexOf(' ');
      return [(space === -1 ? text : text.slice(0, space)).toUpperCase(), space === -1 ? '' : text.slice(space + 1)] as const;
    }));
    t.deepEqual([...byName.keys()].sort(), ['EPRT', 'EPSV', 'MDTM', 'MFMT', 'MLST', 'PASV', 'REST', 'SIZE', 'TVFS', 'UTF8'], `FEAT ${loggedIn ? 'after' : 'before'} login: ${final.raw}`);
    t.is(byName.get('REST')?.toUpperCase(), 'STREAM');
    const facts = (byName.get('MLST') ?? '').split(';').filter(Boolean).map((f) => f.toLowerCase());
    for (const fact of ['type*', 'size*', 'modify*', 'perm*']) t.true(facts.includes(fact), `MLST offers ${fact}: ${byName.get('MLST')}`);
    for (const tls of ['AUTH', 'PBSZ', 'PROT']) t.false(byName.has(tls), `${tls} listed while TLS is off`);
  }
});

test('defect 11: Telnet IAC IP + IAC DM before ABOR are consumed: one reply to ABOR, no 500/502 for garbage', async (t) => {
  const { srv } = await setup(t);
  const raw = await login(t, srv);
  // As lftp and ftplib send it: IAC IP, IAC DM (the DM as urgent data), then ABOR.
  raw.write(Buffer.concat([Buffer.from([0xff, 0xf4, 0xff, 0xf2]), Buffer.from('ABOR\r\n')]));
  const { final } = await readOneReply(raw, 'IAC IP IAC DM ABOR');
  t.true(final.code === 225 || final.code === 226, `ABOR after Telnet bytes: ${final.raw}`);
  // Telnet bytes in the middle of a command line, split across writes, and IAC IAC.
  raw.write(Buffer.from([0xff, 0xf4]));
  await new Promise((r) => setTimeout(r, 50));
  raw.write(Buffer.concat([Buffer.from([0xff, 0xf2]), Buffer.from('NOOP\r\n')]));
  t.is((await readOneReply(raw, 'IAC IP | IAC DM NOOP')).final.code, 200);
  raw.write(Buffer.concat([Buffer.from('NO'), Buffer.from([0xff, 0xf1]), Buffer.from('OP\r\n')]));
  t.is((await readOneReply(raw, 'NO IAC NOP OP')).final.code, 200, 'IAC NOP inside a line is removed');
  t.is((await oneReply(raw, 'PWD')).final.code, 257, 'the session still works');
});

test('defect 9: CWD -x and RNFR -name work on names starting with "-", while LIST -la and LIST -a dir still list', async (t) => {
  const { srv, home } = await setup(t);
  await mkdir(join(home, '-x'));
  await writeFile(join(home, '-x', 'in-x.txt'), 'x\n');
  await writeFile(join(home, '-name'), 'dash\n');
  await mkdir(join(home, 'dir'));
  await writeFile(join(home, 'dir', 'in-dir.txt'), 'd\n');
  const raw = await login(t, srv);

  const cwd = (await oneReply(raw, 'CWD -x')).final;
  t.is(cwd.code, 250, `CWD -x: ${cwd.raw}`);
  t.regex((await oneReply(raw, 'PWD')).final.raw, /^257 "\/-x"/);
  const listInside = await dataCommand(raw, 'NLST');
  t.deepEqual(listInside.data.toString().split('\r\n').filter(Boolean), ['in-x.txt'], 'NLST inside -x');
  t.is((await oneReply(raw, 'CDUP')).final.code, 250);

  const rnfr = (await oneReply(raw, 'RNFR -name')).final;
  t.is(rnfr.code, 350, `RNFR -name: ${rnfr.raw}`);
  const rnto = (await oneReply(raw, 'RNTO -renamed')).final;
  t.is(rnto.code, 250, `RNTO -renamed: ${rnto.raw}`);
  t.is(await readFile(join(home, '-renamed'), 'utf8'), 'dash\n');
  await t.throwsAsync(stat(join(home, '-name')));

  // ls-style flags are still flags for LIST: -la lists the current directory…
  const la = await dataCommand(raw, 'LIST -la');
  t.is(la.finalCode, 226, `LIST -la: ${la.preliminary}${la.final}`);
  const laText = la.data.toString();
  for (const name of ['-x', '-renamed', 'dir']) t.regex(laText, new RegExp(` ${name}\\r\\n`), `LIST -la shows ${name}:\n${laText}`);
  // …and -a dir lists dir.
  const aDir = await dataCommand(raw, 'LIST -a dir');
  t.is(aDir.finalCode, 226, `LIST -a dir: ${aDir.preliminary}${aDir.final}`);
  t.regex(aDir.data.toString(), / in-dir\.txt\r\n/, `LIST -a dir lists dir: ${aDir.data.toString()}`);
  // LIST of a directory whose name starts with "-" can still be reached with a path.
  const dashDir = await dataCommand(raw, 'LIST ./-x');
  t.regex(dashDir.data.toString(), / in-x\.txt\r\n/, `LIST ./-x: ${dashDir.final}`);
});
