import test, { type ExecutionContext } from 'ava';
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import type { Socket } from 'node:net';
import { join } from 'node:path';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { parseServerConfig } from '../src/config/serverConfig.js';
import { V1_MAX_BYTES, V2_MAX_BYTES } from '../src/proxy/proxyHeader.js';
import { rawRetr, rawUpload, readToEnd } from './helpers/dataTransfer.js';
import { auditLog, dfosLog } from './helpers/logFiles.js';
import { activeListener, eprtArgument, parseEpsv, parsePasv } from './helpers/protocolFixtures.js';
import { BALANCER, connectSending, PROXY_VERSIONS, proxiedData, proxiedFtp, proxiedLogin, proxyV1, proxyV2, proxyV2Local } from './helpers/proxyHeader.js';
import { RawFtp, REPLY_MS } from './helpers/rawFtp.js';
import { retained } from './helpers/retainedMemory.js';
import { freePort, pollUntil } from './helpers/serverProcess.js';
import { startTestServer, type TestServer, type TestUser } from './helpers/testServer.js';

/**
 * Issue 13 item 1: PROXY protocol (v1 and v2) from `--trusted-proxies`. The tests play the
 * load balancer: connections from 127.0.0.1 (the trusted proxy) send a header naming a
 * made-up client (203.0.113.7, 2001:db8::7, or a loopback address where the client must
 * really be reachable); 127.0.0.2 is an ordinary, untrusted peer. What is checked: the
 * client's address is the one every rule uses (logs, audit, localOnly, bans, per-address
 * caps, PORT/EPRT, the passive-connection check), and what is refused is cut and logged.
 */

const PROXY = '127.0.0.1';
const OUTSIDER = '127.0.0.2';
const CLIENT_V4 = '203.0.113.7';
const CLIENT_V6 = '2001:db8::7';
const UNTRUSTED = /not in --trusted-proxies/;

/** A server trusting 127.0.0.1 as its load balancer (stopped after the test). */
async function proxyServer(t: ExecutionContext, options: { users?: TestUser[]; config?: Record<string, unknown> } = {}): Promise<TestServer> {
  const srv = await startTestServer({ ...options, config: { trustedProxies: [PROXY], ...options.config } });
  t.teardown(() => srv.stop());
  return srv;
}

/** Everything the server sends until it closes the connection (bounded); rejects if it stays open. */
function untilClosed(socket: Socket, timeoutMs = REPLY_MS): Promise<string> {
  return readToEnd(socket, timeoutMs).then((b) => b.toString('latin1'));
}

/** The dfos.log record with `message` whose fields match `fields` (waits up to 5 s for it). */
async function logLine(srv: TestServer, message: string, fields: Record<string, unknown | RegExp>): Promise<Record<string, unknown> | undefined> {
  const matches = (r: Record<string, unknown>) =>
    r.message === message && Object.entries(fields).every(([k, v]) => (v instanceof RegExp ? v.test(String(r[k])) : r[k] === v));
  return pollUntil(async () => (await dfosLog(srv.logDir)).find(matches), 5000);
}

/** The audit records matching `fields` once there is one (waits up to 5 s). */
async function auditRecords(srv: TestServer, fields: Record<string, unknown>): Promise<Record<string, unknown>[]> {
  const matching = async () => (await auditLog(srv.logDir)).filter((r) => Object.entries(fields).every(([k, v]) => r[k] === v));
  return (await pollUntil(async () => ((await matching()).length > 0 ? matching() : undefined), 5000)) ?? [];
}

for (const version of PROXY_VERSIONS) {
  for (const client of [CLIENT_V4, CLIENT_V6]) {
    test(`${version.name} ${client.includes(':') ? 'TCP6' : 'TCP4'}: audit.log and dfos.log name the client from the header (the proxy beside it), for logins and transfers`, async (t) => {
      const srv = await proxyServer(t);
      const failed = await proxiedFtp(srv.port, client, { header: version.header });
      t.teardown(() => failed.close());
      await failed.command('USER alice');
      t.is((await failed.command('PASS wrong')).code, 530);
      const raw = await proxiedLogin(srv.port, client, 'alice', 'alice-pw', { header: version.header });
      t.teardown(() => raw.close());
      const content = randomBytes(200_000);
      const up = await rawUpload(raw, 'STOR through.bin', content, proxiedData(client, version.header));
      t.is(up.code, 226, up.final.raw);
      const login = await auditRecords(srv, { action: 'login', result: 'ok' });
      t.like(login[0], { user: 'alice', client, proxy: PROXY });
      t.like((await auditRecords(srv, { action: 'upload' }))[0], { client, proxy: PROXY, bytes: content.length });
      t.like((await auditRecords(srv, { action: 'login', result: 'failed' }))[0], { client, proxy: PROXY });
      t.truthy(await logLine(srv, 'Login failed', { client, proxy: PROXY, user: 'alice' }), 'dfos.log names the client and the proxy');
    });
  }
}

test('a localOnly user logs in through the balancer from a loopback client (127.0.0.5) and is refused from 203.0.113.7', async (t) => {
  const srv = await proxyServer(t, { users: [{ name: 'local', password: 'local-pw', localOnly: true }] });
  const inside = await proxiedLogin(srv.port, '127.0.0.5', 'local', 'local-pw', { header: proxyV1 });
  t.teardown(() => inside.close());
  const outside = await proxiedFtp(srv.port, CLIENT_V4);
  t.teardown(() => outside.close());
  await outside.command('USER local');
  t.is((await outside.command('PASS local-pw')).code, 530, 'not from a loopback address, though the proxy is');
  t.like((await auditRecords(srv, { action: 'login', result: 'failed' }))[0], { user: 'local', client: CLIENT_V4, proxy: PROXY });
});

test('per-address caps count the clients the headers name: two clients through one proxy are independent, one client over two connections counts twice', async (t) => {
  const srv = await proxyServer(t, { config: { maxSessionsPerIp: 1 } });
  const first = await proxiedFtp(srv.port, CLIENT_V4);
  t.teardown(() => first.close());
  const other = await proxiedFtp(srv.port, '203.0.113.8', { header: proxyV1 });
  t.teardown(() => other.close());
  const again = await connectSending(srv.port, proxyV2(CLIENT_V4));
  t.regex(await untilClosed(again), /^421 Too many connections from your address \(1 allowed\)/);
  t.truthy(await logLine(srv, 'Connection refused', { client: CLIENT_V4, proxy: PROXY }));
  const direct = await connectSending(srv.port, Buffer.alloc(0), OUTSIDER);
  const greeted = await RawFtp.over(direct);
  t.teardown(() => greeted.close());
  t.pass('a direct client is not counted with the proxied ones');
});

test('a ban earned through the balancer bans the client it named, not the proxy', async (t) => {
  const srv = await proxyServer(t, { config: { banThreshold: 2, banTime: 600 } });
  const bad = '203.0.113.9';
  for (let i = 0; i < 2; i++) {
    const raw = await proxiedFtp(srv.port, bad);
    t.teardown(() => raw.close());
    await raw.command('USER alice');
    t.is((await raw.command('PASS wrong')).code, 530);
  }
  const banned = await pollUntil(() => {
    const ips = srv.server.defender.list().map((b) => b.ip);
    return ips.length > 0 ? ips : undefined;
  }, 5000);
  t.deepEqual(banned, [bad]);
  t.regex(await untilClosed(await connectSending(srv.port, proxyV1(bad))), /^421 Too many failed logins from your address/);
  const neighbour = await proxiedFtp(srv.port, '203.0.113.10');
  t.teardown(() => neighbour.close());
  const health = await RawFtp.over(await connectSending(srv.port, proxyV2Local()));
  t.teardown(() => health.close());
  t.like((await auditRecords(srv, { action: 'ban' }))[0], { client: bad });
});

test('v2 LOCAL (the balancer\'s health check) is a direct connection from the proxy itself', async (t) => {
  const srv = await proxyServer(t);
  const raw = await RawFtp.over(await connectSending(srv.port, proxyV2Local()));
  t.teardown(() => raw.close());
  await raw.command('USER alice');
  t.is((await raw.command('PASS alice-pw')).code, 230);
  t.like((await auditRecords(srv, { action: 'login', result: 'ok' }))[0], { client: PROXY, proxy: PROXY });
});

test('passive data through the balancer (EPSV and PASV, v1 and v2 data headers): bytes intact; a data connection for another client, a direct one from elsewhere, and one from the proxy without a header are refused while the port waits for the right one', async (t) => {
  const srv = await proxyServer(t);
  const raw = await proxiedLogin(srv.port, CLIENT_V4, 'alice', 'alice-pw');
  t.teardown(() => raw.close());
  const content = randomBytes(1024 * 1024 + 7);
  t.is((await rawUpload(raw, 'STOR data.bin', content, proxiedData(CLIENT_V4, proxyV1))).code, 226);
  t.deepEqual(await readFile(join(srv.storage, 'alice', 'data.bin')), content);
  const down = await rawRetr(raw, 'data.bin', proxiedData(CLIENT_V4));
  t.is(down.code, 226);
  t.true(down.bytes.equals(content), 'download intact');

  const epsv = await raw.command('EPSV');
  const port = parseEpsv(epsv);
  const impostor = await connectSending(port, proxyV2('203.0.113.66'));
  t.is(await untilClosed(impostor), '', 'another client through the same proxy is refused');
  const outsider = await connectSending(port, Buffer.alloc(0), OUTSIDER);
  t.is(await untilClosed(outsider), '', 'a direct connection from another address is refused');
  const headerless = await connectSending(port, Buffer.from('not a header'));
  t.is(await untilClosed(headerless), '', 'the proxy without a header is refused');
  t.truthy(await logLine(srv, 'PROXY protocol: data connection refused', { peer: PROXY, reason: /no PROXY header/ }));
  const data = await connectSending(port, proxyV2(CLIENT_V4));
  const received = readToEnd(data);
  t.is((await raw.command('RETR data.bin')).code, 150);
  t.true((await received).equals(content), 'the right client still gets the port');
  t.is((await raw.read(REPLY_MS)).code, 226);

  const pasv = parsePasv(await raw.command('PASV'));
  t.is(pasv.host, BALANCER.v4, 'PASV announces the address the client connected to on the balancer');
  const viaPasv = await connectSending(pasv.port, proxyV2(CLIENT_V4));
  const listed = readToEnd(viaPasv);
  t.is((await raw.command('NLST')).code, 150);
  t.is((await listed).toString().trim(), 'data.bin');
  t.is((await raw.read(REPLY_MS)).code, 226);
});

test('PORT/EPRT go only to the client the header named: not to the proxy\'s address; to the client\'s, the transfer works; a passive connection straight from the client works too', async (t) => {
  const srv = await proxyServer(t);
  await mkdir(join(srv.storage, 'alice'), { recursive: true });
  await writeFile(join(srv.storage, 'alice', 'hello.txt'), 'hello, active client\n');
  const client = '127.0.0.9';
  const raw = await proxiedLogin(srv.port, client, 'alice', 'alice-pw');
  t.teardown(() => raw.close());
  const proxySide = await activeListener(PROXY);
  t.teardown(() => proxySide.close());
  const refused = await raw.command(`EPRT ${eprtArgument(PROXY, proxySide.port)}`);
  t.is(refused.code, 501);
  t.regex(refused.raw, /only to your own address/);
  const own = await activeListener(client);
  t.teardown(() => own.close());
  t.is((await raw.command(`EPRT ${eprtArgument(client, own.port)}`)).code, 200);
  const started = raw.command('RETR hello.txt');
  const data = await own.accepted();
  const bytes = readToEnd(data);
  t.is((await started).code, 150);
  t.is((await bytes).toString(), 'hello, active client\n');
  t.is((await raw.read(REPLY_MS)).code, 226);
  t.is(proxySide.count(), 0, 'nothing went to the proxy');
  const direct = await rawRetr(raw, 'hello.txt', (epsv) => connectSending(parseEpsv(epsv), Buffer.alloc(0), client));
  t.is(direct.bytes.toString(), 'hello, active client\n', 'not through the balancer, but from the client\'s own address');
});

test('a trusted proxy that sends no header is cut without a greeting and logged: at once when it sends something else, after 5 s when it sends nothing', async (t) => {
  const srv = await proxyServer(t);
  const talker = await connectSending(srv.port, Buffer.from('USER alice\r\n'));
  t.is(await untilClosed(talker), '', 'no greeting, no reply');
  t.truthy(await logLine(srv, 'PROXY protocol: connection refused', { peer: PROXY, port: 'control', reason: /sent no PROXY header/ }));
  const started = Date.now();
  const silent = await connectSending(srv.port, Buffer.alloc(0));
  t.is(await untilClosed(silent), '');
  const waited = Date.now() - started;
  t.true(waited >= 4500 && waited < 10_000, `cut after ${waited} ms`);
  t.truthy(await logLine(srv, 'PROXY protocol: connection refused', { peer: PROXY, reason: /no PROXY header within 5 s/ }));
  const check = await connectSending(srv.port, Buffer.alloc(0));
  check.end(); // a plain TCP health check: connect, close
  t.is(await untilClosed(check), '');
  await new Promise((r) => setTimeout(r, 300));
  t.false((await dfosLog(srv.logDir)).some((r) => /closed before/.test(String(r.reason))), 'a health check that closes at once is no warning');
});

test('an untrusted peer that sends a header (v1, v2, v2 split in pieces) gets 421 after the greeting and is closed; no command reply in between; logged', async (t) => {
  const srv = await proxyServer(t);
  for (const header of [proxyV1(CLIENT_V4), proxyV2(CLIENT_V6)]) {
    const socket = await connectSending(srv.port, header, OUTSIDER);
    const text = await untilClosed(socket);
    t.regex(text, /^220 [^\r]*\r\n421 PROXY protocol header refused: this address is not a trusted proxy\r\n$/);
  }
  const split = await connectSending(srv.port, proxyV2(CLIENT_V4).subarray(0, 3), OUTSIDER);
  const text = untilClosed(split);
  await new Promise((r) => setTimeout(r, 200));
  split.write(proxyV2(CLIENT_V4).subarray(3));
  t.regex(await text, /^220 [^\r]*\r\n421 PROXY protocol header refused/, 'the held first bytes (CRLF CRLF) were never run as commands');
  t.truthy(await logLine(srv, 'PROXY protocol: connection refused', { peer: OUTSIDER, port: 'control', reason: UNTRUSTED }));
});

test('an untrusted peer without a header is an ordinary direct client: its own address everywhere, no proxy', async (t) => {
  const srv = await proxyServer(t);
  const raw = await RawFtp.over(await connectSending(srv.port, Buffer.alloc(0), OUTSIDER));
  t.teardown(() => raw.close());
  await raw.command('USER alice');
  t.is((await raw.command('PASS alice-pw')).code, 230);
  const login = (await auditRecords(srv, { action: 'login', result: 'ok' }))[0];
  t.like(login, { client: OUTSIDER });
  t.false(login !== undefined && 'proxy' in login);
});

test('a header split across many TCP writes, and a header with USER and PASS pipelined in the same write', async (t) => {
  const srv = await proxyServer(t);
  const header = proxyV2(CLIENT_V6);
  const socket = await connectSending(srv.port, Buffer.alloc(0));
  for (const byte of header) {
    socket.write(Buffer.from([byte]));
    await new Promise((r) => setTimeout(r, 5));
  }
  const split = await RawFtp.over(socket);
  t.teardown(() => split.close());
  t.is((await split.command('NOOP')).code, 200);

  const pipelined = await RawFtp.over(await connectSending(srv.port, Buffer.concat([proxyV1(CLIENT_V4), Buffer.from('USER alice\r\nPASS alice-pw\r\n')])));
  t.teardown(() => pipelined.close());
  t.is((await pipelined.read()).code, 331);
  t.is((await pipelined.read()).code, 230);
  t.like((await auditRecords(srv, { action: 'login', result: 'ok' }))[0], { client: CLIENT_V4, proxy: PROXY });
});

/** A v2 header for 203.0.113.7 with byte `at` set to `value` (a field made wrong). */
function v2With(at: number, value: number): Buffer {
  const header = Buffer.from(proxyV2(CLIENT_V4));
  header[at] = value;
  return header;
}

const GARBAGE: [string, Buffer, RegExp][] = [
  ['a v1 line with no end', Buffer.from(`PROXY TCP4 ${'A'.repeat(300)}`), new RegExp(`longer than ${V1_MAX_BYTES} bytes`)],
  ['a v1 line ending in a bare LF', Buffer.from(`PROXY TCP4 ${CLIENT_V4} 127.0.0.1 1 2\n`), /CRLF/],
  ['a v1 header whose source is not an address', Buffer.from('PROXY TCP4 not-an-ip 127.0.0.1 1 2\r\n'), /source address/],
  ['a v1 TCP4 header with IPv6 addresses', Buffer.from(`PROXY TCP4 ${CLIENT_V6} ::1 1 2\r\n`), /not an IPv4 address/],
  ['v1 UNKNOWN', Buffer.from('PROXY UNKNOWN\r\n'), /UNKNOWN/],
  ['a v2 header announcing 60,000 bytes', (() => { const h = Buffer.from(proxyV2(CLIENT_V4)).subarray(0, 16); h.writeUInt16BE(60_000, 14); return h; })(), new RegExp(`at most ${V2_MAX_BYTES}`)],
  ['v2 over UDP', v2With(13, 0x12), /transport/],
  ['v2 PROXY with no address family', v2With(13, 0x01), /family UNSPEC/],
  ['PROXY protocol version 3', v2With(12, 0x31), /version 3/],
  ['binary garbage', Buffer.from([0x16, 0x03, 0x01, 0x00, 0xff]), /sent no PROXY header/],
];

test('malformed, oversized or unsupported headers from the trusted proxy are cut without a reply and logged with the reason', async (t) => {
  const srv = await proxyServer(t);
  for (const [what, bytes, reason] of GARBAGE) {
    const socket = await connectSending(srv.port, bytes);
    t.is(await untilClosed(socket, 5000), '', what);
    t.truthy(await logLine(srv, 'PROXY protocol: connection refused', { peer: PROXY, reason }), `${what}: logged`);
  }
  const ok = await proxiedFtp(srv.port, CLIENT_V4);
  t.teardown(() => ok.close());
  t.is((await ok.command('NOOP')).code, 200, 'the server is fine');
});

test('an endless "header" is cut after its size limit while the proxy is still sending', async (t) => {
  const srv = await proxyServer(t);
  const endless = await connectSending(srv.port, Buffer.alloc(0));
  const closed = new Promise<boolean>((resolve) => {
    endless.once('close', () => resolve(true));
    setTimeout(() => resolve(false), 5000);
  });
  // Up to 8 MiB of a v1 "header" that never ends: the server closes after the first read.
  const chunk = Buffer.from(`PROXY ${'A'.repeat(64 * 1024)}`);
  for (let written = 0; written < 8 * 1024 * 1024 && !endless.destroyed; written += chunk.length) {
    if (!endless.write(chunk)) await Promise.race([new Promise((r) => endless.once('drain', r)), closed]);
  }
  t.true(await closed, 'cut while still sending');
  t.truthy(await logLine(srv, 'PROXY protocol: connection refused', { peer: PROXY, reason: new RegExp(`longer than ${V1_MAX_BYTES} bytes`) }));
});

// Serial: the memory it measures is the whole process's, and the other tests' transfers
// (an upload's staging buffers stay allocated for 5 s) would count as held by the flood.
test.serial('a flood of half-headers from the proxy holds little memory, does not stop proxied clients, and is cut after the timeout', async (t) => {
  const srv = await proxyServer(t);
  const count = 150;
  // 2,000 bytes of a v2 header announcing the largest accepted size: each waits with ~2 KiB.
  const header = Buffer.concat([proxyV2(CLIENT_V4).subarray(0, 16), Buffer.alloc(V2_MAX_BYTES - 16)]);
  header.writeUInt16BE(V2_MAX_BYTES - 16, 14);
  const half = header.subarray(0, 2000);
  const before = retained();
  const flood = await Promise.all(Array.from({ length: count }, () => connectSending(srv.port, half)));
  const cut = Promise.all(flood.map((s) => untilClosed(s, 15_000)));
  await new Promise((r) => setTimeout(r, 500));
  const held = retained() - before;
  t.log(`${count} half-headers (both ends in this process): ${Math.round(held / 1024)} KiB retained`);
  t.true(held < 16 * 1024 * 1024, `${Math.round(held / 1024)} KiB retained (bound 16 MiB)`);
  const meanwhile = await proxiedLogin(srv.port, CLIENT_V4, 'alice', 'alice-pw');
  t.teardown(() => meanwhile.close());
  t.true((await cut).every((text) => text === ''), 'each is cut after the timeout, without a reply');
  t.truthy(await logLine(srv, 'PROXY protocol: connection refused', { reason: /incomplete after 5 s/ }));
});

test('implicit TLS port: the header before the ClientHello, then FTPS with a protected (PROT P) data connection through the proxy too; an untrusted peer\'s header is refused there', async (t) => {
  const implicitPort = await freePort();
  const srv = await proxyServer(t, { config: { tls: 'on', implicitTlsPort: implicitPort } });
  const ca = await readFile(join(srv.stateDir, 'tls', 'cert.pem'), 'utf8');
  await mkdir(join(srv.storage, 'alice'), { recursive: true });
  await writeFile(join(srv.storage, 'alice', 'hello.txt'), 'hello over TLS\n');
  const secure = tlsConnect({ socket: await connectSending(implicitPort, proxyV2(CLIENT_V4)), ca, servername: 'localhost' });
  secure.on('error', () => undefined);
  const raw = await RawFtp.over(secure);
  t.teardown(() => raw.close());
  for (const line of ['USER alice', 'PASS alice-pw', 'PBSZ 0', 'PROT P']) t.regex((await raw.command(line)).raw, /^[23]\d\d /, line);
  const port = parseEpsv(await raw.command('EPSV'));
  const data: TLSSocket = tlsConnect({ socket: await connectSending(port, proxyV1(CLIENT_V4)), ca, servername: 'localhost', session: secure.getSession() });
  data.on('error', () => undefined);
  const received = readToEnd(data);
  t.is((await raw.command('RETR hello.txt')).code, 150);
  t.is((await received).toString(), 'hello over TLS\n');
  t.is((await raw.read(REPLY_MS)).code, 226);
  t.like((await auditRecords(srv, { action: 'login', result: 'ok' }))[0], { client: CLIENT_V4, proxy: PROXY });

  const spoof = await connectSending(implicitPort, proxyV2(CLIENT_V4), OUTSIDER);
  t.is(await untilClosed(spoof), '');
  t.truthy(await logLine(srv, 'PROXY protocol: connection refused', { peer: OUTSIDER, port: 'implicit TLS', reason: UNTRUSTED }));
  const direct = tlsConnect({ socket: await connectSending(implicitPort, Buffer.alloc(0), OUTSIDER), ca, servername: 'localhost' });
  direct.on('error', () => undefined);
  const greeted = await RawFtp.over(direct);
  t.teardown(() => greeted.close());
  t.pass('a direct TLS client from an untrusted address is served');
});

test('--trusted-proxies: a comma list or a YAML list of addresses and CIDR ranges; anything else is one line naming the flag', (t) => {
  t.deepEqual(parseServerConfig({ trustedProxies: '10.0.0.5, 192.0.2.0/28,2001:db8::/64' }).trustedProxies, ['10.0.0.5', '192.0.2.0/28', '2001:db8::/64']);
  t.deepEqual(parseServerConfig({ trustedProxies: ['127.0.0.1'] }).trustedProxies, ['127.0.0.1']);
  t.deepEqual(parseServerConfig({}).trustedProxies, [], 'off by default');
  for (const bad of ['haproxy.local', '10.0.0.0/33', '10.0.0.1/8/1']) {
    const err = t.throws(() => parseServerConfig({ trustedProxies: bad }));
    t.regex(String(err?.message), /trusted-proxies must be a comma-separated list/);
  }
});
