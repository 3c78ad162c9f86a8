import test, { type ExecutionContext } from 'ava';
import { randomBytes, X509Certificate } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Duplex, Readable, Writable } from 'node:stream';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { Client } from 'basic-ftp';
import { DfosClient } from '../src/client/index.js';
import { runCli } from './helpers/clientFixtures.js';
import { CLI } from './helpers/serverProcess.js';
import { freePort } from './helpers/ceph.js';
import { auditLog, auditRecords } from './helpers/logFiles.js';
import { FAMILIES, requireClient, runProgram, startServer } from './helpers/protocolFixtures.js';
import { REPLY_MS } from './helpers/rawFtp.js';
import type { TestServer } from './helpers/testServer.js';

/**
 * Issue 10, FTPS with real clients and real handshakes: curl (explicit and implicit),
 * lftp, Python ftplib FTP_TLS (with and without TLS session reuse), basic-ftp, openssl
 * s_client; the AUTH TLS race (AUTH TLS and the ClientHello in one segment); and what
 * must fail: plaintext login under `--tls required`, clear data under `required`, a data
 * connection from another TLS session while reuse is required, an untrusted certificate.
 */

interface FtpsServer {
  srv: TestServer;
  /** The generated certificate (valid for localhost, 127.0.0.1, ::1). */
  ca: string;
  caFile: string;
  implicitPort: number;
}

async function ftpsServer(t: ExecutionContext, config: Record<string, unknown> = {}, host = '127.0.0.1'): Promise<FtpsServer> {
  const implicitPort = await freePort();
  const srv = await startServer({ config: { host, tls: 'on', implicitTlsPort: implicitPort, ...config } });
  t.teardown(() => srv.stop());
  const caFile = join(srv.dir, 'state', 'tls', 'cert.pem');
  const home = join(srv.storage, 'alice');
  await mkdir(home, { recursive: true });
  await writeFile(join(home, 'hello.txt'), 'hello over TLS\n');
  return { srv, ca: await readFile(caFile, 'utf8'), caFile, implicitPort };
}

function url(host: string, port: number, scheme = 'ftp'): string {
  return `${scheme}://alice:alice-pw@${host.includes(':') ? `[${host}]` : host}:${port}`;
}

async function tempDir(t: ExecutionContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'dfos-ftps-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

for (const family of FAMILIES) {
  (family.available ? test : test.skip)(`curl explicit FTPS (--ssl-reqd, certificate verified) over ${family.name}: upload, list, download, SITE VIEW, delete`, async (t) => {
    requireClient('curl', ['--version'], 'curl');
    const { srv, caFile } = await ftpsServer(t, {}, family.host);
    const work = await tempDir(t);
    const content = randomBytes(300_000);
    await writeFile(join(work, 'up.bin'), content);
    const base = url(family.host, srv.port);
    const tls = ['--ssl-reqd', '--cacert', caFile, '-s', '-S'];
    const up = await runProgram('curl', [...tls, '-T', join(work, 'up.bin'), `${base}/up.bin`], { timeoutMs: 30_000 });
    t.is(up.code, 0, up.stderr);
    t.deepEqual(await readFile(join(srv.storage, 'alice', 'up.bin')), content);
    const list = await runProgram('curl', [...tls, '-l', `${base}/`], { timeoutMs: 30_000 });
    t.deepEqual(list.stdout.split(/\r?\n/).filter(Boolean).sort(), ['hello.txt', 'up.bin']);
    const down = await runProgram('curl', [...tls, '-o', join(work, 'down.bin'), `${base}/up.bin`], { timeoutMs: 30_000 });
    t.is(down.code, 0, down.stderr);
    t.deepEqual(await readFile(join(work, 'down.bin')), content);
    const view = await runProgram('curl', [...tls, '-v', '-Q', 'SITE VIEW hello.txt', '-Q', 'DELE up.bin', `${base}/`], { timeoutMs: 30_000 });
    t.regex(view.stderr, /< 200-VIEW text bytes=15/);
    t.regex(view.stderr, /< 250 Deleted \/up\.bin/);
    const login = (await auditLog(srv.logDir)).find((e) => e.action === 'login' && e.result === 'ok');
    t.regex(String(login?.tls ?? ''), /^TLSv1\.[23] /, 'the login record says TLS');
  });
}

test('curl implicit FTPS (ftps:// on the implicit port): list and download', async (t) => {
  requireClient('curl', ['--version'], 'curl');
  const { caFile, implicitPort } = await ftpsServer(t);
  const r = await runProgram('curl', ['-s', '-S', '--cacert', caFile, `${url('127.0.0.1', implicitPort, 'ftps')}/hello.txt`], { timeoutMs: 30_000 });
  t.is(r.code, 0, r.stderr);
  t.is(r.stdout, 'hello over TLS\n');
});

for (const family of FAMILIES) {
  (family.available ? test : test.skip)(`lftp with ftp:ssl-force and ftp:ssl-protect-data, certificate verified, over ${family.name}: put, cls (MLSD), get, quote SITE VIEW, rm`, async (t) => {
  requireClient('lftp', ['--version'], 'lftp');
  const { srv, caFile } = await ftpsServer(t, {}, family.host);
  const work = await tempDir(t);
  const content = randomBytes(200_000);
  await writeFile(join(work, 'l.bin'), content);
  const script = [
    'set ftp:ssl-force true',
    'set ftp:ssl-protect-data true',
    `set ssl:ca-file ${caFile}`,
    'set ssl:verify-certificate true',
    'set net:max-retries 1',
    `open -u alice,alice-pw ftp://${family.host.includes(':') ? `[${family.host}]` : family.host}:${srv.port}`,
    `put ${join(work, 'l.bin')} -o l.bin`,
    'cls -1',
    `get l.bin -o ${join(work, 'back.bin')}`,
    'quote SITE VIEW hello.txt',
    'rm l.bin',
    'exit',
  ].join('; ');
  const r = await runProgram('lftp', ['-c', script], { timeoutMs: 60_000 });
  t.is(r.code, 0, r.stderr);
  t.regex(r.stdout, /l\.bin/);
  t.regex(r.stdout, /200-VIEW text bytes=15/);
  t.deepEqual(await readFile(join(work, 'back.bin')), content);
  });
}

/** ftplib FTP_TLS; `reuse` subclasses it so data connections resume the control session. */
const PY_FTPS = String.raw`
import ftplib, ssl, sys, io
port, cafile, reuse = int(sys.argv[1]), sys.argv[2], sys.argv[3] == 'reuse'
tls12 = len(sys.argv) > 4 and sys.argv[4] == 'tls12'
class Reusing(ftplib.FTP_TLS):
    def ntransfercmd(self, cmd, rest=None):
        conn, size = ftplib.FTP.ntransfercmd(self, cmd, rest)
        if self._prot_p:
            conn = self.context.wrap_socket(conn, server_hostname=self.host, session=self.sock.session)
        return conn, size
ctx = ssl.create_default_context(cafile=cafile)
if tls12: ctx.maximum_version = ssl.TLSVersion.TLSv1_2
ftp = (Reusing if reuse else ftplib.FTP_TLS)(context=ctx)
ftp.connect('127.0.0.1', port, timeout=10)
ftp.auth()
ftp.prot_p()
ftp.login('alice', 'alice-pw')
ftp.storbinary('STOR py.txt', io.BytesIO(b'from python\n'))
out = io.BytesIO()
ftp.retrbinary('RETR py.txt', out.write)
print(out.getvalue().decode().strip())
print(ftp.nlst())
ftp.quit()
`;

test('Python ftplib FTP_TLS with a session-reusing subclass: login, STOR, RETR, NLST under required session reuse', async (t) => {
  requireClient('python3', ['--version'], 'python3');
  const { srv, caFile } = await ftpsServer(t);
  const r = await runProgram('python3', ['-c', PY_FTPS, String(srv.port), caFile, 'reuse'], { timeoutMs: 30_000 });
  t.is(r.code, 0, r.stderr);
  t.regex(r.stdout, /^from python\n\[.*'py\.txt'.*\]/);
});

test('plain Python ftplib FTP_TLS (no session reuse) gets 522 on data while reuse is required, and works with --tls-session-reuse off', async (t) => {
  requireClient('python3', ['--version'], 'python3');
  const strict = await ftpsServer(t);
  const refused = await runProgram('python3', ['-c', PY_FTPS, String(strict.srv.port), strict.caFile, 'plain'], { timeoutMs: 30_000 });
  t.not(refused.code, 0, 'ftplib fails: its data connection was cut after the handshake');
  const [upload] = await auditRecords(strict.srv.logDir, (e) => e.action === 'upload');
  t.is(upload?.code, 522, 'the server refused the data connection from a new TLS session with 522');
  t.false((await readFile(join(strict.srv.storage, 'alice', 'py.txt')).catch(() => undefined)) !== undefined, 'no data was stored');
  const lax = await ftpsServer(t, { tlsSessionReuse: 'off' });
  // Plain FTP_TLS over TLS 1.3 fails on its second data connection with "shutdown while in
  // init" in its own unwrap() (a CPython ftplib/TLS 1.3 quirk, seen here after a complete
  // transfer); over TLS 1.2 it works, which is what such clients get with the opt-out.
  const ok = await runProgram('python3', ['-c', PY_FTPS, String(lax.srv.port), lax.caFile, 'plain', 'tls12'], { timeoutMs: 30_000 });
  t.is(ok.code, 0, ok.stderr);
});

for (const family of FAMILIES) {
  (family.available ? test : test.skip)(`basic-ftp (secure: true, the server certificate as CA) over ${family.name}: upload, MLSD list, download, REST resume`, async (t) => {
  const { srv, ca } = await ftpsServer(t, {}, family.host);
  const client = new Client(15_000);
  t.teardown(() => client.close());
  await client.access({ host: family.host, port: srv.port, user: 'alice', password: 'alice-pw', secure: true, secureOptions: { ca, servername: 'localhost' } });
  const content = randomBytes(500_000);
  await client.uploadFrom(Readable.from([content]), 'b.bin');
  t.deepEqual((await client.list()).map((e) => e.name).sort(), ['b.bin', 'hello.txt']);
  const chunks: Buffer[] = [];
  await client.downloadTo(new Writable({ write: (c: Buffer, _e, cb) => (chunks.push(c), cb()) }), 'b.bin', 100_000);
  t.deepEqual(Buffer.concat(chunks), content.subarray(100_000));
  });
}

test('our own client and CLI against DFOS: ftpes:// with the pinned fingerprint, and ftps:// (implicit) with the CA', async (t) => {
  const { srv, ca, caFile, implicitPort } = await ftpsServer(t);
  const fingerprint = new X509Certificate(ca).fingerprint256;
  const explicit = await DfosClient.connect(`ftpes://alice@127.0.0.1:${srv.port}/`, { password: 'alice-pw', fingerprint });
  t.teardown(() => explicit.close());
  const content = randomBytes(100_000);
  await explicit.upload(content, 'own.bin');
  t.deepEqual(await readFile(join(srv.storage, 'alice', 'own.bin')), content);
  const implicit = await DfosClient.connect(`ftps://alice@127.0.0.1:${implicitPort}/`, { password: 'alice-pw', ca: caFile });
  t.teardown(() => implicit.close());
  t.true((await implicit.list()).some((e) => e.name === 'own.bin'));
  const work = await tempDir(t);
  const cli = await runCli(CLI, ['get', '--url', `ftpes://alice@127.0.0.1:${srv.port}/`, '--fingerprint', fingerprint, 'own.bin', join(work, 'got.bin')], { env: { DFOS_PASSWORD: 'alice-pw' } });
  t.is(cli.code, 0, cli.stderr);
  t.deepEqual(await readFile(join(work, 'got.bin')), content);
  const refused = await runCli(CLI, ['ls', '--url', `ftpes://alice@127.0.0.1:${srv.port}/`], { env: { DFOS_PASSWORD: 'alice-pw' } });
  t.is(refused.code, 3, 'an untrusted certificate is exit code 3');
  t.is(refused.stderr.trim().split('\n').length, 1, refused.stderr);
});

test('ABOR during a protected (PROT P) download that the client stopped reading: 426 then 226, the session goes on', async (t) => {
  const { srv, ca } = await ftpsServer(t);
  await writeFile(join(srv.storage, 'alice', 'big.bin'), Buffer.alloc(64 * 1024 * 1024, 3));
  const session = await tlsSession(srv.port, ca);
  t.teardown(() => session.close());
  t.regex(await session.send('USER alice'), /^331/);
  t.regex(await session.send('PASS alice-pw'), /^230/);
  t.regex(await session.send('PBSZ 0'), /^200/);
  t.regex(await session.send('PROT P'), /^200/);
  const epsv = await session.send('EPSV');
  const port = Number(/\(\|\|\|(\d+)\|\)/.exec(epsv)![1]);
  const started = session.send('RETR big.bin');
  const data = tlsConnect({ socket: connect({ host: '127.0.0.1', port }), ca, servername: 'localhost', session: session.socket.getSession() });
  data.on('error', () => undefined);
  const secured = new Promise<void>((resolve) => data.once('secureConnect', () => resolve()));
  t.regex(await started, /^150/);
  await secured;
  t.true(data.isSessionReused(), 'the data connection resumed the control session');
  data.pause(); // stalled
  const aborted = Date.now();
  const first = await session.send('ABOR');
  t.regex(first, /^426 /);
  t.regex(await session.next(), /^226 /);
  t.true(Date.now() - aborted < 1000);
  t.regex(await session.send('NOOP'), /^200/);
  data.destroy();
});

test('lftp in active mode (PORT) over FTPS with PROT P: the data connection DFOS opens is TLS too (DFOS as the TLS server)', async (t) => {
  // curl on this machine did not start the TLS handshake on the data connection it accepted
  // in active mode (it logs "sa_addr inet_ntop() failed"; not investigated further); lftp does.
  requireClient('lftp', ['--version'], 'lftp');
  const { srv, caFile } = await ftpsServer(t);
  const work = await tempDir(t);
  const debug = join(work, 'debug.log');
  const script = `set ftp:passive-mode off; set ftp:ssl-force true; set ftp:ssl-protect-data true; set ssl:ca-file ${caFile}; set net:max-retries 1; set net:timeout 10; debug -o ${debug} 10; open -u alice,alice-pw ftp://127.0.0.1:${srv.port}; cat hello.txt`;
  const r = await runProgram('lftp', ['-c', script], { timeoutMs: 40_000 });
  t.is(r.code, 0, r.stderr);
  t.is(r.stdout, 'hello over TLS\n');
  const log = await readFile(debug, 'utf8');
  t.regex(log, /---> (PORT|EPRT) /, 'lftp used active mode');
  t.regex(log, /---> PROT P/);
});

test('over TLS, a reset upload leaves no temporary and the old file, and the shutdown drain sends 421 to an idle TLS session', async (t) => {
  const { srv, ca } = await ftpsServer(t);
  const home = join(srv.storage, 'alice');
  const session = await tlsSession(srv.port, ca);
  t.teardown(() => session.close());
  for (const line of ['USER alice', 'PASS alice-pw', 'PBSZ 0', 'PROT P']) t.regex(await session.send(line), /^[23]\d\d /);
  const epsv = await session.send('EPSV');
  const port = Number(/\(\|\|\|(\d+)\|\)/.exec(epsv)![1]);
  const started = session.send('STOR hello.txt');
  const tcp = connect({ host: '127.0.0.1', port });
  tcp.on('error', () => undefined);
  const data = tlsConnect({ socket: tcp, ca, servername: 'localhost', session: session.socket.getSession() });
  data.on('error', () => undefined);
  const secured = new Promise<void>((resolve) => data.once('secureConnect', () => resolve()));
  t.regex(await started, /^150/);
  await secured;
  data.write(randomBytes(500_000));
  await new Promise((r) => setTimeout(r, 300));
  tcp.resetAndDestroy();
  t.regex(await session.next(), /^4\d\d /, 'the reset upload is refused');
  t.is(await readFile(join(home, 'hello.txt'), 'utf8'), 'hello over TLS\n');
  t.deepEqual((await readdir(home)).filter((n) => n.startsWith('.dfos-upload-')), []);
  const closing = session.next();
  await srv.server.shutdown(1000);
  t.regex(await closing, /^421 /, 'the idle TLS session is told the server is shutting down');
});

test('openssl s_client -starttls ftp: the handshake completes and the certificate verifies', async (t) => {
  requireClient('openssl', ['version'], 'openssl');
  const { srv, caFile } = await ftpsServer(t);
  const r = await runProgram('openssl', ['s_client', '-starttls', 'ftp', '-connect', `127.0.0.1:${srv.port}`, '-CAfile', caFile, '-verify_return_error', '-brief'], { input: 'QUIT\r\n', timeoutMs: 30_000 });
  t.regex(r.stdout + r.stderr, /Verification: OK|Verify return code: 0/);
  t.regex(r.stdout + r.stderr, /Protocol version: TLSv1\.[23]/);
});

test('--tls required: USER before AUTH gets 530 saying TLS is required; clear data gets 521; PROT C 534', async (t) => {
  const { srv, ca } = await ftpsServer(t, { tls: 'required' });
  const plain = await rawLine(srv.port);
  t.regex(await plain.send('USER alice'), /^530 .*TLS required/);
  plain.close();
  const client = new Client(15_000);
  t.teardown(() => client.close());
  await client.access({ host: '127.0.0.1', port: srv.port, user: 'alice', password: 'alice-pw', secure: true, secureOptions: { ca, servername: 'localhost' } });
  t.is((await client.send('PROT C', true)).code, 534);
  // basic-ftp sent PROT P at login; turn protection off behind its back is refused, so
  // check the clear-data refusal on a fresh raw TLS session that never sent PROT.
  const raw = await tlsSession(srv.port, ca);
  t.teardown(() => raw.close());
  t.regex(await raw.send('USER alice'), /^331/);
  t.regex(await raw.send('PASS alice-pw'), /^230/);
  t.regex(await raw.send('EPSV'), /^229/);
  t.regex(await raw.send('LIST'), /^521 /);
});

test('the AUTH TLS race: AUTH TLS and the ClientHello in one TCP segment, 50 times: every handshake succeeds', async (t) => {
  const { srv, ca } = await ftpsServer(t);
  let ok = 0;
  for (let i = 0; i < 50; i++) {
    const session = await tlsSession(srv.port, ca, { pipelineHello: true });
    if (/^230/.test(await session.send('USER alice').then(() => session.send('PASS alice-pw')))) ok++;
    session.close();
  }
  t.is(ok, 50);
});

test('a client that does not trust the certificate fails the handshake (basic-ftp, default verification)', async (t) => {
  const { srv } = await ftpsServer(t);
  const client = new Client(10_000);
  t.teardown(() => client.close());
  const err = await t.throwsAsync(client.access({ host: '127.0.0.1', port: srv.port, user: 'alice', password: 'alice-pw', secure: true }));
  t.regex(String(err?.message), /self[- ]signed|unable to verify|certificate/i);
});

test('FEAT offers AUTH TLS, PBSZ, PROT when TLS is on; STAT shows the TLS of the session', async (t) => {
  const { srv, ca } = await ftpsServer(t);
  const raw = await tlsSession(srv.port, ca);
  t.teardown(() => raw.close());
  await raw.send('USER alice');
  await raw.send('PASS alice-pw');
  const stat = await raw.send('STAT');
  t.regex(stat, /Control connection: TLS \(TLSv1\.[23] /);
  const plain = await rawLine(srv.port);
  t.teardown(() => plain.close());
  const feat = await plain.send('FEAT');
  for (const f of ['AUTH TLS', 'PBSZ', 'PROT']) t.true(feat.split('\r\n').some((l) => l.trim() === f), `${f} in ${feat}`);
});

/** A plaintext control connection that sends one line and returns the complete reply. */
async function rawLine(port: number): Promise<{ send(line: string): Promise<string>; close(): void }> {
  const socket = connect({ host: '127.0.0.1', port });
  const read = replyReader(socket);
  await read();
  return { send: (line) => (socket.write(`${line}\r\n`), read()), close: () => socket.destroy() };
}

/**
 * An explicit-FTPS control session over raw sockets. With `pipelineHello`, `AUTH TLS\r\n`
 * and the TLS ClientHello go out in one write (one TCP segment), and the plaintext `234`
 * is taken off the stream before TLS sees it.
 */
async function tlsSession(port: number, ca: string, options: { pipelineHello?: boolean } = {}): Promise<{ socket: TLSSocket; send(line: string): Promise<string>; next(): Promise<string>; close(): void }> {
  const socket = connect({ host: '127.0.0.1', port });
  socket.setNoDelay(true);
  const greeting = replyReader(socket);
  await greeting();
  socket.removeAllListeners('data');
  let secure: TLSSocket;
  if (options.pipelineHello) {
    let first = true;
    let plainReply = '';
    const duplex = new Duplex({
      write(chunk: Buffer, _enc, cb) {
        if (first) {
          first = false;
          socket.write(Buffer.concat([Buffer.from('AUTH TLS\r\n'), chunk]), cb);
        } else socket.write(chunk, cb);
      },
      read() {},
      final(cb) {
        socket.end();
        cb();
      },
    });
    socket.on('data', (d: Buffer) => {
      if (plainReply.endsWith('\r\n')) return void duplex.push(d);
      const text = d.toString('latin1');
      const end = text.indexOf('\r\n');
      plainReply += end === -1 ? text : text.slice(0, end + 2);
      if (end !== -1 && !plainReply.startsWith('234')) throw new Error(`AUTH TLS: ${plainReply}`);
      if (end !== -1 && end + 2 < d.length) duplex.push(d.subarray(end + 2));
    });
    socket.on('close', () => duplex.push(null));
    secure = tlsConnect({ socket: duplex as unknown as Socket, ca, servername: 'localhost' });
  } else {
    const auth = replyReader(socket);
    socket.write('AUTH TLS\r\n');
    const reply = await auth();
    if (!reply.startsWith('234')) throw new Error(`AUTH TLS: ${reply}`);
    socket.removeAllListeners('data');
    secure = tlsConnect({ socket, ca, servername: 'localhost' });
  }
  await new Promise<void>((resolve, reject) => {
    secure.once('secureConnect', () => resolve());
    secure.once('error', reject);
  });
  const read = replyReader(secure);
  return { socket: secure, send: (line) => (secure.write(`${line}\r\n`), read()), next: read, close: () => (secure.destroy(), socket.destroy()) };
}

/** Returns a function that resolves with the next complete reply (multi-line aware). */
function replyReader(socket: Socket | TLSSocket): () => Promise<string> {
  let buffer = '';
  let waiting: ((reply: string) => void) | undefined;
  const take = () => {
    const m = /^(\d{3}) .*\r\n/m.exec(buffer);
    if (!m || !waiting) return;
    const end = m.index + m[0].length;
    const reply = buffer.slice(0, end);
    buffer = buffer.slice(end);
    const w = waiting;
    waiting = undefined;
    w(reply);
  };
  socket.on('data', (d: Buffer) => {
    buffer += d.toString('utf8');
    take();
  });
  return () =>
    new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no reply within ${REPLY_MS} ms (got ${JSON.stringify(buffer)})`)), REPLY_MS);
      waiting = (r) => {
        clearTimeout(timer);
        resolve(r);
      };
      take();
    });
}
