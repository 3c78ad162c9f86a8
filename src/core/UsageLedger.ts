import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { StorageUsage } from '../storage/StorageBackend.js';
import { writeTextAtomic } from '../util/writeTextAtomic.js';
import type { SharedState } from './shared/SharedState.js';
import { UsageSync } from './shared/UsageSync.js';
import type { UsageRecord } from './usageRecord.js';

/** Where the measured usage lives under a state directory. */
export function usageFilePath(stateDir: string): string {
  return join(stateDir, 'usage.json');
}


/** Largest usage file read (a bigger one is treated as empty: every user is measured again). */
const MAX_BYTES = 64 * 1024 * 1024;

/**
 * Reads the usage file: `{ "users": { "NAME": { "bytes", "files", "measuredAt", "updatedAt" } } }`
 * (times in ISO form). A missing or unreadable file, and entries that do not parse, mean
 * "not measured" (the user's home is walked again at the next login).
 */
export async function readUsageFile(file: string): Promise<Map<string, UsageRecord>> {
  const records = new Map<string, UsageRecord>();
  let data: unknown;
  try {
    const text = await readFile(file, 'utf8');
    if (text.length > MAX_BYTES) return records;
    data = JSON.parse(text);
  } catch {
    return records;
  }
  const users = (data as { users?: unknown } | null)?.users;
  if (typeof users !== 'object' || users === null) return records;
  for (const [name, value] of Object.entries(users)) {
    const e = value as Record<string, unknown> | null;
    const bytes = e?.bytes;
    const files = e?.files;
    if (!Number.isSafeInteger(bytes) || !Number.isSafeInteger(files) || (bytes as number) < 0 || (files as number) < 0) continue;
    const measuredAt = Date.parse(String(e?.measuredAt));
    const updatedAt = Date.parse(String(e?.updatedAt));
    records.set(name, {
      bytes: bytes as number,
      files: files as number,
      measuredAt: Number.isFinite(measuredAt) ? measuredAt : 0,
      updatedAt: Number.isFinite(updatedAt) ? updatedAt : 0,
    });
  }
  return records;
}

export function formatUsage(records: ReadonlyMap<string, UsageRecord>): string {
  const users: Record<string, unknown> = {};
  for (const name of [...records.keys()].sort()) {
    const r = records.get(name)!;
    users[name] = { bytes: r.bytes, files: r.files, measuredAt: new Date(r.measuredAt).toISOString(), updatedAt: new Date(r.updatedAt).toISOString() };
  }
  return JSON.stringify({ users }, null, 2) + '\n';
}

/** What a UserUsage reports to its ledger and asks of it. */
interface UsageHooks {
  /** A completed change was applied to the record. */
  changed(user: string, deltaBytes: number, deltaFiles: number): void;
  /** Takes the other nodes' changes and reservations (resolves at once without a shared store). */
  refresh(user: string): Promise<void>;
  /** What the user's uploads in flight on other nodes hold. */
  peerReserved(user: string): { bytes: number; files: number };
  /** Resolves once the other nodes can see this node's changes and reservations of the user. */
  published(user: string): Promise<void>;
}

/**
 * What the other nodes' uploads in flight hold (`--redis`, or workers): read from memory,
 * refreshed by a periodic exchange that also publishes this node's own reservations.
 */
export interface PeerReservations {
  reservedBy(user: string): { bytes: number; files: number };
  /** Whether the other nodes may see a reservation of the user's from this node. */
  advertises(user: string): boolean;
  /** An exchange (publish this node's, read the others') that starts after the call. */
  fresh(): Promise<void>;
}

/**
 * A user's usage, kept current by every change the server makes to their files, plus what
 * uploads in flight have reserved (so parallel uploads cannot together overrun a quota;
 * with a shared store, those of every node).
 */
export class UserUsage {
  private reservedBytes = 0;
  private reservedFiles = 0;

  constructor(
    readonly user: string,
    private readonly record: UsageRecord,
    private readonly hooks: UsageHooks,
  ) {}

  /** Stored bytes and files (completed changes only). */
  get bytes(): number {
    return this.record.bytes;
  }

  get files(): number {
    return this.record.files;
  }

  /** When the home was last walked. */
  get measuredAt(): Date {
    return new Date(this.record.measuredAt);
  }

  /** Bytes and file slots held by uploads in flight (on every node, as far as known). */
  get reserved(): { bytes: number; files: number } {
    const peers = this.hooks.peerReserved(this.user);
    return { bytes: this.reservedBytes + peers.bytes, files: this.reservedFiles + peers.files };
  }

  /** Bytes and file slots held by this node's uploads in flight (what it tells the other nodes). */
  get localReserved(): { bytes: number; files: number } {
    return { bytes: this.reservedBytes, files: this.reservedFiles };
  }

  /** Brings the usage and the other nodes' reservations up to date (bounded; nothing to do without a shared store). */
  refresh(): Promise<void> {
    return this.hooks.refresh(this.user);
  }

  /**
   * Resolves once the other nodes see this node's changes and reservations as they are now
   * (bounded by the shared store's timeout; at once without one). An upload waits for it
   * before its reply, so a client that goes on to another node is counted there exactly:
   * not with its finished upload both stored and still reserved.
   */
  published(): Promise<void> {
    return this.hooks.published(this.user);
  }

  /** Adds a completed change (negative for deletions); never below zero. */
  apply(deltaBytes: number, deltaFiles: number): void {
    if (deltaBytes === 0 && deltaFiles === 0) return;
    this.record.bytes = Math.max(0, this.record.bytes + deltaBytes);
    this.record.files = Math.max(0, this.record.files + deltaFiles);
    this.record.updatedAt = Date.now();
    this.hooks.changed(this.user, deltaBytes, deltaFiles);
  }

  /** Holds bytes (may be negative to give some back) and file slots for an upload in flight. */
  hold(bytes: number, files: number): void {
    this.reservedBytes += bytes;
    this.reservedFiles += files;
  }
}

/** What a ledger needs. */
export interface UsageLedgerOptions {
  /** usage.json; undefined: no file (a worker: the primary holds and persists the usage). */
  file: string | undefined;
  log: { warn(message: string, fields?: object): unknown; info(message: string, fields?: object): unknown };
  /** How long after a change the file is written (ms, default 1000). */
  writeDelayMs?: number;
  /** The cluster's usage (`--redis`); absent: this node's own only. */
  shared?: SharedState;
  /** What each user's uploads in flight on other nodes hold (`--redis`, or workers). */
  peers?: PeerReservations;
}

const NOTHING_RESERVED = { bytes: 0, files: 0 };

/**
 * The usage of every user with a quota: measured once by walking the home (the first
 * time such a user logs in, or when no record survives), then kept current by the
 * server's own changes and persisted in `<state-dir>/usage.json` (written a second after
 * changes, and at shutdown), so a restart does not walk the homes again. Users without a
 * quota are not tracked; their record is dropped, so a quota set later starts from a
 * fresh measurement.
 *
 * With a shared store (`--redis`), the records are the cluster's (see UsageSync): one node
 * measures a home for all, every node's changes add up, and usage.json is this node's copy,
 * used while the store does not answer.
 */
export class UsageLedger {
  private readonly users = new Map<string, UserUsage>();
  /** Measurements in flight, shared by the sessions of one user. */
  private readonly measuring = new Map<string, Promise<UserUsage>>();
  private timer: NodeJS.Timeout | undefined;
  private writing: Promise<void> = Promise.resolve();
  private dirty = false;
  private readonly sync: UsageSync | undefined;
  private readonly hooks: UsageHooks;

  private constructor(
    private readonly options: UsageLedgerOptions,
    private readonly records: Map<string, UsageRecord>,
  ) {
    const shared = options.shared;
    const sync = shared ? new UsageSync(shared.usage, records, () => this.scheduleWrite()) : undefined;
    this.sync = sync;
    if (sync) shared!.onResync((fresh) => sync.resync(fresh));
    const peers = options.peers;
    this.hooks = {
      changed: (user, deltaBytes, deltaFiles) => {
        this.scheduleWrite();
        sync?.added(user, deltaBytes, deltaFiles);
      },
      // Other nodes' reservations are read afresh only when some are known: one that ended
      // is then not counted with its upload's bytes; a new one is seen within a second.
      refresh: async (user) => {
        const held = peers?.reservedBy(user);
        await Promise.all([sync?.refresh(user), held && (held.bytes !== 0 || held.files !== 0) ? peers!.fresh() : undefined]);
      },
      peerReserved: peers ? (user) => peers.reservedBy(user) : () => NOTHING_RESERVED,
      // The usage first: in between, another node counts the upload twice (refuses) rather
      // than not at all. The load only when the others may hold a reservation of the user's.
      published: async (user) => {
        await sync?.pushed(user);
        if (peers?.advertises(user)) await peers.fresh();
      },
    };
  }

  /** Loads the persisted usage. */
  static async open(options: UsageLedgerOptions): Promise<UsageLedger> {
    return new UsageLedger(options, options.file === undefined ? new Map() : await readUsageFile(options.file));
  }

  /**
   * The user's usage: the persisted record, or a measurement by `measure` when there is
   * none (one walk shared by concurrent callers; a failed walk is retried by the next call).
   * With a shared store, the cluster's record (or one walk for the whole cluster); this
   * node's own when the store does not answer.
   */
  track(user: string, measure: () => Promise<StorageUsage>): Promise<UserUsage> {
    const known = this.users.get(user);
    if (known) return Promise.resolve(known);
    const record = this.records.get(user);
    if (record && !this.sync) return Promise.resolve(this.adopt(user, record));
    let pending = this.measuring.get(user);
    if (!pending) {
      pending = this.obtain(user, measure).then(
        (obtained) => {
          this.measuring.delete(user);
          return this.adopt(user, obtained);
        },
        (err: unknown) => {
          this.measuring.delete(user);
          throw err;
        },
      );
      this.measuring.set(user, pending);
    }
    return pending;
  }

  /** The cluster's record when there is a shared store that answers, else the local one (measured when there is none). */
  private async obtain(user: string, measure: () => Promise<StorageUsage>): Promise<UsageRecord> {
    const walk = async (): Promise<UsageRecord> => {
      const started = Date.now();
      const usage = await measure();
      const now = Date.now();
      this.options.log.info('Quota usage measured', { user, bytes: usage.bytes, files: usage.files, durationMs: now - started });
      return { bytes: usage.bytes, files: usage.files, measuredAt: now, updatedAt: now };
    };
    const shared = await this.sync?.obtain(user, walk);
    if (shared) return shared;
    const local = this.records.get(user);
    if (local) return local;
    const fresh = await walk();
    this.records.set(user, fresh);
    this.scheduleWrite();
    return fresh;
  }

  /** What this node's uploads in flight hold per user (published to the other nodes): user → [bytes, files]. */
  localReservations(): Record<string, [number, number]> {
    const out: Record<string, [number, number]> = {};
    for (const [user, usage] of this.users) {
      const r = usage.localReserved;
      if (r.bytes !== 0 || r.files !== 0) out[user] = [r.bytes, r.files];
    }
    return out;
  }

  /** The user's stored bytes and files as last measured and kept current; undefined before the first measurement. */
  usageOf(user: string): StorageUsage | undefined {
    return this.records.get(user);
  }

  /** Stops tracking a user without a quota (their record is dropped). */
  forget(user: string): void {
    if (this.measuring.has(user)) return;
    this.users.delete(user);
    if (!this.records.delete(user)) return;
    this.scheduleWrite();
    this.sync?.drop(user);
  }

  /** Writes pending changes now (at shutdown). */
  async flush(): Promise<void> {
    await this.sync?.flush();
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.dirty) this.write();
    await this.writing;
  }

  private adopt(user: string, record: UsageRecord): UserUsage {
    let usage = this.users.get(user);
    if (!usage) {
      usage = new UserUsage(user, record, this.hooks);
      this.users.set(user, usage);
    }
    return usage;
  }

  private scheduleWrite(): void {
    this.dirty = true;
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.write();
    }, this.options.writeDelayMs ?? 1000);
    this.timer.unref();
  }

  /** One write at a time, each of the whole current state. */
  private write(): void {
    this.dirty = false;
    const file = this.options.file;
    if (file === undefined) return;
    this.writing = this.writing.then(async () => {
      try {
        await writeTextAtomic(file, formatUsage(this.records));
      } catch (err) {
        this.options.log.warn('Cannot write the quota usage file; usage will be measured again after a restart', {
          file: this.options.file,
          err: err instanceof Error ? err.message : String(err),
        });
      }
    });
  }
}
