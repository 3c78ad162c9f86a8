import test, { type ExecutionContext } from 'ava';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { socketClosed } from './helpers/interop.js';
import {
  freePortRange,
  loginAt,
  oneReply,
  openSocket,
  parsePasv,
  startServer,
  waitRefused,
} from './helpers/protocolFixtures.js';
import { REPLY_MS, type RawFtp } from './helpers/rawFtp.js';
import type { TestServer } from './helpers/testServer.js';
import { readToEnd } from './helpers/dataTransfer.js';

/**
 * Issue 7, row 3: one user must not be able to block passive mode for everyone. A PASV
 * listener that no transfer command uses is closed after the data-connect timeout
 * (--data-timeout, capped at 30 s), and so is a data connection the client opened but
 * never used; a transfer command after that gets exactly one 425.
 */

/** --data-timeout in seconds: also the data-connect timeout (margin for a loaded machine). */
const DATA_TIMEOUT_S = 2;
/** Bound on waiting for a port to close: the timeout plus ample slack. */
const CLOSE_BOUND_MS = DATA_TIMEOUT_S * 1000 + 10_000;

async function setup(t: ExecutionContext, range: { pasvMin: number; pasvMax: number }): Promise<TestServer> {
  const srv = await startServer({ config: { ...range, dataTimeout: DATA_TIMEOUT_S } });
  t.teardown(() => srv.stop());
  const home = join(srv.storage, 'alice');
  await mkdir(home, { recursive: true });
  await writeFile(join(home, 'f.txt'), 'small file\n');
  return srv;
}

async function login(t: ExecutionContext, srv: TestServer): Promise<RawFtp> {
  const raw = await loginAt(srv.port, srv.host);
  t.teardown(() => raw.close());
  return raw;
}

/** PASV, connect, LIST: the listing must arrive with 150 … 226. */
async function passiveList(t: ExecutionContext, raw: RawFtp, what: string): Promise<void> {
  const pasv = await raw.command('PASV', REPLY_MS);
  t.is(pasv.code, 227, `${what}: PASV: ${pasv.raw}`);
  if (pasv.code !== 227) return;
  const { host, port } = parsePasv(pasv);
  const data = await openSocket(host, port);
  const pre = await raw.command('LIST', REPLY_MS);
  t.is(pre.code, 150, `${what}: LIST: ${pre.raw}`);
  t.regex((await readToEnd(data)).toString(), /f\.txt/, `${what}: the listing arrived`);
  t.is((await raw.read(REPLY_MS)).code, 226, `${what}: LIST completes`);
}

/** Sends PASV on every session at once; returns the replies in session order. */
async function pasvAll(sessions: RawFtp[]) {
  for (const raw of sessions) raw.write('PASV\r\n');
  return Promise.all(sessions.map((raw) => raw.read(REPLY_MS)));
}

test('row 3: sessions that send PASV and never connect free the whole range after the data-connect timeout', async (t) => {
  t.timeout(60_000);
  const range = await freePortRange(3);
  const srv = await setup(t, range);
  const hogs: RawFtp[] = [];
  for (let i = 0; i < 3; i++) hogs.push(await login(t, srv));
  const other = await login(t, srv);
  const all: number[] = [];
  for (let p = range.pasvMin; p <= range.pasvMax; p++) all.push(p);

  // Every session takes one passive port (sent together, so all three are held at once)
  // and the range is full. Nobody probes the ports: a connection from the client's own
  // address would be taken as the data connection and free the port.
  const ports = (await pasvAll(hogs)).map((r) => parsePasv(r).port);
  t.deepEqual([...ports].sort((a, b) => a - b), all, 'the three sessions hold the whole range');
  t.is((await other.command('PASV', REPLY_MS)).code, 425, 'the range is full for another client');

  // Nobody connects: after the data-connect timeout the ports are free again, and another
  // client's PASV succeeds (polled, bounded in count and time).
  const deadline = Date.now() + CLOSE_BOUND_MS;
  let reply = await other.command('PASV', REPLY_MS);
  for (let i = 0; i < 100 && reply.code !== 227 && Date.now() < deadline; i++) {
    await new Promise((r) => setTimeout(r, 200));
    reply = await other.command('PASV', REPLY_MS);
  }
  t.is(reply.code, 227, `another client's PASV after the timeout: ${reply.raw}`);
  await passiveList(t, other, 'another client');

  // A late transfer command on a timed-out session gets exactly one 425 that says what to do.
  const { final, preliminary } = await oneReply(hogs[0]!, 'LIST', { allowPreliminary: true });
  t.is(preliminary, undefined, 'no 150 before the 425');
  t.is(final.code, 425, final.raw);
  t.regex(final.raw, /PASV|EPSV/, 'the 425 says to send PASV/EPSV again');

  // The whole range is usable again, by the same sessions, and a transfer on it works.
  const again = await pasvAll(hogs);
  t.deepEqual(again.map((r) => r.code), [227, 227, 227], 'every timed-out session gets a passive port again');
  const data = await openSocket('127.0.0.1', parsePasv(again[0]!).port);
  t.is((await hogs[0]!.command('LIST', REPLY_MS)).code, 150);
  t.regex((await readToEnd(data)).toString(), /f\.txt/);
  t.is((await hogs[0]!.read(REPLY_MS)).code, 226);
});

test('row 3: a data connection the client opens but never uses is closed after the same timeout', async (t) => {
  t.timeout(60_000);
  const range = await freePortRange(3);
  const srv = await setup(t, range);
  const raw = await login(t, srv);
  const { host, port } = parsePasv(await raw.command('PASV', REPLY_MS));
  const data = await openSocket(host, port);
  t.teardown(() => data.destroy());
  t.true(await socketClosed(data, CLOSE_BOUND_MS), 'the server closed the unused data connection');
  t.is(await waitRefused('127.0.0.1', port, CLOSE_BOUND_MS), 'refused', 'the passive port is closed');
  const { final, preliminary } = await oneReply(raw, 'RETR f.txt', { allowPreliminary: true });
  t.is(preliminary, undefined, 'no 150 before the 425');
  t.is(final.code, 425, final.raw);
  await passiveList(t, raw, 'after the timeout');
});
