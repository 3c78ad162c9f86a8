import test from 'ava';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { RawFtp } from './helpers/rawFtp.js';
import { startTestServer } from './helpers/testServer.js';
import { sink, spawnServer, stripAnsi, tolerateLateLogs } from './helpers/serverProcess.js';
import { auditLog, dfosLog } from './helpers/logFiles.js';
import { startRawTransfer, writeData } from './helpers/dataTransfer.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const PASSWORD = 'S3cret-Pa55-xyz';
const WRONG = 'Wr0ng-S3cret-Pa55-abc';
/** Substrings of the passwords above that must never reach a log (also split halves). */
const SECRET_PARTS = ['S3cret', 'Pa55', '-xyz', 'Wr0ng'];

/** Logs in with the PASS line split across several TCP writes. */
async function splitLogin(port: number, parts: string[]): Promise<RawFtp> {
  const raw = await RawFtp.connect(port);
  t331(await raw.command('USER alice'));
  for (const part of parts) {
    raw.write(part);
    await sleep(80);
  }
  const r = await raw.read();
  if (r.code !== 230) throw new Error(`split login failed: ${r.raw}`);
  return raw;
}

function t331(r: { code: number; raw: string }): void {
  if (r.code !== 331) throw new Error(`USER: ${r.raw}`);
}

async function allLogText(logDir: string): Promise<string> {
  let text = '';
  for (const name of await readdir(logDir)) text += await readFile(join(logDir, name), 'utf8');
  return text;
}

test('defect 5: dfos.log is JSON lines, audit.log has one record per action, and no password is logged at trace level', async (t) => {
  const srv = await startTestServer({
    users: [
      { name: 'alice', password: PASSWORD },
      { name: 'bob', password: 'bob-pw' },
    ],
    config: { logLevel: 'trace' },
  });
  t.teardown(() => srv.stop());
  tolerateLateLogs(srv.server);

  // Failed logins: wrong password, unknown user.
  const bad = await RawFtp.connect(srv.port);
  t.teardown(() => bad.close());
  t331(await bad.command('USER alice'));
  t.is((await bad.command(`PASS ${WRONG}`)).code, 530);
  t331(await bad.command('USER nobody'));
  t.is((await bad.command(`PASS ${PASSWORD}`)).code, 530);
  bad.close();

  // PASS split across TCP writes (in the password, and in the verb itself).
  const raw = await splitLogin(srv.port, ['PASS S3cret-', 'Pa55-xyz\r\n']);
  t.teardown(() => raw.close());
  const raw2 = await splitLogin(srv.port, ['PA', 'SS S3c', 'ret-Pa5', '5-xyz\r', '\n']);
  t.teardown(() => raw2.close());
  t.is((await raw2.command('QUIT')).code, 221);

  // Actions with basic-ftp.
  const client = await srv.client('alice', PASSWORD);
  await client.uploadFrom(Readable.from([Buffer.from('hello logs\n')]), 'a.txt');
  const s = sink();
  await client.downloadTo(s.stream, 'a.txt');
  t.is(s.bytes().toString(), 'hello logs\n');
  t.is((await raw.command('SITE VIEW a.txt')).code, 200);
  t.is((await client.send('MKD d')).code, 257);
  await client.rename('a.txt', 'd/b.txt');
  await client.remove('d/b.txt');
  // Failed transfers: a missing file, and an upload whose data connection is reset.
  await t.throwsAsync(client.downloadTo(sink().stream, 'missing.txt'));
  const cut = await startRawTransfer(raw, 'STOR', 'cut.bin');
  await writeData(cut.data, Buffer.alloc(4096, 1));
  // Reset while the server is reading (a reset that arrives before the server starts
  // reading is reported by the kernel as a clean end of file).
  await sleep(300);
  cut.data.resetAndDestroy();
  const cutReply = await raw.read(5000);
  t.true(cutReply.code >= 400, cutReply.raw);
  // Logout.
  t.is((await raw.command('QUIT')).code, 221);
  client.close();
  await raw.waitClosed(3000);

  await srv.server.shutdown(3000);

  // dfos.log: JSON lines with level, message and timestamp; trace was really on.
  const lines = (await readFile(join(srv.logDir, 'dfos.log'), 'utf8')).split('\n').filter((l) => l !== '');
  t.true(lines.length > 5);
  for (const line of lines) {
    const rec = JSON.parse(line) as Record<string, unknown>;
    t.is(typeof rec.level, 'string', line);
    t.is(typeof rec.message, 'string', line);
    t.false(Number.isNaN(Date.parse(String(rec.timestamp))), line);
  }
  const log = await dfosLog(srv.logDir);
  t.true(log.some((r) => r.level === 'trace'), 'trace records are written at logLevel trace');

  // audit.log: one JSON object per action.
  const audit = await auditLog(srv.logDir);
  for (const rec of audit) {
    t.false(Number.isNaN(Date.parse(String(rec.timestamp))), JSON.stringify(rec));
    t.is(typeof rec.session, 'string', JSON.stringify(rec));
    t.is(rec.client, '127.0.0.1', JSON.stringify(rec));
    t.is(typeof rec.action, 'string');
    t.true(['ok', 'failed', 'aborted'].includes(String(rec.result)), JSON.stringify(rec));
  }
  const find = (pred: (r: Record<string, unknown>) => boolean, what: string) => {
    const r = audit.find(pred);
    t.truthy(r, `${what} in ${JSON.stringify(audit, null, 1)}`);
    return r ?? {};
  };
  const loginFail = find((r) => r.action === 'login' && r.result === 'failed' && r.user === 'alice', 'failed login (wrong password)');
  t.is(loginFail.code, 530);
  const unknown = find((r) => r.action === 'login' && r.result === 'failed' && r.user === 'nobody', 'failed login (unknown user)');
  t.is(unknown.code, 530);
  const logins = audit.filter((r) => r.action === 'login' && r.result === 'ok');
  t.true(logins.length >= 3, 'three successful logins (two split PASS, one basic-ftp)');
  for (const l of logins) {
    t.is(l.user, 'alice');
    t.is(l.code, 230);
    t.is(typeof l.durationMs, 'number');
  }
  const transfer = (action: string, path: string, result: string) => {
    const r = find((x) => x.action === action && x.path === path && x.result === result, `${action} ${path} ${result}`);
    t.is(r.user, 'alice', JSON.stringify(r));
    t.is(typeof r.durationMs, 'number', JSON.stringify(r));
    t.is(typeof r.code, 'number', JSON.stringify(r));
    return r;
  };
  const upload = transfer('upload', '/a.txt', 'ok');
  t.is(upload.bytes, 11);
  t.is(upload.code, 226);
  const download = transfer('download', '/a.txt', 'ok');
  t.is(download.bytes, 11);
  t.is(download.code, 226);
  const view = find((r) => r.action === 'view' && r.path === '/a.txt', 'view');
  t.is(view.result, 'ok');
  t.is(view.code, 200);
  t.is(view.bytes, 11);
  const mkdir = find((r) => r.action === 'mkdir' && r.path === '/d', 'mkdir');
  t.is(mkdir.result, 'ok');
  t.is(mkdir.code, 257);
  const rename = find((r) => r.action === 'rename', 'rename');
  t.is(rename.result, 'ok');
  t.is(rename.path, '/a.txt');
  t.is(rename.to, '/d/b.txt');
  t.is(typeof rename.code, 'number');
  const del = find((r) => r.action === 'delete' && r.path === '/d/b.txt', 'delete');
  t.is(del.result, 'ok');
  t.is(del.code, 250);
  const missing = transfer('download', '/missing.txt', 'failed');
  t.is(missing.code, 550);
  const cutRec = find((r) => r.action === 'upload' && r.path === '/cut.bin', 'reset upload');
  t.is(cutRec.result, 'failed');
  t.is(cutRec.code, cutReply.code);
  t.is(typeof cutRec.bytes, 'number');
  const logouts = audit.filter((r) => r.action === 'logout' && r.user === 'alice');
  t.true(logouts.length >= 3, `a logout per logged-in session, got ${logouts.length}`);
  for (const l of logouts) {
    t.is(typeof l.durationMs, 'number');
    t.is(typeof l.reason, 'string', `a logout says how the session ended: ${JSON.stringify(l)}`);
  }
  t.true(logouts.filter((l) => l.code === 221 && l.reason === 'QUIT').length >= 2, 'the two QUITs are logged with 221');
  // Every session id of a logout had a login.
  const loginSessions = new Set(logins.map((l) => l.session));
  for (const l of logouts) t.true(loginSessions.has(l.session));

  // No password (or a piece of a split one) anywhere.
  const text = await allLogText(srv.logDir);
  for (const part of SECRET_PARTS) t.false(text.includes(part), `"${part}" found in the logs`);
  t.false(/PASS\s+[^*\s"]/.test(text), 'no PASS argument in clear');
});

for (const level of ['debug', 'trace']) {
test(`defect 5: the CLI console output is human-readable, not JSON, and carries no password (--log-level ${level})`, async (t) => {
  const proc = await spawnServer({ users: [{ name: 'alice', password: PASSWORD }], args: ['--log-level', level] });
  t.teardown(() => proc.cleanup());
  const bad = await RawFtp.connect(proc.port);
  t.teardown(() => bad.close());
  t331(await bad.command('USER alice'));
  t.is((await bad.command(`PASS ${WRONG}`)).code, 530);
  const raw = await splitLogin(proc.port, ['PASS S3cr', 'et-Pa55-xyz\r\n']);
  t.teardown(() => raw.close());
  t.is((await raw.command('NOOP')).code, 200);
  t.is((await raw.command('QUIT')).code, 221);
  bad.close();
  proc.child.kill('SIGTERM');
  t.deepEqual(await proc.waitExit(30_000), { code: 0, signal: null });

  t.false(/\x1b\[/.test(proc.stdout() + proc.stderr()), 'no colour escapes when the console is not a terminal');
  const consoleText = stripAnsi(proc.stdout() + proc.stderr());
  const lines = consoleText.split('\n').filter((l) => l.trim() !== '');
  t.true(lines.length > 5);
  t.true(lines.some((l) => l.includes('DFOS listening')));
  // ftp-srv traces every command and reply: at trace level they must be on the console.
  if (level === 'trace') t.true(lines.some((l) => l.includes(' trace: ')), 'trace lines are printed');
  for (const line of lines) {
    let json = false;
    try {
      json = typeof JSON.parse(line) === 'object';
    } catch {
      json = false;
    }
    t.false(json, `console line is JSON: ${line}`);
    t.regex(line, /^\d{4}-\d\d-\d\dT[\d:.]+Z \w+: /, line);
  }
  for (const part of SECRET_PARTS) {
    t.false(consoleText.includes(part), `"${part}" on the console`);
  }
  const files = await allLogText(proc.logDir);
  for (const part of SECRET_PARTS) t.false(files.includes(part), `"${part}" in the log files`);
});
}
