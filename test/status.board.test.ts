import test from 'ava';
import type { EngineSession, SessionActivity } from '../src/core/ProtocolEngine.js';
import { StatusBoard } from '../src/status/StatusBoard.js';
import { STATUS_SCRIPT } from '../src/status/statusPage.js';

// The board's arithmetic (history points count in-flight bytes once, whether the transfer
// is sampled mid-way, finishes between samples, or is sampled after its record), with
// sessions reduced to what the board reads from them.

type Transfer = NonNullable<SessionActivity['transfer']>;

function session(id: string, transfer?: Partial<Transfer>): EngineSession & { transfer: Transfer | undefined } {
  const s = {
    id,
    client: '127.0.0.1',
    user: 'alice',
    tls: undefined,
    startedAt: 0,
    busy: transfer !== undefined,
    ending: undefined,
    transfer: transfer === undefined ? undefined : ({ direction: 'download', verb: 'RETR', path: '/f', size: 1000, bytes: 0, startedAt: 1, ...transfer } as Transfer),
    activity(): SessionActivity {
      return { command: s.transfer?.verb, transfer: s.transfer };
    },
    drain: async () => undefined,
    abortTransfer: () => undefined,
    close: async () => undefined,
  };
  return s;
}

test('history: a long download counts as it runs, its end adds only the unseen rest; a finished transfer still listed is not counted again', (t) => {
  const a = session('a', { bytes: 0 });
  const sessions = [a];
  const board = new StatusBoard({ sessions: () => sessions, intervalMs: 1000 });
  a.transfer!.bytes = 300;
  board.sample(1000);
  a.transfer!.bytes = 700;
  board.sample(2000);
  // Finishes at 1000 bytes; the record arrives before the engine clears the transfer.
  a.transfer!.bytes = 1000;
  board.observe({ action: 'download', result: 'ok', bytes: 1000, session: 'a', user: 'alice', client: '127.0.0.1' });
  board.sample(3000);
  a.transfer = undefined;
  board.sample(4000);
  const points = board.snapshot(4000).history.points;
  t.deepEqual(points.map((p) => p.bytesDown), [300, 400, 300, 0]);
  t.is(points.reduce((n, p) => n + p.bytesDown, 0), 1000, 'every byte counted once');
  t.like(board.snapshot().totals, { downloads: 1, bytesDown: 1000 });
});

test('history: a short upload between two samples is counted from its record; the history keeps one hour', (t) => {
  const sessions: EngineSession[] = [session('b')];
  const board = new StatusBoard({ sessions: () => sessions, intervalMs: 60_000 });
  board.observe({ action: 'upload', result: 'ok', bytes: 5000, session: 'b', user: 'alice', client: '127.0.0.1' });
  for (let i = 1; i <= 70; i++) board.sample(i * 60_000);
  const { points } = board.snapshot(70 * 60_000).history;
  t.is(points.length, 60);
  t.is(points.reduce((n, p) => n + p.bytesUp, 0), 0, 'the sample with the upload has left the hour');
  const fresh = new StatusBoard({ sessions: () => sessions, intervalMs: 60_000 });
  fresh.observe({ action: 'upload', result: 'ok', bytes: 5000, session: 'b', user: 'alice', client: '127.0.0.1' });
  fresh.sample(60_000);
  t.is(fresh.snapshot().history.points[0]!.bytesUp, 5000);
});

test('failed logins: newest first, at most the configured number; running transfers report progress and rate', (t) => {
  const c = session('c', { bytes: 500, size: 1000, startedAt: 0 });
  const board = new StatusBoard({ sessions: () => [c], failedLogins: 3 });
  for (let i = 0; i < 5; i++) board.observe({ action: 'login', result: 'failed', user: `u${i}`, session: `s${i}`, client: '10.0.0.1', reason: 'bad-password' });
  const snap = board.snapshot(2000);
  t.deepEqual(snap.failedLogins.map((f) => f.user), ['u4', 'u3', 'u2']);
  t.like(snap.transfers[0], { direction: 'download', bytes: 500, size: 1000, rate: 250, path: '/f' });
  t.like(snap.sessions[0], { id: 'c', user: 'alice', command: 'RETR', tls: false });
});

test('the page script parses and renders the same fragments as the server, escaping what clients control', (t) => {
  const board = new StatusBoard({ sessions: () => [session('d', { path: '/<img src=x onerror=alert(1)>', bytes: 10 })] });
  board.observe({ action: 'login', result: 'failed', user: '"><script>', session: 'x', client: '10.0.0.1', reason: 'bad-password' });
  const render = new Function('snap', `${STATUS_SCRIPT.replace(/setInterval\(refresh, 2000\);\s*refresh\(\);\s*$/, '')}\nreturn renderParts(snap);`) as (snap: unknown) => Record<string, string>;
  const parts = render(JSON.parse(JSON.stringify(board.snapshot())));
  t.regex(parts.transfers!, /&lt;img src=x onerror=alert\(1\)&gt;/);
  t.notRegex(parts.transfers!, /<img/);
  t.regex(parts['failed-logins']!, /&quot;&gt;&lt;script&gt;/);
  t.regex(parts.throughput!, /^<svg /);
});
