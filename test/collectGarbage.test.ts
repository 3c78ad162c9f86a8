import test from 'ava';
import { collectGarbage } from '../src/util/collectGarbage.js';

/** collectGarbage: a full collection on demand, without starting node with --expose-gc. */

test('an object only a WeakRef points to is gone after collectGarbage()', async (t) => {
  let ref: WeakRef<object> | undefined;
  (() => {
    ref = new WeakRef({ payload: new Array(1000).fill('x') });
  })();
  // A WeakRef keeps its target alive until the job that created it ends.
  await new Promise((resolve) => setImmediate(resolve));
  collectGarbage();
  collectGarbage();
  t.is(ref?.deref(), undefined);
});
