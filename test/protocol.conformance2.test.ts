import test, { type ExecutionContext } from 'ava';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { connect } from 'node:net';
import { join } from 'node:path';
import { startDataCommand } from './helpers/dataTransfer.js';
import { FAMILIES, loginAt, oneReply, requireClient, runProgram, startProgram, startServer, waitForBytes } from './helpers/protocolFixtures.js';
import { auditRecords } from './helpers/logFiles.js';
import { REPLY_MS } from './helpers/rawFtp.js';
import type { TestServer } from './helpers/testServer.js';

/**
 * Issue 9, protocol conformance II: ABOR however real clients send it (Python ftplib's
 * urgent-data ABOR, lftp's Telnet IP + urgent DM), commands answered after a half-close,
 * STAT and QUIT during a transfer, strict arguments, SIZE in TYPE A, MDTM on directories.
 * Urgent (MSG_OOB) data cannot be sent from Node, so those clients' byte sequences are
 * sent by python3, and ftplib's own `abort()` is driven as it is.
 */

/** A file big enough that a download the client does not read stalls the server's writes (and over SIZE's TYPE A limit). */
const BIG = 64 * 1024 * 1024 + 4096;

async function serverWithBigFile(t: ExecutionContext, host = '127.0.0.1'): Promise<TestServer> {
  const srv = await startServer({ config: { host } });
  t.teardown(() => srv.stop());
  const home = join(srv.storage, 'alice');
  await mkdir(home, { recursive: true });
  await writeFile(join(home, 'big.bin'), Buffer.alloc(BIG, 7));
  await writeFile(join(home, 'small.txt'), 'one\ntwo\r\nthree\n');
  return srv;
}

/**
 * Python: logs in, starts `RETR big.bin` without reading the data connection (so the
 * transfer stalls), waits 0.5 s, then aborts the way `how` says, and prints each reply that
 * follows with the milliseconds since the abort was sent.
 */
const PY_ABORT = String.raw`
import ftplib, socket, sys, time
host, port, how = sys.argv[1], int(sys.argv[2]), sys.argv[3]
ftp = ftplib.FTP()
ftp.connect(host, port, timeout=10)
ftp.login('alice', 'alice-pw')
ftp.voidcmd('TYPE I')
conn = ftp.transfercmd('RETR big.bin')
time.sleep(0.5)
start = time.time()
if how == 'ftplib':
    first = ftp.abort()            # ABOR + CRLF sent with MSG_OOB: the LF is urgent data
elif how == 'lftp':
    ftp.sock.sendall(b'\xff\xf4\xff')          # IAC IP IAC
    ftp.sock.send(b'\xf2', socket.MSG_OOB)     # DM as urgent data
    ftp.sock.sendall(b'ABOR\r\n')
    first = ftp.getmultiline()
else:
    ftp.sock.sendall(b'ABOR\r\n')
    first = ftp.getmultiline()
print('%d %s' % ((time.time() - start) * 1000, first), flush=True)
second = ftp.getmultiline()
print('%d %s' % ((time.time() - start) * 1000, second), flush=True)
print('%d %s' % ((time.time() - start) * 1000, ftp.sendcmd('NOOP')), flush=True)
conn.close()
ftp.quit()
`;

for (const family of FAMILIES) {
  for (const how of ['ftplib', 'lftp', 'in-band'] as const) {
    (family.available ? test : test.skip)(`ABOR as ${how === 'ftplib' ? "ftplib's abort() sends it (urgent LF)" : how === 'lftp' ? 'lftp sends it (IAC IP, urgent IAC DM)' : 'plain text'} on a stalled download (${family.name}): 426 then 226 within a second, session usable`, async (t) => {
      requireClient('python3', ['--version'], 'python3');
      const srv = await serverWithBigFile(t, family.host);
      const r = await runProgram('python3', ['-c', PY_ABORT, family.host, String(srv.port), how], { timeoutMs: 30_000 });
      t.is(r.code, 0, `python3 failed: ${r.stderr}\n${r.stdout}`);
      const lines = r.stdout.trim().split('\n').map((l) => {
        const space = l.indexOf(' ');
        return { ms: Number(l.slice(0, space)), reply: l.slice(space + 1) };
      });
      t.is(lines.length, 3, r.stdout);
      t.regex(lines[0]!.reply, /^426 /, 'the transfer is answered 426');
      t.regex(lines[1]!.reply, /^226 /, 'then ABOR is answered 226');
      t.false(/ABOR/i.test(lines[0]!.reply), 'the 426 text must not say ABOR (lftp pairs replies by text)');
      t.log(`426 after ${lines[0]!.ms} ms, 226 after ${lines[1]!.ms} ms`);
      t.true(lines[1]!.ms < 1000, `226 came ${lines[1]!.ms} ms after the abort`);
      t.regex(lines[2]!.reply, /^200 /, 'the session still works');
    });
  }
}

for (const family of FAMILIES) {
  (family.available ? test : test.skip)(`lftp's own abort (a slow get killed mid-transfer) over ${family.name}: ABOR gets 426 then 226, the download is recorded as aborted, the session goes on`, async (t) => {
    requireClient('lftp', ['--version'], 'lftp');
    const srv = await serverWithBigFile(t, family.host);
    const work = await mkdtemp(join(tmpdir(), 'dfos-lftp-abort-'));
    t.teardown(() => rm(work, { recursive: true, force: true }));
    const url = `ftp://${family.host.includes(':') ? `[${family.host}]` : family.host}:${srv.port}`;
    const debug = join(work, 'debug.log');
    // The get reads slowly (rate limit); once its first bytes have arrived (a fixed sleep
    // raced a slow login on a loaded machine) the jobs are killed: lftp then sends its ABOR
    // (IAC IP, IAC DM as urgent data, ABOR) and reuses the session for `ls`. The script goes
    // to lftp's stdin in two parts so the kill waits for the transfer.
    // Plain FTP: the urgent-data ABOR is a plaintext matter (FTPS is tested in ftps.test.ts).
    const part = join(work, 'big.part');
    const lftp = startProgram('lftp', [], { openStdin: true, timeoutMs: 40_000 });
    lftp.child.stdin!.write(`set ftp:ssl-allow no; set net:limit-rate 100000; set net:max-retries 1; debug -o ${debug} 10; open -u alice,alice-pw ${url}; get big.bin -o ${part} &\n`);
    try {
      await waitForBytes(lftp, part, 1);
    } finally {
      lftp.child.stdin!.end('kill all\nsleep 1\ncls small.txt\nexit\n');
    }
    const r = await lftp.done;
    t.is(r.code, 0, r.stderr);
    t.regex(r.stdout, /small\.txt/, 'the session is still usable after the abort');
    const log = await readFile(debug, 'utf8');
    const after = log.slice(log.indexOf('---> ABOR'));
    t.true(log.includes('---> ABOR'), 'lftp sent ABOR');
    const replies = after.split('\n').filter((l) => l.includes('<--- ')).map((l) => l.slice(l.indexOf('<--- ') + 5, l.indexOf('<--- ') + 8));
    t.deepEqual(replies.slice(0, 2), ['426', '226'], after.slice(0, 600));
    const [aborted] = await auditRecords(srv.logDir, (e) => e.action === 'download' && e.result === 'aborted');
    t.truthy(aborted, 'the download is recorded as aborted');
  });
}

test('ftplib abort() with no transfer running gets 225 at once', async (t) => {
  requireClient('python3', ['--version'], 'python3');
  const srv = await serverWithBigFile(t);
  const script = String.raw`
import ftplib, sys
ftp = ftplib.FTP()
ftp.connect('127.0.0.1', int(sys.argv[1]), timeout=5)
ftp.login('alice', 'alice-pw')
print(ftp.abort())
print(ftp.sendcmd('NOOP'))
ftp.quit()
`;
  const r = await runProgram('python3', ['-c', script, String(srv.port)], { timeoutMs: 20_000 });
  t.is(r.code, 0, r.stderr);
  const [abort, noop] = r.stdout.trim().split('\n');
  t.regex(abort ?? '', /^225 /);
  t.regex(noop ?? '', /^200 /, 'no stray reply from the urgent LF');
});

/**
 * Sends `commands` on a new control connection and half-closes it (FIN); collects what the
 * server answers until it has closed (or ended) its side, bounded by REPLY_MS. Returns the
 * whole text and the codes of the final reply lines.
 */
async function halfClosedSession(port: number, commands: string[]): Promise<{ text: string; codes: string[] }> {
  const socket = connect({ host: '127.0.0.1', port });
  let text = '';
  socket.setEncoding('latin1');
  socket.on('data', (d: string) => (text += d));
  const finished = new Promise<void>((resolve) => {
    socket.once('end', () => resolve());
    socket.once('close', () => resolve());
  });
  await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
  socket.end(commands.map((c) => `${c}\r\n`).join(''));
  await Promise.race([finished, new Promise((r) => setTimeout(r, REPLY_MS))]);
  socket.destroy();
  return { text, codes: text.split('\r\n').filter((l) => /^\d{3} /.test(l)).map((l) => l.slice(0, 3)) };
}

test('a client that half-closes (FIN) after pipelining its commands gets every reply, then the server closes', async (t) => {
  const srv = await serverWithBigFile(t);
  const { text, codes } = await halfClosedSession(srv.port, ['USER alice', 'PASS alice-pw', 'SITE VIEW small.txt', 'SIZE small.txt', 'QUIT']);
  t.deepEqual(codes, ['220', '331', '230', '200', '213', '221'], text);
  t.regex(text, /200-VIEW text bytes=15/);
});

test('a half-close without QUIT: the commands are answered, then the server closes its side', async (t) => {
  const srv = await serverWithBigFile(t);
  const { text, codes } = await halfClosedSession(srv.port, ['USER alice', 'PASS alice-pw', 'NOOP', 'PWD']);
  t.deepEqual(codes, ['220', '331', '230', '200', '257'], text);
});

test('STAT during a transfer is answered at once with the transfer status; QUIT waits for the transfer, then 221', async (t) => {
  const srv = await serverWithBigFile(t);
  const raw = await loginAt(srv.port, '127.0.0.1');
  t.teardown(() => raw.close());
  const { data } = await startDataCommand(raw, 'RETR big.bin');
  data.pause(); // stalled: the server's writes back up
  const stat = await raw.command('STAT', REPLY_MS);
  t.is(stat.code, 213, stat.raw);
  t.regex(stat.raw, /RETR in progress, \d+ bytes so far/);
  raw.write('QUIT\r\n');
  t.true(await raw.silentFor(300), 'QUIT is not answered while the transfer runs');
  data.resume();
  data.on('data', () => undefined);
  const done = await raw.read(REPLY_MS);
  t.is(done.code, 226, done.raw);
  t.is((await raw.read(REPLY_MS)).code, 221);
});

test('strict arguments: stray arguments, missing ones, malformed REST and unknown MLST facts get 501', async (t) => {
  const srv = await serverWithBigFile(t);
  const raw = await loginAt(srv.port, '127.0.0.1');
  t.teardown(() => raw.close());
  for (const line of ['ABOR x', 'CDUP x', 'FEAT x', 'NOOP x', 'PASV x', 'PWD /', 'QUIT now', 'SYST x', 'XCUP x', 'XPWD x']) {
    t.is((await oneReply(raw, line)).final.code, 501, line);
  }
  for (const line of ['MODE', 'STRU', 'ALLO']) t.is((await oneReply(raw, line)).final.code, 501, line);
  for (const line of ['REST 10.1', 'REST 10abc', 'REST 1e3', 'REST -1', 'REST', 'REST 99999999999999999']) {
    t.is((await oneReply(raw, line)).final.code, 501, line);
  }
  t.is((await oneReply(raw, 'REST 10')).final.lines[0], '350 Restarting next transfer at 10');
  t.is((await oneReply(raw, 'REST 0')).final.code, 350);
  t.is((await oneReply(raw, 'OPTS MLST bad_fact;')).final.code, 501);
  t.is((await oneReply(raw, 'OPTS MLST size;type;')).final.code, 200);
  for (const line of ['NOOP', 'PWD', 'SYST', 'MODE S', 'STRU F', 'ALLO 100']) t.true((await oneReply(raw, line)).final.code < 300, line);
  t.is((await oneReply(raw, 'QUIT')).final.code, 221);
});

test('MDTM of a directory is 550 (RFC 3659 defines it for files); SIZE in TYPE A is the size on the wire', async (t) => {
  const srv = await serverWithBigFile(t);
  await mkdir(join(srv.storage, 'alice', 'dir'));
  const raw = await loginAt(srv.port, '127.0.0.1');
  t.teardown(() => raw.close());
  t.is((await oneReply(raw, 'MDTM dir')).final.code, 550);
  t.is((await oneReply(raw, 'MDTM small.txt')).final.code, 213);
  // 'one\ntwo\r\nthree\n' is 15 bytes; in TYPE A each bare LF goes as CRLF: 17.
  t.is((await oneReply(raw, 'SIZE small.txt')).final.lines[0], '213 15');
  t.is((await oneReply(raw, 'TYPE A')).final.code, 200);
  t.is((await oneReply(raw, 'SIZE small.txt')).final.lines[0], '213 17');
  t.is((await oneReply(raw, 'SIZE big.bin')).final.code, 550, 'over 64 MiB in TYPE A');
  // And the size matches what a TYPE A download delivers.
  const { data } = await startDataCommand(raw, 'RETR small.txt');
  const chunks: Buffer[] = [];
  for await (const c of data) chunks.push(c as Buffer);
  t.is(Buffer.concat(chunks).length, 17);
  t.is((await raw.read(REPLY_MS)).code, 226);
});
