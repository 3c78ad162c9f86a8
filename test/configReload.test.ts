import test from 'ava';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { Client } from 'basic-ftp';
import { RawFtp } from './helpers/rawFtp.js';
import { makeServerDirs, pollUntil, probeGreeting, spawnServer } from './helpers/serverProcess.js';
import { dfosLog, dfosRecords } from './helpers/logFiles.js';
import { planReload } from '../src/config/configReload.js';
import { parseServerConfig } from '../src/config/serverConfig.js';

/** Issue 12 item 2: SIGHUP re-reads the config file, applies what can change safely and names what needs a restart. */

/** Waits (bounded) for the n-th dfos.log record matching `pred`. */
async function nthRecord(logDir: string, pred: (r: Record<string, unknown>) => boolean, n: number): Promise<Record<string, unknown> | undefined> {
  return pollUntil(async () => (await dfosLog(logDir)).filter(pred)[n - 1], 10_000);
}

test('SIGHUP applies the reloadable keys of an edited config file, names the ones that need a restart, and keeps running on an invalid file', async (t) => {
  t.timeout(90_000);
  const dirs = await makeServerDirs();
  t.teardown(() => rm(dirs.dir, { recursive: true, force: true }));
  const file = join(dirs.dir, 'ops.yaml');
  await writeFile(file, 'max-sessions-per-ip: 1\n');
  const proc = await spawnServer({ dirs, args: ['--config', file] });
  t.teardown(() => proc.cleanup());
  const held = [await RawFtp.connect(proc.port)];
  t.teardown(() => held.forEach((c) => c.close()));
  t.is(await probeGreeting(proc.port), 'no-greeting', 'max-sessions-per-ip: 1 at startup');

  // Reloadable: the per-address cap, the log level, the xferlog. Not: tls, state-dir.
  const xferlog = join(dirs.dir, 'xfer.log');
  await writeFile(file, ['max-sessions-per-ip: 3', 'log-level: trace', `xferlog: ${xferlog}`, 'tls: off', 'state-dir: ./elsewhere', ''].join('\n'));
  proc.child.kill('SIGHUP');
  const reloaded = await nthRecord(proc.logDir, (r) => r.message === 'Config reloaded', 1);
  t.deepEqual([...((reloaded?.applied as string[] | undefined) ?? [])].sort(), ['log-level', 'max-sessions-per-ip', 'xferlog']);
  const restart = await dfosRecords(proc.logDir, (r) => r.level === 'warn' && /restart to apply/.test(String(r.message)));
  t.is(restart.length, 1, 'one warning line for the keys that need a restart');
  t.is(restart[0]?.message, 'config keys tls, state-dir changed; restart to apply');
  held.push(await RawFtp.connect(proc.port), await RawFtp.connect(proc.port));
  t.is(await probeGreeting(proc.port), 'no-greeting', 'the new cap (3) applies to new connections');
  // tls stays on until a restart: AUTH TLS is still offered.
  t.is((await held[1]!.command('AUTH TLS')).code, 234, 'tls keeps its running value');
  t.truthy(await pollUntil(async () => (await dfosLog(proc.logDir)).some((r) => r.level === 'trace'), 5000), 'log-level trace applies');
  held.forEach((c) => c.close());
  held.length = 0;
  // The xferlog is on from now on.
  await pollUntil(async () => (await probeGreeting(proc.port)) === 'greeted', 5000);
  const client = new Client(10_000);
  t.teardown(() => client.close());
  await client.access({ host: '127.0.0.1', port: proc.port, user: 'alice', password: 'alice-pw' });
  await client.uploadFrom(Readable.from([Buffer.from('after reload\n')]), 'r.txt');
  client.close();
  t.regex(await pollUntil(() => readFile(xferlog, 'utf8'), 5000) ?? '', / 13 \/alice\/r\.txt b _ i r alice ftp 0 \* c\n$/);

  // An invalid file: logged as an error naming the problem; the running configuration stays.
  await writeFile(file, 'max-sessions-per-ip: 1\nmax-sesions: 2\n');
  proc.child.kill('SIGHUP');
  const invalid = await nthRecord(proc.logDir, (r) => r.level === 'error' && r.message === 'Config invalid; keeping the running configuration', 1);
  t.is(invalid?.error, 'unknown key `max-sesions` in ' + file + ' line 2; did you mean `max-sessions`?');
  t.true(proc.running());
  const again = [await RawFtp.connect(proc.port), await RawFtp.connect(proc.port)];
  t.teardown(() => again.forEach((c) => c.close()));
  // Closed connections leave the server's count a moment after the client closes them.
  t.truthy(await pollUntil(async () => (await probeGreeting(proc.port)) === 'greeted' || undefined, 5000), 'the cap is still 3');
  again.forEach((c) => c.close());
  proc.child.kill('SIGTERM');
  t.deepEqual(await proc.waitExit(30_000), { code: 0, signal: null });
});

test('planReload: reloadable keys take the new value, the others keep the running one and are named', (t) => {
  const running = parseServerConfig({ port: 2121, maxSessions: 10, banAllow: '10.0.0.0/8' });
  const next = parseServerConfig({ port: 21, maxSessions: 20, banAllow: ['10.0.0.0/8', '192.0.2.0/24'], storage: './other' });
  const plan = planReload(running, next);
  t.deepEqual(plan.applied.sort(), ['banAllow', 'maxSessions']);
  t.deepEqual(plan.needRestart.sort(), ['port', 'storage']);
  t.is(plan.config.port, 2121);
  t.is(plan.config.storage, './server_storage');
  t.is(plan.config.maxSessions, 20);
  t.deepEqual(plan.config.banAllow, ['10.0.0.0/8', '192.0.2.0/24']);
  t.deepEqual(planReload(running, running), { config: running, applied: [], needRestart: [] });
});
