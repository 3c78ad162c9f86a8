import test from 'ava';
import type { Socket } from 'node:net';
import { firstLine } from './helpers/controlProbe.js';
import { auditRecords } from './helpers/logFiles.js';
import { RawFtp, REPLY_MS } from './helpers/rawFtp.js';
import { spawnServer } from './helpers/serverProcess.js';
import { startTestServer } from './helpers/testServer.js';

/**
 * Issue 11, item 2: connection caps. Past the server's cap or the per-address cap a new
 * connection gets 421 before any greeting and is closed; past a user's own cap the login
 * gets 421. Other addresses (127.0.0.2 is loopback too) are not affected by one address's
 * cap.
 */

test('--max-sessions-per-ip: the next connection from that address gets 421 before the greeting; another address still connects; a freed slot is reusable', async (t) => {
  const srv = await startTestServer({ config: { maxSessionsPerIp: 2 } });
  t.teardown(() => srv.stop());
  const open = [await firstLine(srv.port), await firstLine(srv.port)];
  t.teardown(() => open.forEach((o) => o.socket.destroy()));
  for (const o of open) t.regex(o.line, /^220 /);
  const third = await firstLine(srv.port);
  t.teardown(() => third.socket.destroy());
  t.regex(third.line, /^421 Too many connections from your address \(2 allowed\)/);
  const closed = await new Promise<boolean>((resolve) => {
    third.socket.once('close', () => resolve(true));
    setTimeout(() => resolve(false), REPLY_MS);
  });
  t.true(closed, 'the refused connection is closed');
  const other = await firstLine(srv.port, '127.0.0.2');
  t.teardown(() => other.socket.destroy());
  t.regex(other.line, /^220 /, 'another address is not limited by this one');
  open[0]!.socket.destroy();
  await new Promise((r) => setTimeout(r, 200));
  const again = await firstLine(srv.port);
  t.teardown(() => again.socket.destroy());
  t.regex(again.line, /^220 /, 'a closed connection frees its slot');
});

test('--max-sessions: past the server cap every address gets 421 before the greeting', async (t) => {
  const srv = await startTestServer({ config: { maxSessions: 2 } });
  t.teardown(() => srv.stop());
  const a = await firstLine(srv.port);
  const b = await firstLine(srv.port, '127.0.0.2');
  const c = await firstLine(srv.port, '127.0.0.3');
  t.teardown(() => [a, b, c].forEach((o) => o.socket.destroy()));
  t.regex(a.line, /^220 /);
  t.regex(b.line, /^220 /);
  t.regex(c.line, /^421 Too many connections \(the server allows 2\)/);
});

test('"maxSessions" of a user: the login past it gets 421 and is audited; other users log in', async (t) => {
  const srv = await startTestServer({
    users: [
      { name: 'alice', password: 'alice-pw', maxSessions: 1 },
      { name: 'bob', password: 'bob-pw' },
    ],
  });
  t.teardown(() => srv.stop());
  await srv.client('alice');
  const err = await t.throwsAsync(srv.client('alice'));
  t.regex(String(err?.message), /421 Too many sessions for this user \(1 allowed\)/);
  await t.notThrowsAsync(srv.client('bob'));
  const [refused] = await auditRecords(srv.logDir, (e) => e.action === 'login' && e.result === 'failed' && e.user === 'alice');
  t.is(refused?.code, 421);
  t.is(refused?.reason, 'session limit (1)');
});

test('the caps are on by default (1000 in all, 50 per address) and the flags are validated', async (t) => {
  const proc = await spawnServer();
  t.teardown(() => proc.cleanup());
  const sockets: Socket[] = [];
  t.teardown(() => sockets.forEach((s) => s.destroy()));
  for (let i = 0; i < 50; i++) {
    const o = await firstLine(proc.port);
    sockets.push(o.socket);
    if (!o.line.startsWith('220')) return t.fail(`connection ${i + 1}: ${o.line}`);
  }
  const over = await firstLine(proc.port);
  sockets.push(over.socket);
  t.regex(over.line, /^421 Too many connections from your address \(50 allowed\)/);
  const bad = await spawnServer({ args: ['--max-sessions-per-ip', 'x'], noWait: true });
  t.teardown(() => bad.cleanup());
  const exit = await bad.waitExit(20_000);
  t.is(exit.code, 2);
  t.regex(bad.stderr(), /--max-sessions-per-ip must be a whole number/);
});

test('--max-login-attempts: after that many failed logins on one connection it gets 421 and is closed; a right password before that works', async (t) => {
  const srv = await startTestServer({ config: { maxLoginAttempts: 3 } });
  t.teardown(() => srv.stop());
  const raw = await RawFtp.connect(srv.port);
  t.teardown(() => raw.close());
  for (let i = 1; i <= 2; i++) {
    t.is((await raw.command('USER alice', REPLY_MS)).code, 331);
    t.is((await raw.command('PASS wrong', REPLY_MS)).code, 530, `attempt ${i}`);
  }
  t.is((await raw.command('USER alice', REPLY_MS)).code, 331);
  const third = await raw.command('PASS wrong', REPLY_MS);
  t.is(third.code, 530);
  const closing = await raw.read(REPLY_MS);
  t.regex(closing.raw, /^421 Too many failed logins \(3\)/);
  await raw.waitClosed(REPLY_MS);
  t.true(raw.closed);
  // Two failures, then the right password: logged in.
  const other = await RawFtp.connect(srv.port);
  t.teardown(() => other.close());
  for (let i = 0; i < 2; i++) {
    await other.command('USER alice', REPLY_MS);
    await other.command('PASS wrong', REPLY_MS);
  }
  await other.command('USER alice', REPLY_MS);
  t.is((await other.command('PASS alice-pw', REPLY_MS)).code, 230);
});
