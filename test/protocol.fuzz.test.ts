import test from 'ava';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { RawFtp } from './helpers/rawFtp.js';
import { rawLogin } from './helpers/interop.js';
import { startTestServer } from './helpers/testServer.js';

/**
 * Seeded garbage on the control channel: random verbs with hostile arguments, and random
 * bytes (invalid UTF-8, NUL, Telnet IAC, CR) behind common verbs, before and after login.
 * Every line must get exactly one reply, no reply may name a server path, the session
 * must stay usable, and the stored files must be untouched. The seed is fixed, so a
 * failure reproduces; the line counts and waits are bounded.
 */

/** mulberry32: a small deterministic PRNG, so every run sends the same lines. */
function prng(seed: number): (n: number) => number {
  let a = seed >>> 0;
  return (n) => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = a;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return Math.floor((((x ^ (x >>> 14)) >>> 0) / 4294967296) * n);
  };
}

const VERBS = ['ALLO', 'APPE', 'CDUP', 'CWD', 'DELE', 'EPRT', 'FEAT', 'HELP', 'LIST', 'MDTM', 'MKD', 'MLSD', 'MLST', 'MODE', 'NLST',
  'NOOP', 'OPTS', 'PORT', 'PWD', 'REST', 'RETR', 'RMD', 'RNFR', 'RNTO', 'SITE', 'SIZE', 'STAT', 'STOR', 'STOU', 'STRU', 'SYST',
  'TYPE', 'XCUP', 'XCWD', 'XMKD', 'XPWD', 'XRMD', 'ACCT', 'SMNT', 'LANG', 'HOST', 'MFMT', 'XYZZY', ''];
const ARGS = ['', ' ', '..', '../..', '/', '/etc/passwd', 'a b', '"q"', '-la', '-a ..', 'VIEW', 'VIEW ../x', 'VIEW keep.txt', 'CHMOD',
  'CHMOD 777', 'CHMOD 777 keep.txt', 'UTF8 ON', 'MLST type;', '127,0,0,1,0,80', '|1|127.0.0.1|80|', '|2|::1|2000|', '|3|x|1|', 'A', 'I',
  'E', 'L 8', 'F', 'x'.repeat(300), 'é中', '%s%n', '\\..\\x', 'a/../../b', '*', '?', '-1', '99999999999999999999', 'NaN', '1', '0',
  '.dfos-upload-x.part', 'sub', 'sub/../../sibling'];
const BYTE_PREFIXES = ['', 'SITE VIEW ', 'CWD ', 'MKD ', 'DELE ', 'SIZE ', 'STAT ', 'OPTS ', 'RNFR ', 'USER '];

const SERVER_PATH = /\/tmp\/|dfos-test-|storage\//;

test('seeded garbage: every line gets exactly one reply, no server path leaks, stored files untouched', async (t) => {
  const srv = await startTestServer({ config: { dataTimeout: 1 } });
  t.teardown(() => srv.stop());
  const home = join(srv.storage, 'alice');
  // Log in once so the home exists, then seed it.
  (await rawLogin(srv.port, 'alice', 'alice-pw')).close();
  await writeFile(join(home, 'keep.txt'), 'keep me\n');
  const random = prng(20261129);
  let lines = 0;
  for (let round = 0; round < 8; round++) {
    const loggedIn = round % 2 === 0;
    const raw = loggedIn ? await RawFtp.login(srv.port, 'alice', 'alice-pw') : await RawFtp.connect(srv.port);
    t.teardown(() => raw.close());
    for (let i = 0; i < 40; i++) {
      let bytes: Buffer;
      let shown: string;
      if (i % 2 === 0) {
        const verb = VERBS[random(VERBS.length)]!;
        const arg = ARGS[random(ARGS.length)]!;
        const text = random(8) === 0 ? `${verb.toLowerCase()} ${arg}` : arg ? `${verb} ${arg}` : verb;
        bytes = Buffer.from(text);
        shown = JSON.stringify(text);
      } else {
        const noise = Buffer.from(Array.from({ length: random(100) }, () => random(256)).filter((b) => b !== 0x0a));
        bytes = Buffer.concat([Buffer.from(BYTE_PREFIXES[random(BYTE_PREFIXES.length)]!), noise]);
        shown = bytes.toString('hex');
      }
      raw.write(Buffer.concat([bytes, Buffer.from('\r\n')]));
      lines++;
      const first = await raw.read(REPLY_TIMEOUT_MS).catch((err: Error) => err);
      if (first instanceof Error) {
        t.fail(`round ${round}, ${shown}: ${first.message}`);
        return;
      }
      // A transfer command after an earlier EPSV/PORT: 150, then 425/426 once the
      // (never opened) data connection times out.
      const final = first.code < 200 ? await raw.read(REPLY_TIMEOUT_MS) : first;
      t.true(final.code >= 200 && final.code < 600, `${shown}: ${final.raw}`);
      t.false(SERVER_PATH.test(first.raw + final.raw), `${shown}: a reply names a server path: ${first.raw}${final.raw}`);
      if (!(await raw.silentFor(30))) t.fail(`${shown}: more than one reply: ${final.raw}${raw.pending}`);
      if (raw.closed) break;
    }
    if (!raw.closed) t.is((await raw.command('NOOP')).code, 200, `round ${round}: the session still works`);
  }
  t.log(`${lines} lines`);
  t.is(await readFile(join(home, 'keep.txt'), 'utf8'), 'keep me\n');
  t.deepEqual((await readdir(srv.storage)).sort(), ['alice'], 'nothing created beside the home');
});

const REPLY_TIMEOUT_MS = 8000;
