import test from 'ava';
import { PeerLoad, emptyLoad } from '../src/core/shared/PeerLoad.js';
import type { NodeLoad, SharedLoad } from '../src/core/shared/SharedState.js';

/** A shared load whose exchanges this test ends by hand, recording what each published. */
function heldStore(): { store: SharedLoad; published: NodeLoad[]; answer(others: NodeLoad[]): void; pending(): number } {
  const published: NodeLoad[] = [];
  const waiting: Array<(others: NodeLoad[]) => void> = [];
  return {
    published,
    store: {
      exchange(load) {
        published.push(structuredClone(load));
        return new Promise((resolve) => waiting.push(resolve));
      },
      leave: () => Promise.resolve(),
    },
    answer(others) {
      waiting.shift()!(others);
    },
    pending: () => waiting.length,
  };
}

const tick = () => new Promise((resolve) => setImmediate(resolve));

test('fresh(): while an exchange is in flight, waits for it and runs one more that publishes the state at the call and reads the others after it', async (t) => {
  const held = heldStore();
  const local = emptyLoad();
  const peers = new PeerLoad(held.store, () => local);
  const first = peers.exchange();
  t.deepEqual(held.published[0], emptyLoad());
  local.reserved['q'] = [70, 1];
  const beforeRelease = peers.exchange();
  t.is(beforeRelease, first, 'exchange() joins the one in flight');
  delete local.reserved['q'];
  const a = peers.fresh();
  const b = peers.fresh();
  t.is(a, b, 'callers that come while one waits share it');
  await tick();
  t.is(held.pending(), 1, 'the fresh exchange does not start before the one in flight ends');
  held.answer([{ ips: {}, users: {}, reserved: { q: [40, 1] } }]);
  await first;
  await tick();
  t.deepEqual(peers.reservedBy('q'), { bytes: 40, files: 1 }, 'the first exchange read another node holding 40 bytes');
  t.is(held.pending(), 1, 'then the fresh one started');
  t.deepEqual(held.published[1], emptyLoad(), 'publishing the state at the call: nothing reserved');
  held.answer([]);
  await a;
  t.deepEqual(peers.reservedBy('q'), { bytes: 0, files: 0 }, 'and reading the others as they are after it');
  const idle = peers.fresh();
  await tick();
  t.is(held.pending(), 1, 'with nothing in flight, fresh() exchanges at once');
  held.answer([]);
  await idle;
});

test('advertises(): whether the other nodes may see a reservation of the user from this node (being published, published last, or in an exchange that failed)', async (t) => {
  const held = heldStore();
  const local = emptyLoad();
  let fail = false;
  const store: SharedLoad = {
    exchange: (load) => held.store.exchange(load).then((others) => (fail ? Promise.reject(new Error('store down')) : others)),
    leave: () => Promise.resolve(),
  };
  const peers = new PeerLoad(store, () => local);
  t.false(peers.advertises('q'));
  local.reserved['q'] = [10, 1];
  const withQ = peers.exchange();
  t.true(peers.advertises('q'), 'while being published');
  held.answer([]);
  await withQ;
  t.true(peers.advertises('q'), 'published last');
  delete local.reserved['q'];
  t.true(peers.advertises('q'), 'ending the reservation here does not withdraw it there');
  const without = peers.exchange();
  t.true(peers.advertises('q'), 'until a load without it has landed');
  held.answer([]);
  await without;
  t.false(peers.advertises('q'));
  local.reserved['q'] = [5, 0];
  fail = true;
  const failed = peers.exchange();
  held.answer([]);
  await failed;
  delete local.reserved['q'];
  t.true(peers.advertises('q'), 'an exchange that failed may have landed');
  fail = false;
  const again = peers.exchange();
  held.answer([]);
  await again;
  t.false(peers.advertises('q'));
});

test('a malformed reservation in another node\'s load counts as nothing and does not stop the others from counting', async (t) => {
  const held = heldStore();
  const peers = new PeerLoad(held.store, () => emptyLoad());
  const done = peers.exchange();
  held.answer([
    { ips: {}, users: {}, reserved: { q: 5, r: 'x' } as unknown as NodeLoad['reserved'] },
    { ips: { '192.0.2.1': 1 }, users: { q: 1 }, reserved: { q: [30, 1] } },
  ]);
  await done;
  t.deepEqual(peers.reservedBy('q'), { bytes: 30, files: 1 });
  t.deepEqual(peers.reservedBy('r'), { bytes: 0, files: 0 });
  t.is(peers.sessionsOf('q'), 1);
});
