import test from 'ava';
import { Readable } from 'node:stream';
import { auditRecords } from './helpers/logFiles.js';
import { RawFtp, REPLY_MS } from './helpers/rawFtp.js';
import { rawRetr, rawUpload, startRawTransfer, writeData } from './helpers/dataTransfer.js';
import { scrape } from './helpers/adminHttp.js';
import { parseSamples, sampleValue } from './helpers/promText.js';
import { freePort, pollUntil, sink } from './helpers/serverProcess.js';
import { startTestServer, type TestServer } from './helpers/testServer.js';

/**
 * /metrics after known work: every counter and gauge must say exactly what happened
 * (logins, transfers by direction and result, bytes, histograms, reply classes, passive
 * ports, bans, quotas), read from a real server's admin listener.
 */

const ADMIN = { adminListen: '127.0.0.1:0' } as const;

async function serverWithAdmin(t: { teardown(fn: () => Promise<void>): void }, options: Parameters<typeof startTestServer>[0] = {}): Promise<TestServer> {
  const ts = await startTestServer({ ...options, config: { ...ADMIN, ...options.config } });
  t.teardown(() => ts.stop());
  return ts;
}

/** Scrapes until `check` holds for the exposition (bounded); returns the last one. */
async function scrapeUntil(ts: TestServer, check: (text: string) => boolean, timeoutMs = 10_000): Promise<string> {
  let last = '';
  await pollUntil(async () => check((last = await scrape(ts.server))), timeoutMs, 50);
  return last;
}

test('every DFOS metric is exposed from the start, with its label sets at 0', async (t) => {
  const ts = await serverWithAdmin(t);
  const text = await scrape(ts.server);
  for (const result of ['ok', 'failed']) t.is(sampleValue(text, 'dfos_logins_total', { result }), 0, result);
  for (const direction of ['upload', 'download']) {
    for (const result of ['ok', 'failed', 'aborted']) t.is(sampleValue(text, 'dfos_transfers_total', { direction, result }), 0, `${direction} ${result}`);
    t.is(sampleValue(text, 'dfos_transfer_bytes_total', { direction }), 0);
    t.is(sampleValue(text, 'dfos_transfer_duration_seconds_count', { direction }), 0);
    t.is(sampleValue(text, 'dfos_transfer_size_bytes_count', { direction }), 0);
  }
  for (const cls of ['1xx', '2xx', '3xx', '4xx', '5xx']) t.is(sampleValue(text, 'dfos_replies_total', { class: cls }), 0, cls);
  t.is(sampleValue(text, 'dfos_sessions'), 0);
  t.is(sampleValue(text, 'dfos_transfers_in_progress'), 0);
  t.is(sampleValue(text, 'dfos_passive_ports_in_use'), 0);
  t.is(sampleValue(text, 'dfos_passive_ports_range_size'), 0, 'pasv 0-0: the system picks any port');
  t.is(sampleValue(text, 'dfos_passive_ports_exhausted_total'), 0);
  t.is(sampleValue(text, 'dfos_bans_active'), 0);
  t.is(sampleValue(text, 'dfos_bans_total'), 0);
  // The default process metrics keep their usual names.
  for (const [name, type] of [
    ['process_cpu_seconds_total', 'counter'],
    ['process_resident_memory_bytes', 'gauge'],
    ['nodejs_eventloop_lag_seconds', 'gauge'],
    ['nodejs_gc_duration_seconds', 'histogram'],
  ]) {
    t.true(text.includes(`\n# TYPE ${name} ${type}\n`), name);
  }
  // No per-file or per-address label anywhere.
  const labels = new Set(parseSamples(text).flatMap((s) => Object.keys(s.labels)));
  for (const forbidden of ['path', 'file', 'client', 'ip', 'address', 'session']) t.false(labels.has(forbidden), forbidden);
});

test('logins, transfers, bytes and histograms after known transfers', async (t) => {
  const ts = await serverWithAdmin(t);
  const client = await ts.client('alice', 'alice-pw');
  await client.uploadFrom(Readable.from([Buffer.alloc(1000, 'a')]), 'small.bin');
  await client.uploadFrom(Readable.from([Buffer.alloc(3000, 'b')]), 'larger.bin');
  const s = sink();
  await client.downloadTo(s.stream, 'small.bin');
  t.is(s.bytes().length, 1000);
  await t.throwsAsync(client.downloadTo(sink().stream, 'missing.bin'));
  const wrong = await RawFtp.connect(ts.port);
  await wrong.command('USER bob');
  t.is((await wrong.command('PASS wrong', REPLY_MS)).code, 530);
  wrong.close();
  // An upload the client aborts.
  const raw = await RawFtp.login(ts.port, 'bob', 'bob-pw');
  t.teardown(() => raw.close());
  const { data } = await startRawTransfer(raw, 'STOR', 'cut.bin');
  await writeData(data, Buffer.alloc(500, 'c'));
  raw.write('ABOR\r\n');
  t.is((await raw.read(REPLY_MS)).code, 426);
  t.is((await raw.read(REPLY_MS)).code, 226);

  const text = await scrapeUntil(ts, (x) => sampleValue(x, 'dfos_sessions') === 2);
  // The audit line is written after the 226 and reaches the file up to 10 ms later.
  const aborted = await auditRecords(ts.logDir, (r) => r.action === 'upload' && r.result === 'aborted');
  t.is(aborted.length, 1, 'the audit trail has the aborted upload');
  t.is(sampleValue(text, 'dfos_logins_total', { result: 'ok' }), 2);
  t.is(sampleValue(text, 'dfos_logins_total', { result: 'failed' }), 1);
  t.is(sampleValue(text, 'dfos_transfers_total', { direction: 'upload', result: 'ok' }), 2);
  t.is(sampleValue(text, 'dfos_transfers_total', { direction: 'upload', result: 'aborted' }), 1);
  t.is(sampleValue(text, 'dfos_transfers_total', { direction: 'upload', result: 'failed' }), 0);
  t.is(sampleValue(text, 'dfos_transfers_total', { direction: 'download', result: 'ok' }), 1);
  t.is(sampleValue(text, 'dfos_transfers_total', { direction: 'download', result: 'failed' }), 1, 'RETR of a missing file');
  const abortedBytes = Number(aborted[0]?.bytes ?? 0);
  t.is(sampleValue(text, 'dfos_transfer_bytes_total', { direction: 'upload' }), 4000 + abortedBytes, 'every byte received, the aborted upload\'s too');
  t.is(sampleValue(text, 'dfos_transfer_bytes_total', { direction: 'download' }), 1000);
  // Histograms hold successful transfers only.
  t.is(sampleValue(text, 'dfos_transfer_size_bytes_count', { direction: 'upload' }), 2);
  t.is(sampleValue(text, 'dfos_transfer_size_bytes_sum', { direction: 'upload' }), 4000);
  t.is(sampleValue(text, 'dfos_transfer_size_bytes_bucket', { direction: 'upload', le: '1024' }), 1);
  t.is(sampleValue(text, 'dfos_transfer_size_bytes_bucket', { direction: 'upload', le: '4096' }), 2);
  t.is(sampleValue(text, 'dfos_transfer_size_bytes_count', { direction: 'download' }), 1);
  t.is(sampleValue(text, 'dfos_transfer_duration_seconds_count', { direction: 'upload' }), 2);
  t.is(sampleValue(text, 'dfos_transfer_duration_seconds_count', { direction: 'download' }), 1);
  const durationSum = sampleValue(text, 'dfos_transfer_duration_seconds_sum', { direction: 'upload' })!;
  t.true(durationSum >= 0 && durationSum < 30, `upload duration sum ${durationSum} s`);
  t.is(sampleValue(text, 'dfos_transfer_duration_seconds_bucket', { direction: 'upload', le: '+Inf' }), 2);
});

test('replies are counted by class, exactly', async (t) => {
  const ts = await serverWithAdmin(t);
  const raw = await RawFtp.connect(ts.port); // 220
  t.teardown(() => raw.close());
  const before = await scrapeUntil(ts, (x) => sampleValue(x, 'dfos_replies_total', { class: '2xx' }) === 1);
  const count = (text: string, cls: string) => sampleValue(text, 'dfos_replies_total', { class: cls })!;
  t.is((await raw.command('USER alice')).code, 331);
  t.is((await raw.command('PASS alice-pw', REPLY_MS)).code, 230);
  t.is((await raw.command('NOOP')).code, 200);
  t.is((await raw.command('XFOO')).code, 502);
  t.is((await rawUpload(raw, 'STOR up.txt', 'hello')).code, 226); // 229, 150, 226
  t.is((await raw.command('RETR up.txt')).code, 425, 'no data connection set up');
  t.is((await rawRetr(raw, 'nothing.txt')).code, 550); // 229, 550
  const after = await scrape(ts.server);
  t.is(count(after, '1xx') - count(before, '1xx'), 1);
  t.is(count(after, '2xx') - count(before, '2xx'), 5);
  t.is(count(after, '3xx') - count(before, '3xx'), 1);
  t.is(count(after, '4xx') - count(before, '4xx'), 1);
  t.is(count(after, '5xx') - count(before, '5xx'), 2);
});

test('passive ports: in use while a listener waits, the range size, and refusals when it is full', async (t) => {
  const port = await freePort();
  const ts = await serverWithAdmin(t, { config: { pasvMin: port, pasvMax: port } });
  const first = await RawFtp.login(ts.port, 'alice', 'alice-pw');
  const second = await RawFtp.login(ts.port, 'bob', 'bob-pw');
  t.teardown(() => (first.close(), second.close()));
  t.is((await first.command('EPSV')).code, 229);
  t.is((await second.command('EPSV')).code, 425, 'the one-port range is taken');
  let text = await scrape(ts.server);
  t.is(sampleValue(text, 'dfos_passive_ports_in_use'), 1);
  t.is(sampleValue(text, 'dfos_passive_ports_range_size'), 1);
  t.is(sampleValue(text, 'dfos_passive_ports_exhausted_total'), 1);
  t.is(sampleValue(text, 'dfos_sessions'), 2);
  // A running transfer: its listener is closed once the data connection arrived.
  const { data } = await startRawTransfer(first, 'STOR', 'slow.bin');
  text = await scrapeUntil(ts, (x) => sampleValue(x, 'dfos_passive_ports_in_use') === 0);
  t.is(sampleValue(text, 'dfos_transfers_in_progress'), 1);
  data.end('done');
  t.is((await first.read(REPLY_MS)).code, 226);
  text = await scrape(ts.server);
  t.is(sampleValue(text, 'dfos_transfers_in_progress'), 0);
  t.is(sampleValue(text, 'dfos_passive_ports_in_use'), 0);
});

test('bans: active and total after the threshold, and the 421 refusals counted as 4xx', async (t) => {
  const ts = await serverWithAdmin(t, { config: { banThreshold: 2, banWindow: 60, banTime: 60 } });
  const raw = await RawFtp.connect(ts.port);
  t.teardown(() => raw.close());
  for (let i = 0; i < 2; i++) {
    await raw.command('USER alice');
    t.is((await raw.command('PASS wrong', REPLY_MS)).code, 530);
  }
  const text = await scrapeUntil(ts, (x) => sampleValue(x, 'dfos_bans_active') === 1);
  t.is(sampleValue(text, 'dfos_bans_total'), 1);
  t.is(sampleValue(text, 'dfos_logins_total', { result: 'failed' }), 2);
  t.true(sampleValue(text, 'dfos_replies_total', { class: '4xx' })! >= 1, 'the banned connection got 421');
});

test('quotas: limit and usage per user with a quota, none for users without', async (t) => {
  const ts = await serverWithAdmin(t, {
    users: [
      { name: 'carol', password: 'carol-pw', quotaBytes: 1024 * 1024, quotaFiles: 10 },
      { name: 'alice', password: 'alice-pw' },
    ],
  });
  let text = await scrape(ts.server);
  t.is(sampleValue(text, 'dfos_quota_limit_bytes', { user: 'carol' }), 1024 * 1024);
  t.is(sampleValue(text, 'dfos_quota_limit_files', { user: 'carol' }), 10);
  t.is(sampleValue(text, 'dfos_quota_used_bytes', { user: 'carol' }), undefined, 'not measured before the first login');
  t.false(parseSamples(text).some((s) => s.labels.user === 'alice'), 'alice has no quota');
  const carol = await ts.client('carol', 'carol-pw');
  await carol.uploadFrom(Readable.from([Buffer.alloc(5000, 'q')]), 'q.bin');
  text = await scrapeUntil(ts, (x) => sampleValue(x, 'dfos_quota_used_bytes', { user: 'carol' }) === 5000);
  t.is(sampleValue(text, 'dfos_quota_used_bytes', { user: 'carol' }), 5000);
  t.is(sampleValue(text, 'dfos_quota_used_files', { user: 'carol' }), 1);
});
