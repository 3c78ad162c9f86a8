import test from 'ava';
import { mergeStatusSnapshots } from '../src/status/mergeStatus.js';
import type { StatusSnapshot } from '../src/status/StatusBoard.js';

/** The primary's status page with `--workers N`: one picture from the workers' pictures. */

function picture(worker: number, overrides: Partial<StatusSnapshot>): StatusSnapshot {
  return {
    now: 10_000,
    startedAt: 1000 * worker,
    sessions: [],
    transfers: [],
    history: { intervalMs: 1000, points: [] },
    failedLogins: [],
    totals: { loginsOk: 0, loginsFailed: 0, uploads: 0, downloads: 0, bytesUp: 0, bytesDown: 0 },
    ...overrides,
  };
}

const point = (at: number, sessions: number, bytesUp: number, bytesDown: number) => ({ at, spanMs: 1000, sessions, bytesUp, bytesDown });

test('sessions and transfers of every worker, oldest first; totals summed; the earliest start', (t) => {
  const a = picture(1, {
    sessions: [{ id: 'a1', user: 'alice', client: '127.0.0.1', since: 300, command: undefined, tls: false }],
    transfers: [{ session: 'a1', user: 'alice', client: '127.0.0.1', direction: 'upload', path: '/x', bytes: 10, size: undefined, startedAt: 400, rate: 5 }],
    totals: { loginsOk: 2, loginsFailed: 1, uploads: 3, downloads: 4, bytesUp: 50, bytesDown: 60 },
  });
  const b = picture(2, {
    sessions: [{ id: 'b1', user: 'bob', client: '127.0.0.2', since: 100, command: 'RETR', tls: true }],
    totals: { loginsOk: 1, loginsFailed: 0, uploads: 0, downloads: 1, bytesUp: 0, bytesDown: 7 },
  });
  const merged = mergeStatusSnapshots([a, b], 20_000);
  t.is(merged.now, 20_000);
  t.is(merged.startedAt, 1000);
  t.deepEqual(
    merged.sessions.map((s) => s.id),
    ['b1', 'a1'],
  );
  t.is(merged.transfers.length, 1);
  t.deepEqual(merged.totals, { loginsOk: 3, loginsFailed: 1, uploads: 3, downloads: 5, bytesUp: 50, bytesDown: 67 });
});

test('history points are summed aligned on the newest; a worker with a shorter history adds to the newest points only', (t) => {
  const a = picture(1, { history: { intervalMs: 1000, points: [point(1000, 1, 10, 0), point(2000, 2, 20, 5), point(3000, 3, 30, 6)] } });
  const b = picture(2, { history: { intervalMs: 1000, points: [point(2010, 1, 1, 1), point(3010, 4, 2, 2)] } });
  const merged = mergeStatusSnapshots([a, b]);
  t.is(merged.history.intervalMs, 1000);
  t.deepEqual(merged.history.points, [point(1000, 1, 10, 0), point(2010, 3, 21, 6), point(3010, 7, 32, 8)]);
});

test('failed logins merged newest first and cut to 20', (t) => {
  const failed = (worker: number, n: number) => Array.from({ length: n }, (_, i) => ({ at: 1000 + i * 2 + worker, user: `u${worker}-${i}`, client: '127.0.0.1', reason: 'bad password' })).reverse();
  const merged = mergeStatusSnapshots([picture(1, { failedLogins: failed(1, 15) }), picture(2, { failedLogins: failed(2, 15) })]);
  t.is(merged.failedLogins.length, 20);
  const times = merged.failedLogins.map((f) => f.at);
  t.deepEqual(times, [...times].sort((x, y) => y - x));
  t.is(merged.failedLogins[0]!.user, 'u2-14');
});

test('no worker answered: an empty picture, not an error', (t) => {
  const merged = mergeStatusSnapshots([], 5000);
  t.deepEqual(merged.sessions, []);
  t.deepEqual(merged.history.points, []);
  t.is(merged.startedAt, 5000);
  t.is(merged.totals.loginsOk, 0);
});
