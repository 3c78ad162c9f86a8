import { setTimeout as sleep } from 'node:timers/promises';
import type { UsageRecord } from '../usageRecord.js';
import type { SharedUsage } from './SharedState.js';

/** How long one node may hold the right to measure a home before another may take it over. */
const MEASURE_TTL_MS = 10 * 60_000;
/** How often a node waiting for another node's measurement looks for its record. */
const WAIT_POLL_MS = 250;

/** Changes this node applied that the shared store has not confirmed yet. */
interface Delta {
  bytes: number;
  files: number;
}

/**
 * Keeps a ledger's local records (the map it persists in usage.json) in step with the
 * cluster's (`--redis`): a user's record is read from the store, seeded from the local
 * copy, or measured by one node for all; every change this node makes is pushed as an
 * increment, so the nodes' changes add up; the local copy is the store's record plus what
 * was not pushed yet. While the store does not answer, changes are kept as deltas and
 * pushed when it is back (the whole local copy when it lost its data).
 */
export class UsageSync {
  private readonly deltas = new Map<string, Delta>();
  /** Store work per user, one at a time (so a delta is never sent twice). */
  private readonly chains = new Map<string, Promise<unknown>>();

  constructor(
    private readonly store: SharedUsage,
    /** The ledger's records; updated in place, so the users' UserUsage objects see the changes. */
    private readonly records: Map<string, UsageRecord>,
    /** Called when a record changed (the ledger schedules its file write). */
    private readonly changed: () => void,
  ) {}

  /**
   * The cluster's record of `user`, now also the local one: the store's, else the local
   * copy (seeded into the store), else one measurement for the whole cluster (by this node
   * when no other is measuring, else by waiting for the other's). Undefined when the store
   * does not answer (the caller goes on locally); a failed walk rejects.
   */
  async obtain(user: string, walk: () => Promise<UsageRecord>): Promise<UsageRecord | undefined> {
    let walkFailed: { err: unknown } | undefined;
    try {
      for (;;) {
        const known = await this.serial(user, async () => {
          const held = await this.store.read(user);
          return held ? this.adopt(user, held) : undefined;
        });
        if (known) return known;
        const local = this.records.get(user);
        if (local) return await this.serial(user, () => this.seed(user, local));
        if (await this.store.claimMeasurement(user, MEASURE_TTL_MS)) {
          try {
            const measured = await walk().catch((err: unknown) => {
              walkFailed = { err };
              throw err;
            });
            return await this.serial(user, () => this.seed(user, measured));
          } finally {
            await this.store.releaseMeasurement(user).catch(() => undefined);
          }
        }
        const deadline = Date.now() + MEASURE_TTL_MS;
        while (Date.now() < deadline && (await this.store.measuring(user))) await sleep(WAIT_POLL_MS);
      }
    } catch (err) {
      if (walkFailed) throw walkFailed.err;
      return undefined;
    }
  }

  /** Records a change this node made and pushes it. */
  added(user: string, bytes: number, files: number): void {
    const d = this.deltas.get(user) ?? { bytes: 0, files: 0 };
    d.bytes += bytes;
    d.files += files;
    this.deltas.set(user, d);
    this.serial(user, () => this.push(user)).catch(() => undefined);
  }

  /** Takes the other nodes' changes to `user`'s usage (bounded; on failure the local copy stays). */
  refresh(user: string): Promise<void> {
    return this.serial(user, async () => {
      const held = await this.store.read(user);
      const local = this.records.get(user);
      if (held) this.adopt(user, held);
      else if (local) await this.seed(user, local);
    }).then(
      () => undefined,
      () => undefined,
    );
  }

  /** Resolves when this node's changes to `user`'s usage made so far have been pushed, or failed to be (bounded). */
  async pushed(user: string): Promise<void> {
    await this.chains.get(user);
  }

  /** Drops the user's record in the store (no quota any more). */
  drop(user: string): void {
    this.deltas.delete(user);
    this.serial(user, () => this.store.drop(user)).catch(() => undefined);
  }

  /**
   * The store answers again: pushes what changed meanwhile, or every local record when the
   * store lost its data. Rejects when the store fails again (the resync is retried).
   */
  async resync(fresh: boolean): Promise<void> {
    for (const user of [...(fresh ? this.records.keys() : this.deltas.keys())]) {
      await this.serial(user, async () => {
        const local = this.records.get(user);
        if (fresh && local) await this.seed(user, local);
        else await this.push(user);
      });
    }
  }

  /** Waits for the pushes in flight (shutdown; each bounded by the store's timeout). */
  async flush(): Promise<void> {
    await Promise.all([...this.chains.values()]);
  }

  /** Runs store work for `user` after the work already queued for them. */
  private serial<T>(user: string, work: () => Promise<T>): Promise<T> {
    const run = (this.chains.get(user) ?? Promise.resolve()).then(work);
    const settled = run.catch(() => undefined);
    this.chains.set(user, settled);
    void settled.then(() => {
      if (this.chains.get(user) === settled) this.chains.delete(user);
    });
    return run;
  }

  /** Sends the user's unconfirmed delta as one increment (seeding the local copy when the store has no record). */
  private async push(user: string): Promise<void> {
    const d = this.deltas.get(user);
    if (!d || (d.bytes === 0 && d.files === 0)) return;
    const sent = { ...d };
    let record = await this.store.add(user, sent.bytes, sent.files, Date.now());
    if (!record) {
      const local = this.records.get(user);
      if (!local) return;
      const seeded = await this.store.seed(user, local);
      if (seeded.stored) {
        this.deltas.delete(user);
        this.adopt(user, seeded.record);
        return;
      }
      record = await this.store.add(user, sent.bytes, sent.files, Date.now());
      if (!record) return;
    }
    d.bytes -= sent.bytes;
    d.files -= sent.files;
    if (d.bytes === 0 && d.files === 0 && this.deltas.get(user) === d) this.deltas.delete(user);
    this.adopt(user, record);
  }

  /** Stores the local copy unless the store has a record (then adopts that one, this node's changes on top). */
  private async seed(user: string, local: UsageRecord): Promise<UsageRecord> {
    const seeded = await this.store.seed(user, local);
    if (seeded.stored) {
      this.deltas.delete(user);
      return this.adopt(user, seeded.record);
    }
    this.adopt(user, seeded.record);
    await this.push(user);
    return this.records.get(user)!;
  }

  /** Makes the local copy the store's record plus what this node has not pushed yet. */
  private adopt(user: string, held: UsageRecord): UsageRecord {
    const d = this.deltas.get(user);
    const merged: UsageRecord = {
      ...held,
      bytes: Math.max(0, held.bytes + (d?.bytes ?? 0)),
      files: Math.max(0, held.files + (d?.files ?? 0)),
    };
    const local = this.records.get(user);
    if (!local) this.records.set(user, merged);
    else if (local.bytes !== merged.bytes || local.files !== merged.files || local.measuredAt !== merged.measuredAt || local.updatedAt !== merged.updatedAt) {
      Object.assign(local, merged);
    } else return local;
    this.changed();
    return this.records.get(user)!;
  }
}
