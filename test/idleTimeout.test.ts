import test from 'ava';

// Serial: server and client share this process, and these tests time the 1 s idle timeout;
// the big transfers of one test must not stall the event loop of another.
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { RawFtp } from './helpers/rawFtp.js';
import { startTestServer, type TestServer } from './helpers/testServer.js';
import type { ServerConfigInput } from '../src/config/serverConfig.js';
import { tolerateLateLogs } from './helpers/serverProcess.js';
import { auditLog } from './helpers/logFiles.js';
import { readToEnd, startRawTransfer, writeData } from './helpers/dataTransfer.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

async function server(t: { teardown(fn: () => unknown): void }, config: ServerConfigInput = { idleTimeout: 1 }): Promise<TestServer> {
  const srv = await startTestServer({ config });
  t.teardown(() => srv.stop());
  tolerateLateLogs(srv.server);
  return srv;
}

/**
 * Connects, logs in and runs `setup` (e.g. starts a transfer), retrying the whole sequence
 * if the session is cut on the way. Server and client share this process, so on a loaded
 * machine a stall between two setup commands can exceed the 1 s idle timeout; and the
 * server currently starts the idle timer when a command arrives, not when it is answered
 * (see the last test), so a slow first scrypt check eats into it too. Successful checks
 * are cached: a login is accepted once PASS is answered quickly (or on the last attempt).
 */
async function session<T = undefined>(
  port: number,
  setup: (raw: RawFtp) => Promise<T> = async () => undefined as T,
): Promise<{ raw: RawFtp; passSentAt: number; value: T }> {
  let last = '';
  for (let attempt = 0; attempt < 5; attempt++) {
    const raw = await RawFtp.connect(port);
    try {
      const u = await raw.command('USER alice');
      if (u.code !== 331) throw new Error(`USER: ${u.raw}`);
      const passSentAt = Date.now();
      const p = await raw.command('PASS alice-pw');
      if (p.code !== 230) throw new Error(`PASS: ${p.raw}`);
      if (Date.now() - passSentAt > 250 && attempt < 4) throw new Error('slow login (first scrypt check)');
      return { raw, passSentAt, value: await setup(raw) };
    } catch (err) {
      last = (err as Error).message;
      raw.close();
    }
  }
  throw new Error(`could not set up a session: ${last}`);
}

test.serial('an idle logged-in control connection gets 421 after about the idle timeout (1 s) and is closed', async (t) => {
  const srv = await server(t);
  const { raw, passSentAt } = await session(srv.port);
  t.teardown(() => raw.close());
  const reply = await raw.read(5000);
  const elapsed = Date.now() - passSentAt;
  t.is(reply.code, 421, reply.raw);
  t.true(elapsed >= 900 && elapsed <= 4000, `421 ${elapsed} ms after the last command, expected about 1000`);
  await raw.waitClosed(2000);
  // The audit trail says how the session ended (the file is written asynchronously).
  let logout: Record<string, unknown> | undefined;
  for (let i = 0; i < 50 && !logout; i++) {
    logout = (await auditLog(srv.logDir).catch(() => [])).find((r) => r.action === 'logout');
    if (!logout) await new Promise((r) => setTimeout(r, 100));
  }
  t.is(logout?.code, 421, JSON.stringify(logout));
  t.regex(String(logout?.reason), /^Idle timeout/);
});

test.serial('an idle connection that never logged in also gets 421 after the idle timeout', async (t) => {
  const srv = await server(t);
  const raw = await RawFtp.connect(srv.port);
  t.teardown(() => raw.close());
  const reply = await raw.read(4000);
  t.is(reply.code, 421, reply.raw);
  await raw.waitClosed(2000);
});

test.serial('defect 19: a download lasting longer than the idle timeout is not cut and gets 226', async (t) => {
  const srv = await server(t);
  // 24 MiB (more than loopback socket buffers hold), made cheaply from a 1 MiB random block.
  const big = Buffer.concat(Array.from({ length: 24 }, () => randomBytes(1024 * 1024)));
  await mkdir(join(srv.storage, 'alice'), { recursive: true });
  await writeFile(join(srv.storage, 'alice', 'big.bin'), big);
  const { raw, value: transfer } = await session(srv.port, (r) => startRawTransfer(r, 'RETR', 'big.bin'));
  t.teardown(() => raw.close());
  const { data } = transfer;
  data.pause();
  // A slow reader: nothing read for 2.5 idle timeouts; then a few slow sips.
  await sleep(2500);
  t.false(raw.closed, 'the control connection must stay open during the transfer');
  t.is(raw.pending, '', 'no 421 (and no 226 yet) while the transfer runs');
  const received = readToEnd(data);
  for (let i = 0; i < 3; i++) {
    data.resume();
    await sleep(20);
    data.pause();
    await sleep(150);
  }
  data.resume();
  const got = await received;
  t.is(got.length, big.length);
  t.is(sha(got), sha(big));
  const done = await raw.read(5000);
  t.is(done.code, 226, done.raw);
  // The session is still usable, and the idle timer runs again afterwards.
  t.is((await raw.command('NOOP')).code, 200);
  const idle = await raw.read(4000);
  t.is(idle.code, 421, idle.raw);
});

test.serial('defect 19: an upload lasting longer than the idle timeout (slow writer) is not cut and gets 226', async (t) => {
  const srv = await server(t);
  const { raw, value: transfer } = await session(srv.port, (r) => startRawTransfer(r, 'STOR', 'slow.bin'));
  t.teardown(() => raw.close());
  const { data } = transfer;
  const sent: Buffer[] = [];
  for (let i = 0; i < 10; i++) {
    const c = randomBytes(16 * 1024);
    sent.push(c);
    await writeData(data, c);
    await sleep(250);
  }
  t.false(raw.closed);
  t.is(raw.pending, '');
  data.end();
  const done = await raw.read(5000);
  t.is(done.code, 226, done.raw);
  t.is(sha(await readFile(join(srv.storage, 'alice', 'slow.bin'))), sha(Buffer.concat(sent)));
});

test.serial('a NOOP every 0.5 s keeps the session alive past twice the idle timeout', async (t) => {
  const srv = await server(t);
  const { raw } = await session(srv.port);
  t.teardown(() => raw.close());
  for (let i = 0; i < 5; i++) {
    await sleep(500);
    const r = await raw.command('NOOP');
    t.is(r.code, 200, r.raw);
  }
  t.false(raw.closed);
  // Then silence: the timeout applies again.
  const idle = await raw.read(4000);
  t.is(idle.code, 421, idle.raw);
  await raw.waitClosed(2000);
});

test.serial('the idle timer does not run while a command is being processed (a PASS answered after the idle timeout gets its 530)', async (t) => {
  // The failed-login delay (1.5 s) is longer than the idle timeout (1 s): the session is
  // waiting for the server, not idle.
  const srv = await server(t, { idleTimeout: 1, authFailDelay: 1.5 });
  const raw = await RawFtp.connect(srv.port);
  t.teardown(() => raw.close());
  t.is((await raw.command('USER alice')).code, 331);
  const sentAt = Date.now();
  // Keep the server up until the login handler is done (see the shutdown test on late log records).
  t.teardown(() => sleep(Math.max(0, sentAt + 2000 - Date.now())));
  const reply = await raw.command('PASS wrong-password', 5000).catch((e: Error) => ({ code: 0, raw: e.message }));
  t.is(reply.code, 530, `expected 530 for the wrong password, got ${reply.raw}`);
  // Afterwards the idle timeout applies again.
  const idle = await raw.read(4000).catch((e: Error) => ({ code: 0, raw: e.message }));
  t.is(idle.code, 421, idle.raw);
});

test.serial('login timeout: a connection that keeps sending commands but never logs in gets 421 and is closed', async (t) => {
  const srv = await server(t, { idleTimeout: 300, loginTimeout: 1 });
  const raw = await RawFtp.connect(srv.port);
  t.teardown(() => raw.close());
  const opened = Date.now();
  // Busy but never logged in: NOOP / USER without PASS every 200 ms (bounded: 5 s).
  let reply;
  while (Date.now() - opened < 5000) {
    reply = await raw.command(Date.now() % 2 ? 'NOOP' : 'USER alice').catch(() => undefined);
    if (!reply || reply.code === 421) break;
    await sleep(200);
  }
  if (reply && reply.code !== 421) reply = await raw.read(3000).catch(() => undefined);
  t.is(reply?.code, 421, JSON.stringify(reply?.raw));
  t.regex(reply?.raw ?? '', /Login timeout/);
  await raw.waitClosed(2000);
  // A session that logs in in time is not affected.
  const { raw: logged } = await session(srv.port);
  t.teardown(() => logged.close());
  await sleep(1500);
  t.is((await logged.command('NOOP')).code, 200);
});
