import test, { type ExecutionContext } from 'ava';
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { RawFtp, REPLY_MS } from './helpers/rawFtp.js';
import { rawLogin } from './helpers/interop.js';
import { codeClass, helpVerbs, oneReply, RFC_VERBS } from './helpers/protocolFixtures.js';
import { startTestServer, type TestServer } from './helpers/testServer.js';

/**
 * Issue 4, "every command gets exactly one reply, always": walks every verb the server
 * lists in HELP plus every RFC 959/2389/2428/3659 verb, in the three situations of
 * pyftpdlib's test_no_arg_cmds / test_arg_cmds / test_auth_cmds: no argument, a bad
 * argument, and before login. Each gets exactly one reply with a sensible code, the server
 * never closes the connection, and it keeps serving. Vanilla ftp-srv 4.6.3 answered
 * nothing at all for bare OPTS, PORT, SITE (defect 8) and 502 for MLSD/MLST (defect 12).
 */

/** Unhandled promise rejections in this process (the server runs in-process). */
const unhandled: unknown[] = [];
process.on('unhandledRejection', (reason) => unhandled.push(reason));

/** Which reply classes are sensible. `data`: a 1xx preliminary may come before the final reply. */
interface Expect {
  classes: number[];
  /** Exact codes allowed instead of classes (checked first). */
  codes?: number[];
  data?: boolean;
}

const ok2: Expect = { classes: [2] };
const err5: Expect = { classes: [5] };
/** Some servers ignore a superfluous argument (2xx), others refuse it (501). */
const either: Expect = { classes: [2, 5] };
/** A data command with no PASV/EPSV/PORT first: one 425, no 150. */
const noDataConn: Expect = { classes: [4, 5] };

/**
 * Verbs that close or reset the session, or set up a data connection (which later data
 * verbs of the walk would wait for): tested on a connection of their own.
 */
const ISOLATED = new Set(['QUIT', 'REIN', 'USER', 'PASS', 'ACCT', 'PASV', 'EPSV', 'PORT', 'EPRT']);

/** Logged in, no argument. */
const NO_ARG: Record<string, Expect> = {
  ABOR: { classes: [2] },
  ACCT: either,
  ALLO: either,
  APPE: err5,
  CDUP: ok2,
  CWD: either,
  DELE: err5,
  EPRT: err5,
  EPSV: { classes: [2], codes: [229] },
  FEAT: { classes: [2], codes: [211] },
  HELP: { classes: [2], codes: [214] },
  LIST: noDataConn,
  MDTM: err5,
  MKD: err5,
  MLSD: noDataConn,
  MLST: { classes: [2], codes: [250] },
  MODE: err5,
  NLST: noDataConn,
  NOOP: { classes: [2], codes: [200] },
  OPTS: err5,
  PASS: either,
  PASV: { classes: [2], codes: [227] },
  PORT: err5,
  PWD: { classes: [2], codes: [257] },
  REIN: either,
  REST: err5,
  RETR: err5,
  RMD: err5,
  RNFR: err5,
  RNTO: err5,
  SITE: err5,
  SIZE: err5,
  SMNT: err5,
  STAT: { classes: [2], codes: [211] },
  STOR: err5,
  STOU: noDataConn,
  STRU: err5,
  SYST: { classes: [2], codes: [215] },
  TYPE: err5,
  USER: either,
  XCUP: ok2,
  XCWD: either,
  XMKD: err5,
  XPWD: { classes: [2], codes: [257] },
  XRMD: err5,
};

/** Logged in, a bad argument (a missing path, a malformed value, or one where none is taken). */
const BAD_ARG: Record<string, [string, Expect]> = {
  ABOR: ['now', either],
  ACCT: ['nobody', either],
  ALLO: ['lots', either],
  APPE: ['no-such-dir/f', { classes: [4, 5], data: true }],
  CDUP: ['up', either],
  CWD: ['no-such-dir', err5],
  DELE: ['no-such-file', err5],
  EPRT: ['|9|not-an-address|x|', err5],
  EPSV: ['7', err5],
  FEAT: ['all', either],
  HELP: ['NOSUCHVERB', either],
  LIST: ['no-such-dir', { classes: [4, 5], data: true }],
  MDTM: ['no-such-file', err5],
  MKD: ['existing', err5],
  MLSD: ['no-such-dir', { classes: [4, 5], data: true }],
  MLST: ['no-such-file', err5],
  MODE: ['Z', err5],
  NLST: ['no-such-dir', { classes: [4, 5], data: true }],
  NOOP: ['please', either],
  OPTS: ['NOSUCHOPTION ON', err5],
  PASS: ['again', either],
  PASV: ['please', either],
  PORT: ['1,2,3', err5],
  PWD: ['here', either],
  REIN: ['now', either],
  REST: ['minus-one', err5],
  RETR: ['no-such-file', err5],
  RMD: ['no-such-dir', err5],
  RNFR: ['no-such-file', err5],
  RNTO: ['target-without-rnfr', err5],
  SITE: ['NOSUCHSITE x', err5],
  SIZE: ['no-such-file', err5],
  SMNT: ['/mnt', err5],
  STAT: ['no-such-file', { classes: [4, 5] }],
  STOR: ['no-such-dir/f', { classes: [4, 5], data: true }],
  STOU: ['no-such-dir/f', { classes: [4, 5], data: true }],
  STRU: ['Z', err5],
  SYST: ['please', either],
  TYPE: ['Z', err5],
  USER: ['bob', either],
  XCUP: ['up', either],
  XCWD: ['no-such-dir', err5],
  XMKD: ['existing', err5],
  XPWD: ['here', either],
  XRMD: ['no-such-dir', err5],
};

/** Verbs that need no login (their reply before login is not 530). */
const NO_LOGIN: Record<string, Expect> = {
  FEAT: { classes: [2], codes: [211] },
  HELP: { classes: [2], codes: [214] },
  NOOP: { classes: [2], codes: [200] },
  SYST: { classes: [2], codes: [215] },
  OPTS: { classes: [2], codes: [200] }, // sent as OPTS UTF8 ON
  AUTH: err5, // TLS is off
  PBSZ: { classes: [5] },
  PROT: { classes: [5] },
  // May be answered before login, or refused with 530 (both are sensible).
  STAT: { classes: [2, 5] },
  ACCT: { classes: [2, 5] },
  REIN: { classes: [2, 5] },
  ABOR: { classes: [2, 5] },
  TYPE: { classes: [2, 5] },
  MODE: { classes: [2, 5] },
  STRU: { classes: [2, 5] },
  ALLO: { classes: [2, 5] },
  REST: { classes: [3, 5] },
};

/** Arguments that would be valid after login: before login each must still get 530. */
const VALID_ARG: Record<string, string> = {
  APPE: 'f.txt', CWD: 'existing', DELE: 'f.txt', EPRT: '|1|127.0.0.1|40000|', MDTM: 'f.txt', MKD: 'new', MLSD: '.',
  MLST: 'f.txt', NLST: '.', LIST: '.', OPTS: 'UTF8 ON', PORT: '127,0,0,1,156,64', RETR: 'f.txt', RMD: 'existing',
  RNFR: 'f.txt', RNTO: 'g.txt', SITE: 'VIEW f.txt', SIZE: 'f.txt', STOR: 'new.txt', STOU: 'new', XCWD: 'existing',
  XMKD: 'new', XRMD: 'existing', TYPE: 'I', MODE: 'S', STRU: 'F', ALLO: '100', REST: '0', ACCT: 'x', SMNT: '/mnt',
  STAT: 'f.txt', HELP: 'RETR',
};

function allowed(e: Expect, code: number): boolean {
  if (e.codes?.includes(code)) return true;
  if (e.codes && e.classes.length === 1) return false;
  return e.classes.includes(codeClass(code));
}

async function setup(t: ExecutionContext): Promise<{ srv: TestServer; verbs: string[]; listed: string[] }> {
  const srv = await startTestServer();
  t.teardown(() => srv.stop());
  const home = join(srv.storage, 'alice');
  await mkdir(join(home, 'existing'), { recursive: true });
  await writeFile(join(home, 'f.txt'), 'hello\n');
  const raw = await RawFtp.connect(srv.port);
  const help = await raw.command('HELP', REPLY_MS);
  raw.close();
  t.is(help.code, 214, `HELP before login: ${help.raw}`);
  const listed = helpVerbs(help);
  t.true(listed.length >= 30, `HELP lists the verbs: ${help.raw}`);
  const verbs = [...new Set([...listed, ...RFC_VERBS])].filter((v) => v !== 'QUIT').sort();
  return { srv, verbs, listed };
}

/** Ends a walk: the server is still up (new login works), no unhandled rejection happened. */
async function serverStillUp(t: ExecutionContext, srv: TestServer): Promise<void> {
  const again = await rawLogin(srv.port, 'alice', 'alice-pw');
  t.is((await again.command('NOOP', REPLY_MS)).code, 200);
  again.close();
  t.deepEqual(unhandled.map(String), [], 'no unhandled promise rejection in the server process');
}

/**
 * Sends `line` on `raw` (or on a fresh connection for session-changing verbs) and checks:
 * exactly one reply (one final reply, after at most one 1xx for data commands), an allowed
 * code, the connection still open. Returns the problem, if any (the walk collects them
 * all, so one run lists every verb that misbehaves).
 */
async function check(srv: TestServer, shared: { raw: RawFtp }, verb: string, line: string, e: Expect, loggedIn: boolean, listed: string[]): Promise<string | undefined> {
  let raw = shared.raw;
  const isolated = ISOLATED.has(verb);
  if (isolated) raw = loggedIn ? await rawLogin(srv.port, 'alice', 'alice-pw') : await RawFtp.connect(srv.port);
  // A verb the server does not implement (not in HELP) may be answered 502 anywhere.
  const expect: Expect = listed.includes(verb) || verb.includes('-') ? e : { ...e, codes: [...(e.codes ?? []), 502], classes: e.codes && e.classes.length === 1 ? e.classes : [...e.classes, 5] };
  const where = `${JSON.stringify(line)}${loggedIn ? '' : ' before login'}`;
  try {
    const { final, preliminary } = await oneReply(raw, line, { allowPreliminary: expect.data === true });
    if (raw.closed) return `${where}: the server closed the connection`;
    if (!allowed(expect, final.code)) {
      return `${where}: unexpected reply ${JSON.stringify((preliminary?.raw ?? '') + final.raw)} (expected ${expect.codes ? `${expect.codes.join('/')}` : expect.classes.map((c) => `${c}xx`).join('/')})`;
    }
    return undefined;
  } catch (err) {
    if (!isolated) {
      // Keep walking on a fresh connection.
      shared.raw.close();
      shared.raw = loggedIn ? await rawLogin(srv.port, 'alice', 'alice-pw') : await RawFtp.connect(srv.port);
    }
    return (err as Error).message;
  } finally {
    if (isolated) raw.close();
  }
}

test('defect 8: every verb WITHOUT an argument, logged in, gets exactly one sensible reply and the connection stays open', async (t) => {
  t.timeout(50_000);
  const { srv, verbs, listed } = await setup(t);
  const problems: (string | undefined)[] = [];
  const shared = { raw: await rawLogin(srv.port, 'alice', 'alice-pw') };
  t.teardown(() => shared.raw.close());
  for (const verb of verbs) {
    const e = NO_ARG[verb] ?? { classes: [2, 4, 5], data: true };
    problems.push(await check(srv, shared, verb, verb, e, true, listed));
  }
  t.deepEqual(problems.filter(Boolean), [], 'verbs without exactly one sensible reply');
  await serverStillUp(t, srv);
});

test('every verb with a BAD argument, logged in, gets exactly one sensible reply and the connection stays open', async (t) => {
  t.timeout(50_000);
  const { srv, verbs, listed } = await setup(t);
  const problems: (string | undefined)[] = [];
  const shared = { raw: await rawLogin(srv.port, 'alice', 'alice-pw') };
  t.teardown(() => shared.raw.close());
  for (const verb of verbs) {
    const [arg, e] = BAD_ARG[verb] ?? ['no-such-thing', { classes: [2, 4, 5], data: true }];
    problems.push(await check(srv, shared, verb, `${verb} ${arg}`, e, true, listed));
  }
  // Nothing was created by the bad arguments.
  t.deepEqual((await readdir(join(srv.storage, 'alice'))).sort(), ['existing', 'f.txt']);
  t.deepEqual(problems.filter(Boolean), [], 'verbs without exactly one sensible reply');
  await serverStillUp(t, srv);
});

for (const withArg of [true, false]) {
  test(`every verb BEFORE login ${withArg ? 'with a valid argument' : 'without an argument'} gets exactly one reply: 530 for those that need a login, no connection closed`, async (t) => {
    t.timeout(50_000);
    const { srv, verbs, listed } = await setup(t);
    const problems: (string | undefined)[] = [];
    const shared = { raw: await RawFtp.connect(srv.port) };
    t.teardown(() => shared.raw.close());
    for (const verb of verbs) {
      if (verb === 'USER' || verb === 'PASS') continue; // the login itself, tested below
      if (withArg) {
        const arg = VALID_ARG[verb];
        problems.push(await check(srv, shared, verb, arg ? `${verb} ${arg}` : verb, NO_LOGIN[verb] ?? { classes: [5], codes: [530] }, false, listed));
      } else {
        // 530 as well, or the no-login verb's own answer.
        const bare: Expect = !NO_LOGIN[verb]
          ? { classes: [5], codes: [530] }
          : ['FEAT', 'HELP', 'NOOP', 'SYST'].includes(verb)
            ? NO_LOGIN[verb]
            : verb === 'OPTS'
              ? err5
              : { classes: [2, 3, 5] };
        problems.push(await check(srv, shared, verb, verb, bare, false, listed));
      }
    }
    // PASS without USER, USER without a name: one reply each, no login.
    problems.push(await check(srv, shared, 'PASS-FIRST', 'PASS alice-pw', err5, false, listed));
    problems.push(await check(srv, shared, 'USER-BARE', 'USER', err5, false, listed));
    t.is((await shared.raw.command('PWD', REPLY_MS)).code, 530, 'still not logged in');
    t.deepEqual((await readdir(join(srv.storage, 'alice'))).sort(), ['existing', 'f.txt'], 'nothing changed before login');
    t.deepEqual(problems.filter(Boolean), [], 'verbs without exactly one sensible reply');
    await serverStillUp(t, srv);
  });
}

test('QUIT gets 221 and then the server closes the connection (the only verb that may)', async (t) => {
  const srv = await startTestServer();
  t.teardown(() => srv.stop());
  for (const loggedIn of [false, true]) {
    const raw = loggedIn ? await rawLogin(srv.port, 'alice', 'alice-pw') : await RawFtp.connect(srv.port);
    const r = await raw.command('QUIT', REPLY_MS);
    t.is(r.code, 221, r.raw);
    await raw.waitClosed(5000);
    t.is(raw.pending, '', 'nothing after 221');
  }
});

test('HELP <verb> answers 214 for every verb HELP lists, and HELP lists the verbs issue 4 requires (MLSD, MLST, EPRT, …)', async (t) => {
  const { srv, listed } = await setup(t);
  const raw = await rawLogin(srv.port, 'alice', 'alice-pw');
  t.teardown(() => raw.close());
  for (const verb of listed) {
    const { final } = await oneReply(raw, `HELP ${verb}`);
    t.is(final.code, 214, `HELP ${verb}: ${final.raw}`);
  }
  // Verbs the issue requires the server to implement must be in HELP.
  for (const verb of ['MLSD', 'MLST', 'EPRT', 'EPSV', 'FEAT', 'OPTS', 'STAT', 'REST', 'MDTM', 'SIZE']) {
    t.true(listed.includes(verb), `HELP lists ${verb}: ${listed.join(' ')}`);
  }
});
