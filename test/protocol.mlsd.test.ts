import test, { type ExecutionContext } from 'ava';
import { mkdir, stat, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Client } from 'basic-ftp';
import { REPLY_MS, type RawFtp } from './helpers/rawFtp.js';
import { loginAt, oneReply, openSocket, parseEpsv, waitRefused } from './helpers/protocolFixtures.js';
import { startTestServer, type TestServer } from './helpers/testServer.js';
import { readToEnd } from './helpers/dataTransfer.js';
import { recordSentVerbs } from './helpers/interop.js';

/**
 * Issue 4, MLSD and MLST (RFC 3659) with the type, size, modify and perm facts, and
 * OPTS MLST. Vanilla ftp-srv 4.6.3 has neither (502, defect 12). REST/APPE are covered
 * by resume.test.ts.
 */

interface Entry {
  facts: Record<string, string>;
  name: string;
  line: string;
}

/** Parses one `fact=value;fact=value; name` line (RFC 3659 §7.2). */
function parseEntry(line: string): Entry {
  const m = /^((?:[A-Za-z0-9.-]+=[^;=]*;)*) (.+)$/.exec(line);
  if (!m) throw new Error(`not an MLSx entry: ${JSON.stringify(line)}`);
  const facts: Record<string, string> = {};
  for (const pair of m[1]!.split(';').filter(Boolean)) {
    const eq = pair.indexOf('=');
    facts[pair.slice(0, eq).toLowerCase()] = pair.slice(eq + 1);
  }
  return { facts, name: m[2]!, line };
}

/** `YYYYMMDDHHMMSS[.sss]` (UTC) → Date. */
function parseModify(value: string): Date {
  const m = /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(?:\.(\d{1,3}))?$/.exec(value);
  if (!m) return new Date(NaN);
  const [, y, mo, d, h, mi, s, ms] = m;
  return new Date(Date.UTC(+y!, +mo! - 1, +d!, +h!, +mi!, +s!, ms ? Number(ms.padEnd(3, '0')) : 0));
}

const USERS = [
  { name: 'alice', password: 'alice-pw' },
  { name: 'reader', password: 'reader-pw', readOnly: true },
];

/** A fixed, recognisable modification time (to the millisecond). */
const MTIME = new Date(Date.UTC(2024, 1, 29, 13, 14, 15, 678));

async function setup(t: ExecutionContext): Promise<{ srv: TestServer }> {
  const srv = await startTestServer({ users: USERS });
  t.teardown(() => srv.stop());
  for (const user of ['alice', 'reader']) {
    const home = join(srv.storage, user);
    await mkdir(join(home, 'sub dir'), { recursive: true });
    await writeFile(join(home, 'file.txt'), 'hello mlsd\n');
    await writeFile(join(home, 'empty.txt'), '');
    await writeFile(join(home, 'sub dir', 'inner.bin'), Buffer.alloc(1234, 7));
    await utimes(join(home, 'file.txt'), MTIME, MTIME);
  }
  return { srv };
}

async function login(t: ExecutionContext, srv: TestServer, user = 'alice'): Promise<RawFtp> {
  const raw = await loginAt(srv.port, '127.0.0.1', user, `${user}-pw`);
  t.teardown(() => raw.close());
  return raw;
}

/** EPSV + `line`; returns the data (text) and the final reply, or the refusal. */
async function listing(raw: RawFtp, line: string): Promise<{ code: number; text: string; raw: string }> {
  const e = await raw.command('EPSV', REPLY_MS);
  const port = parseEpsv(e);
  const socket = await openSocket('127.0.0.1', port);
  const pre = await raw.command(line, REPLY_MS);
  if (pre.code >= 200) {
    socket.destroy();
    return { code: pre.code, text: '', raw: pre.raw };
  }
  const text = (await readToEnd(socket)).toString('utf8');
  const final = await raw.read(REPLY_MS);
  return { code: final.code, text, raw: pre.raw + final.raw };
}

function entries(text: string): Entry[] {
  assertCrlf(text);
  return text
    .split('\r\n')
    .filter(Boolean)
    .map(parseEntry)
    .filter((e) => e.facts.type !== 'cdir' && e.facts.type !== 'pdir');
}

function assertCrlf(text: string): void {
  if (text && !text.endsWith('\r\n')) throw new Error(`MLSD data must be CRLF-terminated lines: ${JSON.stringify(text.slice(-40))}`);
}

test('defect 12: MLSD lists each entry as "fact=value;…; name" with type, size, modify and perm', async (t) => {
  const { srv } = await setup(t);
  const raw = await login(t, srv);
  const r = await listing(raw, 'MLSD');
  t.is(r.code, 226, r.raw);
  const list = entries(r.text);
  t.deepEqual(list.map((e) => e.name).sort(), ['empty.txt', 'file.txt', 'sub dir'], r.text);
  const by = new Map(list.map((e) => [e.name, e]));
  const home = join(srv.storage, 'alice');
  for (const e of list) {
    for (const fact of ['type', 'modify', 'perm']) t.truthy(e.facts[fact], `${e.name} has ${fact}: ${e.line}`);
    t.regex(e.facts.modify ?? '', /^\d{14}(\.\d{1,3})?$/, `modify is YYYYMMDDHHMMSS[.sss]: ${e.line}`);
    const onDisk = await stat(join(home, e.name));
    const listed = parseModify(e.facts.modify ?? '');
    t.true(Math.abs(listed.getTime() - onDisk.mtime.getTime()) < 1000, `${e.name}: modify ${e.facts.modify} is the file's UTC mtime ${onDisk.mtime.toISOString()}`);
  }
  t.is(by.get('file.txt')?.facts.type, 'file');
  t.is(by.get('file.txt')?.facts.size, '11');
  t.is(by.get('empty.txt')?.facts.type, 'file');
  t.is(by.get('empty.txt')?.facts.size, '0');
  t.is(by.get('sub dir')?.facts.type, 'dir');
  t.regex(by.get('file.txt')?.facts.modify ?? '', /^20240229131415(\.678)?$/, 'modify is exact (UTC)');
  // A read-write login may read, write, delete and rename files, and enter, list and create in directories.
  for (const p of ['r', 'w', 'd', 'f']) t.true((by.get('file.txt')?.facts.perm ?? '').includes(p), `file perm has ${p}: ${by.get('file.txt')?.line}`);
  for (const p of ['e', 'l', 'c', 'm']) t.true((by.get('sub dir')?.facts.perm ?? '').includes(p), `dir perm has ${p}: ${by.get('sub dir')?.line}`);

  // MLSD of a named directory, and of an empty one.
  const sub = await listing(raw, 'MLSD sub dir');
  t.is(sub.code, 226, sub.raw);
  const subList = entries(sub.text);
  t.deepEqual(subList.map((e) => [e.name, e.facts.type, e.facts.size]), [['inner.bin', 'file', '1234']]);
  t.is((await oneReply(raw, 'MKD void')).final.code, 257);
  const empty = await listing(raw, 'MLSD void');
  t.is(empty.code, 226, empty.raw);
  t.deepEqual(entries(empty.text), [], 'an empty directory lists nothing (cdir/pdir aside)');
});

test('MLSD perm for a read-only user: no w, a, d, f, c or m', async (t) => {
  const { srv } = await setup(t);
  const raw = await login(t, srv, 'reader');
  const r = await listing(raw, 'MLSD');
  t.is(r.code, 226, r.raw);
  const list = entries(r.text);
  t.deepEqual(list.map((e) => e.name).sort(), ['empty.txt', 'file.txt', 'sub dir']);
  for (const e of list) {
    const perm = e.facts.perm ?? '';
    t.truthy(perm, `perm present: ${e.line}`);
    for (const p of 'wadfcmp') t.false(perm.includes(p), `read-only ${e.name} perm has no ${p}: ${e.line}`);
    if (e.facts.type === 'file') t.true(perm.includes('r'), e.line);
    else t.true(perm.includes('e') && perm.includes('l'), e.line);
  }
  const mlst = (await oneReply(raw, 'MLST file.txt')).final;
  t.is(mlst.code, 250, mlst.raw);
  t.false(/[wadfcm]/.test(parseEntry(mlst.lines[1]!.slice(1)).facts.perm ?? ''), mlst.raw);
});

test('MLST <file> answers 250 multi-line with exactly one fact line starting with a space; MLST of a missing path is 550', async (t) => {
  const { srv } = await setup(t);
  const raw = await login(t, srv);
  const r = (await oneReply(raw, 'MLST file.txt')).final;
  t.is(r.code, 250, r.raw);
  t.is(r.lines.length, 3, `250-…, one fact line, 250 …: ${r.raw}`);
  t.regex(r.lines[0]!, /^250-/);
  t.regex(r.lines[2]!, /^250 /);
  const factLine = r.lines[1]!;
  t.regex(factLine, /^ [^ ]/, 'the fact line starts with exactly one space');
  const e = parseEntry(factLine.slice(1));
  t.regex(e.name, /(^|\/)file\.txt$/, `the entry names the file: ${e.name}`);
  t.is(e.facts.type, 'file');
  t.is(e.facts.size, '11');
  t.regex(e.facts.modify ?? '', /^20240229131415(\.678)?$/);
  t.truthy(e.facts.perm);

  const dir = (await oneReply(raw, 'MLST sub dir')).final;
  t.is(dir.code, 250, dir.raw);
  t.is(parseEntry(dir.lines[1]!.slice(1)).facts.type, 'dir');
  const cwd = (await oneReply(raw, 'MLST')).final;
  t.is(cwd.code, 250, `MLST without argument describes the current directory: ${cwd.raw}`);
  t.is(parseEntry(cwd.lines[1]!.slice(1)).facts.type?.replace('cdir', 'dir'), 'dir');

  const missing = (await oneReply(raw, 'MLST nope.txt')).final;
  t.is(missing.code, 550, missing.raw);
});

test('OPTS MLST type;size; restricts the facts of MLSD/MLST, and FEAT marks the selection with *', async (t) => {
  const { srv } = await setup(t);
  const raw = await login(t, srv);
  const opts = (await oneReply(raw, 'OPTS MLST type;size;')).final;
  t.is(opts.code, 200, opts.raw);
  t.regex(opts.raw, /type;size;/i, 'the reply names the selected facts');
  const r = await listing(raw, 'MLSD');
  t.is(r.code, 226, r.raw);
  for (const e of entries(r.text)) {
    const names = Object.keys(e.facts).sort();
    t.true(names.every((f) => f === 'type' || f === 'size'), `only type and size: ${e.line}`);
    t.truthy(e.facts.type, e.line);
  }
  const mlst = (await oneReply(raw, 'MLST file.txt')).final;
  t.deepEqual(Object.keys(parseEntry(mlst.lines[1]!.slice(1)).facts).sort(), ['size', 'type'], mlst.raw);

  const feat = (await oneReply(raw, 'FEAT')).final;
  const mlstLine = feat.lines.find((l) => /^ MLST /i.test(l)) ?? '';
  const facts = mlstLine.trim().slice(5).split(';').filter(Boolean).map((f) => f.toLowerCase());
  t.true(facts.includes('type*') && facts.includes('size*'), `FEAT after OPTS MLST: ${mlstLine}`);
  t.true(facts.includes('modify') && facts.includes('perm'), `modify and perm still offered, not selected: ${mlstLine}`);

  // An unknown fact is refused (501, as pyftpdlib does; issue 9) and changes nothing.
  const unknown = (await oneReply(raw, 'OPTS MLST modify;unknown.fact;')).final;
  t.is(unknown.code, 501, unknown.raw);
  t.is((await oneReply(raw, 'OPTS MLST modify;')).final.code, 200);
  const m2 = (await oneReply(raw, 'MLST file.txt')).final;
  t.deepEqual(Object.keys(parseEntry(m2.lines[1]!.slice(1)).facts), ['modify'], m2.raw);
  t.is((await oneReply(raw, 'OPTS MLST type;size;modify;perm;')).final.code, 200);
});

test('MLSD on a file is refused (501 or 550) without opening a data connection; MLSD of a missing path is 550', async (t) => {
  const { srv } = await setup(t);
  const raw = await login(t, srv);
  for (const [arg, codes] of [['file.txt', [501, 550]], ['missing', [550]]] as const) {
    const e = await raw.command('EPSV', REPLY_MS);
    const port = parseEpsv(e);
    const { final, preliminary } = await oneReply(raw, `MLSD ${arg}`, { allowPreliminary: true });
    t.is(preliminary, undefined, `no 150 for MLSD ${arg}: ${preliminary?.raw}`);
    t.true((codes as readonly number[]).includes(final.code), `MLSD ${arg}: ${final.raw}`);
    t.is(await waitRefused('127.0.0.1', port, 3000), 'refused', 'the passive listener is closed after the refusal');
  }
});

test('basic-ftp\'s list() uses MLSD when offered and gets exact modification times', async (t) => {
  const { srv } = await setup(t);
  const client = new Client(10_000);
  t.teardown(() => client.close());
  const sent = recordSentVerbs(client);
  await client.access({ host: '127.0.0.1', port: srv.port, user: 'alice', password: 'alice-pw' });
  const list = await client.list();
  t.true(sent.includes('MLSD'), `basic-ftp sent MLSD: ${sent.join(' ')}`);
  t.false(sent.includes('LIST'), `and not LIST: ${sent.join(' ')}`);
  const file = list.find((e) => e.name === 'file.txt');
  t.truthy(file, list.map((e) => e.name).join(', '));
  t.is(file?.size, 11);
  t.true(file?.isFile);
  t.truthy(file?.modifiedAt, 'modifiedAt comes from the modify fact');
  t.is(Math.floor((file?.modifiedAt?.getTime() ?? 0) / 1000), Math.floor(MTIME.getTime() / 1000), `exact to the second: ${file?.modifiedAt?.toISOString()}`);
  t.true(list.find((e) => e.name === 'sub dir')?.isDirectory);
});
