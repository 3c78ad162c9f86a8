import test, { type ExecutionContext } from 'ava';
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { Client } from 'basic-ftp';
import { RateShaper, BURST_SECONDS } from '../src/core/RateShaper.js';
import type { ServerConfigInput } from '../src/config/serverConfig.js';
import { formatByteSize } from '../src/util/byteSize.js';
import { collector, runCli, sameBytes } from './helpers/clientFixtures.js';
import { rawList, startRawTransfer } from './helpers/dataTransfer.js';
import { RawFtp, REPLY_MS } from './helpers/rawFtp.js';
import { startTestServer, writeUsersFile, type TestServer, type TestUser } from './helpers/testServer.js';

const CLI = fileURLToPath(new URL('../dist/cli.js', import.meta.url));
const MiB = 1024 * 1024;
const KiB = 1024;

/** Runs `run` and returns its value with the seconds it took. */
async function timed<T>(run: () => Promise<T>): Promise<{ value: T; seconds: number }> {
  const started = performance.now();
  const value = await run();
  return { value, seconds: (performance.now() - started) / 1000 };
}

/** One measured rate: `bytes` in `seconds` against a limit (bytes/s). */
interface Measured {
  what: string;
  bytes: number;
  seconds: number;
  limit: number;
  /** The measurement saw this process stall (a timer far too late): measure once more. */
  stalled?: boolean;
}

/** How far a measured rate is from its limit (0.05: 5% faster). */
const offBy = (m: Measured): number => (m.bytes / m.seconds - m.limit) / m.limit;

function describeRate(m: Measured): string {
  const rate = Math.round(m.bytes / m.seconds);
  return `${m.what}: ${formatByteSize(rate)}/s for a limit of ${formatByteSize(m.limit)}/s (${m.bytes} bytes in ${m.seconds.toFixed(2)} s, ${(offBy(m) * 100).toFixed(1)}%)`;
}

/**
 * Runs `measure` and checks that every rate it reports is within 10% of its limit, logging
 * each for the record. Faster than the limit always fails. Slower (or stalled) gets one
 * more try: a machine busy with other work holds up the server's timers (a stall longer
 * than the bucket's 100 ms loses tokens), which slows any transfer without being a shaping
 * fault.
 */
async function checkRates(t: ExecutionContext, measure: () => Promise<Measured[]>): Promise<void> {
  let rates = await measure();
  if (rates.some((m) => offBy(m) < -0.1 || m.stalled) && rates.every((m) => offBy(m) <= 0.1)) {
    t.log(`slower than the limit (or stalled), measuring once more: ${rates.map(describeRate).join('; ')}`);
    rates = await measure();
  }
  for (const m of rates) {
    t.log(describeRate(m));
    t.true(Math.abs(offBy(m)) <= 0.1, describeRate(m));
  }
}

/** {@link checkRates} for one transfer: `run` moves `bytes` and should take bytes / limit seconds. */
function checkRate(t: ExecutionContext, what: string, bytes: number, limit: number, run: () => Promise<unknown>): Promise<void> {
  return checkRates(t, async () => [{ what, bytes, limit, seconds: (await timed(run)).seconds }]);
}

/** A server with `users` (TLS off unless `config` says); each `files` entry is stored in that user's home beforehand. */
async function bandwidthServer(t: ExecutionContext, users: TestUser[], files: Record<string, Buffer> = {}, config: ServerConfigInput = {}): Promise<TestServer> {
  const srv = await startTestServer({ users, config: { tls: 'off', ...config } });
  t.teardown(() => srv.stop());
  for (const [path, content] of Object.entries(files)) {
    await mkdir(join(srv.storage, path, '..'), { recursive: true });
    await writeFile(join(srv.storage, path), content);
  }
  return srv;
}

/** Downloads `path` into memory; resolves with the bytes. */
async function download(client: Client, path: string): Promise<Buffer> {
  const sink = collector();
  await client.downloadTo(sink, path);
  return sink.bytes();
}

// Serial (run before the others): the server tests' start-ups would hold up its timers.
test.serial('the bucket paces evenly: no long gap between grants, no burst at the start, the rate within 10%', async (t) => {
  const rate = 256 * KiB;
  // A chunk is a quarter of the 100 ms burst: one every 25 ms. Stop-and-go per second would leave ~1 s gaps.
  const chunkMs = (rate * BURST_SECONDS) / 4 / (rate / 1000);
  let longest = 0;
  let early = 0;
  await checkRates(t, async () => {
    const shaper = new RateShaper(undefined, rate);
    const grants: { at: number; bytes: number }[] = [];
    const started = performance.now();
    await shaper.take(768 * KiB, (start, end) => {
      grants.push({ at: performance.now() - started, bytes: end - start });
      return true;
    });
    const seconds = (performance.now() - started) / 1000;
    longest = Math.max(...grants.slice(1).map((g, i) => g.at - grants[i]!.at));
    early = grants.filter((g) => g.at <= 500).reduce((n, g) => n + g.bytes, 0);
    t.log(`${grants.length} grants, one every ${chunkMs} ms; longest gap ${longest.toFixed(1)} ms`);
    return [{ what: 'take(768 KiB)', bytes: 768 * KiB, seconds, limit: rate, stalled: longest >= chunkMs * 4 }];
  });
  t.true(longest < chunkMs * 4, `longest gap ${longest.toFixed(1)} ms`);
  t.true(early <= rate * 0.5 + rate * BURST_SECONDS, `${early} bytes granted in the first 0.5 s`);
});

test.serial('shapers under one cap share it evenly and together keep to it', async (t) => {
  const cap = new RateShaper(undefined, 512 * KiB);
  const own = new RateShaper(cap, 10 * MiB); // its own rate is above the cap: the cap decides
  const none = new RateShaper(cap);
  t.true(none.limited);
  t.false(new RateShaper(new RateShaper()).limited);
  let seconds: number[] = [];
  await checkRates(t, async () => {
    const started = performance.now();
    seconds = await Promise.all([own, none].map(async (s) => {
      await s.take(512 * KiB);
      return (performance.now() - started) / 1000;
    }));
    return [{ what: 'two shapers under a cap, together', bytes: MiB, seconds: Math.max(...seconds), limit: 512 * KiB }];
  });
  t.log(`finished after ${seconds.map((s) => s.toFixed(2)).join(' s and ')} s`);
  t.true(Math.min(...seconds) > 0.8 * Math.max(...seconds), 'neither took the cap for itself');
});

test.serial('a rate lowered while chunks wait (users.json reloaded mid-transfer) slows them, then raised speeds them up; nothing fails', async (t) => {
  const shaper = new RateShaper(undefined, 4 * MiB);
  const started = performance.now();
  const both = Promise.all([shaper.take(1.5 * MiB), shaper.take(1.5 * MiB)]);
  setTimeout(() => shaper.setRate(64 * KiB), 200); // ~0.8 MiB sent by then; the waiting chunks no longer fit
  setTimeout(() => shaper.setRate(8 * MiB), 1200); // 64 KiB more in that second; the rest (~2.1 MiB) in ~0.27 s
  await t.notThrowsAsync(both);
  const seconds = (performance.now() - started) / 1000;
  t.log(`${seconds.toFixed(2)} s`);
  // Without the raise the rest would take half a minute; without the cut, under a second.
  t.true(seconds > 1.3 && seconds < 3, `${seconds.toFixed(2)} s`);
});

test('rateDown: a download runs at the user\'s rate; a user without limits is not slowed', async (t) => {
  const content = randomBytes(3 * MiB);
  const srv = await bandwidthServer(t, [{ name: 'dora', password: 'dora-pw', rateDown: MiB }, { name: 'alice', password: 'alice-pw' }], {
    'dora/big.bin': content,
    'alice/big.bin': content,
  });
  const [dora, alice] = await Promise.all([srv.client('dora'), srv.client('alice')]);
  await checkRate(t, 'RETR at rateDown 1 MiB/s', content.length, MiB, async () => sameBytes(t, await download(dora, 'big.bin'), content));
  const free = await timed(() => download(alice, 'big.bin'));
  sameBytes(t, free.value, content);
  t.log(`unlimited user: ${formatByteSize(Math.round(content.length / free.seconds))}/s`);
});

test('rateUp: an upload runs at the user\'s rate', async (t) => {
  const content = randomBytes(3 * MiB);
  const srv = await bandwidthServer(t, [{ name: 'ulla', password: 'ulla-pw', rateUp: MiB }]);
  const client = await srv.client('ulla');
  await checkRate(t, 'STOR at rateUp 1 MiB/s', content.length, MiB, () => client.uploadFrom(Readable.from([content]), 'up.bin'));
  sameBytes(t, await readFile(join(srv.storage, 'ulla', 'up.bin')), content);
});

test('two sessions of one user share the user\'s rate', async (t) => {
  const content = randomBytes(1.5 * MiB);
  const srv = await bandwidthServer(t, [{ name: 'dora', password: 'dora-pw', rateDown: MiB }], { 'dora/a.bin': content });
  const clients = await Promise.all([srv.client('dora'), srv.client('dora')]);
  let seconds: number[] = [];
  await checkRates(t, async () => {
    const started = performance.now();
    seconds = await Promise.all(clients.map(async (c) => {
      sameBytes(t, await download(c, 'a.bin'), content);
      return (performance.now() - started) / 1000;
    }));
    return [{ what: 'two parallel RETRs of one user (sum)', bytes: 2 * content.length, seconds: Math.max(...seconds), limit: MiB }];
  });
  t.true(Math.min(...seconds) > 0.8 * Math.max(...seconds), `each had half: ${seconds.join(', ')} s`);
});

test('--rate-total caps all users together, uploads and downloads each', async (t) => {
  const content = randomBytes(1.5 * MiB);
  const more = randomBytes(2 * MiB);
  const srv = await bandwidthServer(t, [{ name: 'alice', password: 'alice-pw' }, { name: 'bob', password: 'bob-pw', rateDown: 10 * MiB }], {
    'alice/a.bin': content,
    'bob/b.bin': content,
    'bob/more.bin': more,
  }, { rateTotal: '1MiB' });
  const [alice, bob] = await Promise.all([srv.client('alice'), srv.client('bob')]);
  await checkRate(t, 'alice and bob downloading under --rate-total 1MiB (sum)', 2 * content.length, MiB, () => Promise.all([download(alice, 'a.bin'), download(bob, 'b.bin')]));
  // The cap is per direction: an upload and a download at once each get all of it.
  await checkRates(t, async () => {
    const [up, down] = await Promise.all([timed(() => alice.uploadFrom(Readable.from([more]), 'up.bin')), timed(() => download(bob, 'more.bin'))]);
    return [
      { what: 'upload under --rate-total 1MiB while another user downloads', bytes: more.length, seconds: up.seconds, limit: MiB },
      { what: 'download under --rate-total 1MiB while another user uploads', bytes: more.length, seconds: down.seconds, limit: MiB },
    ];
  });
});

test('listings and SITE VIEW previews are shaped by rateDown', async (t) => {
  const rate = 2 * KiB;
  // A 1024-byte text file (16 lines of 64 bytes), and a directory whose LIST is about 6 KiB (3 s).
  const files: Record<string, Buffer> = { 'lena/note.txt': Buffer.from(Array.from({ length: 16 }, () => 'y'.repeat(63) + '\n').join('')) };
  for (let i = 0; i < 70; i++) files[`lena/dir/file-with-a-rather-long-name-${String(i).padStart(3, '0')}.txt`] = Buffer.alloc(0);
  const srv = await bandwidthServer(t, [{ name: 'lena', password: 'lena-pw', rateDown: rate }], files);
  const raw = await RawFtp.login(srv.port, 'lena', 'lena-pw');
  t.teardown(() => raw.close());
  await checkRates(t, async () => {
    const list = await timed(() => rawList(raw, 'dir'));
    t.is(list.value.code, 226);
    t.is(list.value.names.length, 70);
    return [{ what: 'LIST at rateDown 2 KiB/s', bytes: list.value.bytes.length, seconds: list.seconds, limit: rate }];
  });
  await checkRates(t, async () => {
    const views = await timed(async () => {
      let bytes = 0;
      for (let i = 0; i < 3; i++) {
        const reply = await raw.command('SITE VIEW note.txt', REPLY_MS);
        t.is(reply.code, 200);
        bytes += Buffer.byteLength(reply.raw);
      }
      return bytes;
    });
    return [{ what: 'three SITE VIEWs at rateDown 2 KiB/s', bytes: views.value, seconds: views.seconds, limit: rate }];
  });
});

test('FTPS: shaped transfers and listings over protected data connections (PROT P)', async (t) => {
  const content = randomBytes(2 * MiB);
  const srv = await bandwidthServer(t, [{ name: 'tess', password: 'tess-pw', rateDown: MiB, rateUp: MiB }], { 'tess/big.bin': content }, { tls: 'on' });
  const client = new Client(15_000);
  t.teardown(() => client.close());
  const ca = await readFile(join(srv.stateDir, 'tls', 'cert.pem'));
  await client.access({ host: srv.host, port: srv.port, user: 'tess', password: 'tess-pw', secure: true, secureOptions: { ca, servername: 'localhost' } });
  await checkRate(t, 'RETR over TLS at rateDown 1 MiB/s', content.length, MiB, async () => sameBytes(t, await download(client, 'big.bin'), content));
  await checkRate(t, 'STOR over TLS at rateUp 1 MiB/s', content.length, MiB, () => client.uploadFrom(Readable.from([content]), 'up.bin'));
  sameBytes(t, await readFile(join(srv.storage, 'tess', 'up.bin')), content);
  t.deepEqual((await client.list()).map((e) => e.name).sort(), ['big.bin', 'up.bin'], 'a shaped MLSD over TLS');
});

test('a users.json reload changes the rate for sessions already logged in, also back to no limit', async (t) => {
  const content = randomBytes(MiB);
  const users: TestUser[] = [{ name: 'carl', password: 'carl-pw' }];
  const srv = await bandwidthServer(t, users, { 'carl/a.bin': content });
  const client = await srv.client('carl');
  await writeUsersFile(srv.usersFile, [{ ...users[0]!, rateDown: 512 * KiB }]);
  t.true((await srv.server.reloadUsers()).ok);
  await checkRate(t, 'RETR after a reload set rateDown 512 KiB/s', content.length, 512 * KiB, () => download(client, 'a.bin'));
  await writeUsersFile(srv.usersFile, users);
  t.true((await srv.server.reloadUsers()).ok);
  const free = await timed(() => download(client, 'a.bin'));
  sameBytes(t, free.value, content);
  t.true(free.seconds < 1.5, `after the limit was removed: ${free.seconds.toFixed(2)} s (2 s at the old rate)`);
});

test('--rate-total and DFOS_RATE_TOTAL are validated: exit 2, one line naming the flag', async (t) => {
  const cases: Array<[string[], Record<string, string>, string]> = [
    [['--rate-total', 'fast'], {}, 'dfos: --rate-total must be a rate in bytes per second such as 512KiB or 100MiB, or 0 for no cap (got "fast")'],
    [['--rate-total', '-1MiB'], {}, 'dfos: --rate-total must be a rate in bytes per second such as 512KiB or 100MiB, or 0 for no cap (got "-1MiB")'],
    [[], { DFOS_RATE_TOTAL: '10 parsecs' }, 'dfos: DFOS_RATE_TOTAL must be a rate in bytes per second such as 512KiB or 100MiB, or 0 for no cap (got "10 parsecs")'],
  ];
  const runs = await Promise.all(cases.map(([args, env]) => runCli(CLI, ['serve', ...args], { env })));
  cases.forEach(([args, env, expected], i) => {
    const r = runs[i]!;
    t.is(r.code, 2, `${args.join(' ')} ${JSON.stringify(env)}: ${r.stderr}`);
    t.deepEqual(r.stderr.split('\n').filter((l) => l !== ''), [expected]);
  });
});

test('ABOR during a shaped download and a shaped upload: 426 then 226 at once, and the session goes on', async (t) => {
  const content = randomBytes(MiB);
  const srv = await bandwidthServer(t, [{ name: 'abe', password: 'abe-pw', rateDown: 64 * KiB, rateUp: 64 * KiB }], { 'abe/a.bin': content });
  const raw = await RawFtp.login(srv.port, 'abe', 'abe-pw');
  t.teardown(() => raw.close());
  for (const verb of ['RETR', 'STOR'] as const) {
    const { data } = await startRawTransfer(raw, verb, verb === 'RETR' ? 'a.bin' : 'up.bin');
    if (verb === 'STOR') data.write(content);
    await new Promise((resolve) => setTimeout(resolve, 300));
    const aborted = performance.now();
    const first = await raw.command('ABOR', REPLY_MS);
    t.is(first.code, 426, `${verb}: ${first.raw}`);
    t.is((await raw.read(REPLY_MS)).code, 226, verb);
    t.true(performance.now() - aborted < 1000, `${verb}: ABOR answered after ${performance.now() - aborted} ms`);
    data.destroy();
  }
  t.is((await raw.command('NOOP', REPLY_MS)).code, 200);
  const list = await rawList(raw);
  t.is(list.code, 226);
  t.deepEqual(list.names, ['a.bin']);
});
