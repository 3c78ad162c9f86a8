import test from 'ava';
import { MemoryStore } from '../src/core/shared/ipc/MemoryStore.js';
import { passiveSlice } from '../src/server/workers.js';

test('passiveSlice: equal contiguous slices covering the whole range, the first ones one port larger when it does not divide; 0..0 stays 0..0', (t) => {
  t.deepEqual([1, 2].map((i) => passiveSlice(50000, 50999, i, 2)), [
    { pasvMin: 50000, pasvMax: 50499 },
    { pasvMin: 50500, pasvMax: 50999 },
  ]);
  const three = [1, 2, 3].map((i) => passiveSlice(100, 109, i, 3));
  t.deepEqual(three, [
    { pasvMin: 100, pasvMax: 103 },
    { pasvMin: 104, pasvMax: 106 },
    { pasvMin: 107, pasvMax: 109 },
  ]);
  t.deepEqual(passiveSlice(7, 7, 1, 1), { pasvMin: 7, pasvMax: 7 });
  t.deepEqual(passiveSlice(0, 0, 2, 4), { pasvMin: 0, pasvMax: 0 });
});

test('MemoryStore: a ban never shortens a longer one, a lift never removes a longer ban, the version moves on each change; loads exclude the asker; usage adds up, never below zero', async (t) => {
  const store = await MemoryStore.open(undefined, () => undefined);
  const now = Date.now();
  const v0 = store.handle('w1', 'bans.version', []);
  store.handle('w1', 'bans.put', [[{ ip: '192.0.2.1', until: now + 60_000, count: 1 }]]);
  const v1 = store.handle('w1', 'bans.version', []);
  t.not(v1, v0);
  store.handle('w2', 'bans.put', [[{ ip: '192.0.2.1', until: now + 1000, count: 2 }]]);
  t.is(store.handle('w2', 'bans.version', []), v1, 'a shorter ban changes nothing');
  t.false(store.handle('w2', 'bans.lift', ['192.0.2.1', now + 1000]) as boolean, 'the longer ban stays');
  t.true(store.handle('w2', 'bans.lift', ['192.0.2.1', now + 60_000]) as boolean);
  t.deepEqual(store.handle('w1', 'bans.all', []), []);

  store.handle('w1', 'load.exchange', [{ ips: { '192.0.2.9': 2 }, users: {}, reserved: {} }]);
  t.deepEqual(store.handle('w2', 'load.exchange', [{ ips: {}, users: {}, reserved: {} }]), [{ ips: { '192.0.2.9': 2 }, users: {}, reserved: {} }]);
  store.workerGone('w1');
  t.deepEqual(store.handle('w2', 'load.exchange', [{ ips: {}, users: {}, reserved: {} }]), []);

  t.is(store.handle('w1', 'usage.add', ['q', 5, 1, now]), undefined, 'nothing to add to before a seed');
  t.true(store.handle('w1', 'usage.claim', ['q', 60_000]) as boolean);
  t.false(store.handle('w2', 'usage.claim', ['q', 60_000]) as boolean, 'one worker measures');
  t.like(store.handle('w1', 'usage.seed', ['q', { bytes: 100, files: 2, measuredAt: now, updatedAt: now }]), { stored: true });
  t.like(store.handle('w2', 'usage.seed', ['q', { bytes: 999, files: 9, measuredAt: now, updatedAt: now }]), { stored: false, record: { bytes: 100 } });
  store.handle('w1', 'usage.add', ['q', 50, 1, now]);
  t.like(store.handle('w2', 'usage.add', ['q', -500, -9, now]), { bytes: 0, files: 0 });
});
