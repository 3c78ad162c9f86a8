import { RateLimiterCluster, type RateLimiterAbstract } from 'rate-limiter-flexible';
import type { BanEntry } from '../../bansFile.js';
import type { UsageRecord } from '../../usageRecord.js';
import type { NodeLoad, SharedBans, SharedLoad, SharedState, SharedUsage } from '../SharedState.js';
import { isDfosMessage, type StateOp, type StateReply, type StateRequest } from './protocol.js';

/** How long a worker waits for the primary's answer before going on with what it knows locally. */
const CALL_TIMEOUT_MS = 2000;

/**
 * A worker's shared state (`--workers N` without `--redis`): every call goes to the
 * primary's MemoryStore over the cluster's IPC channel, so the Defender, PeerLoad and the
 * UsageLedger work exactly as with Redis (each worker is a "node"). Failed-login scores
 * use rate-limiter-flexible's cluster limiter (kept by the primary). A call the primary
 * does not answer in time rejects, and the callers go on locally as with a slow Redis.
 */
export function openIpcState(nodeId: string): SharedState {
  let next = 1;
  const pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }>();
  const onMessage = (msg: unknown) => {
    if (!isDfosMessage(msg) || msg.dfos !== 'state-reply') return;
    const reply = msg as StateReply;
    const call = pending.get(reply.id);
    if (!call) return;
    pending.delete(reply.id);
    clearTimeout(call.timer);
    if (reply.ok) call.resolve(reply.value);
    else call.reject(new Error(reply.error ?? 'shared state call failed'));
  };
  process.on('message', onMessage);
  const call = <T>(op: StateOp, ...args: unknown[]): Promise<T> =>
    new Promise<T>((resolve, reject) => {
      const id = next++;
      const timer = setTimeout(() => {
        pending.delete(id);
        reject(new Error(`the primary process did not answer ${op} within ${CALL_TIMEOUT_MS} ms`));
      }, CALL_TIMEOUT_MS);
      timer.unref();
      pending.set(id, { resolve: resolve as (v: unknown) => void, reject, timer });
      const request: StateRequest = { dfos: 'state', id, op, args };
      if (!process.send || !process.connected) {
        pending.delete(id);
        clearTimeout(timer);
        reject(new Error('no IPC channel to the primary process'));
        return;
      }
      process.send(request, undefined, undefined, (err: Error | null) => {
        if (!err) return;
        pending.delete(id);
        clearTimeout(timer);
        reject(err);
      });
    });

  const bans: SharedBans = {
    version: () => call<string>('bans.version'),
    all: () => call<BanEntry[]>('bans.all'),
    put: async (list) => {
      if (list.length > 0) await call('bans.put', list);
    },
    lift: (ip, until) => call<boolean>('bans.lift', ip, until),
    failureLimiter: (points: number, durationS: number): RateLimiterAbstract =>
      // One limiter per setting in the primary (a SIGHUP with a new threshold gets a fresh one).
      new RateLimiterCluster({ keyPrefix: `dfos-fail-${points}-${durationS}`, points, duration: durationS, timeoutMs: CALL_TIMEOUT_MS }),
  };
  const load: SharedLoad = {
    exchange: (mine: NodeLoad) => call<NodeLoad[]>('load.exchange', mine),
    leave: () => call<void>('load.leave'),
  };
  const usage: SharedUsage = {
    read: (user) => call<UsageRecord | undefined>('usage.read', user),
    seed: (user, record) => call<{ record: UsageRecord; stored: boolean }>('usage.seed', user, record),
    add: (user, b, f, at) => call<UsageRecord | undefined>('usage.add', user, b, f, at),
    claimMeasurement: (user, ttlMs) => call<boolean>('usage.claim', user, ttlMs),
    measuring: (user) => call<boolean>('usage.measuring', user),
    releaseMeasurement: (user) => call<void>('usage.release', user),
    drop: (user) => call<void>('usage.drop', user),
  };
  const participants: ((fresh: boolean) => Promise<void>)[] = [];
  return {
    nodeId,
    bans,
    load,
    usage,
    onResync: (participant) => participants.push(participant),
    // The primary's store lives as long as the workers: one full push at start (a seed never overwrites).
    begin: async () => {
      for (const p of participants) await p(true).catch(() => undefined);
    },
    stop: async () => {
      process.off('message', onMessage);
      for (const [id, c] of pending) {
        clearTimeout(c.timer);
        c.reject(new Error('stopped'));
        pending.delete(id);
      }
    },
  };
}
