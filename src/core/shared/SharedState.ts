import type { RateLimiterAbstract } from 'rate-limiter-flexible';
import type { BanEntry } from '../bansFile.js';
import type { UsageRecord } from '../usageRecord.js';

/**
 * State that several DFOS nodes share (`--redis`): bans and failed-login scores, what each
 * node has open (sessions, upload reservations), and quota usage. Without `--redis` there
 * is none and every node keeps its own in memory, exactly as a single server does.
 *
 * Every call is bounded in time and rejects when the store is slow or unreachable; the
 * callers (Defender, PeerLoad, UsageLedger) then go on with what they know locally and
 * push it when the store is back (each registers a resync). The implementation logs the
 * outage once and the return once.
 */
export interface SharedState {
  /** This node's identity in the store and in logs: host name and a random suffix. */
  readonly nodeId: string;
  readonly bans: SharedBans;
  readonly load: SharedLoad;
  readonly usage: SharedUsage;
  /**
   * Registers work run when the store answers again after an outage (and once at start):
   * push what was kept locally. `fresh` is true when the store lost its data (e.g. a Redis
   * restarted without persistence, or never used before): then push everything known, not
   * only what changed during the outage.
   */
  onResync(participant: (fresh: boolean) => Promise<void>): void;
  /** Runs the first resync (after the participants registered). */
  begin(): Promise<void>;
  /** Stops the background work and closes the connection (bounded). */
  stop(): Promise<void>;
}

/** The cluster's bans: one record per address, the longest ban winning. */
export interface SharedBans {
  /** A token that changes whenever a ban is added or lifted (cheap to poll). */
  version(): Promise<string>;
  /** Every ban in force (expired ones are dropped on the way). */
  all(): Promise<BanEntry[]>;
  /** Records bans; an address banned longer already keeps the longer ban. */
  put(bans: readonly BanEntry[]): Promise<void>;
  /** Lifts the ban of `ip` if it ends no later than `until` (a newer, longer ban stays); resolves true when one was lifted. */
  lift(ip: string, until: number): Promise<boolean>;
  /** A failed-login scorer shared by the nodes, falling back to this node's memory while the store does not answer. */
  failureLimiter(points: number, durationS: number): RateLimiterAbstract;
}

/**
 * What one node has open right now, as it tells the others: sessions per client address
 * and per logged-in user, and the bytes and file slots its uploads in flight hold per user.
 */
export interface NodeLoad {
  ips: Record<string, number>;
  users: Record<string, number>;
  /** user → [bytes, files] */
  reserved: Record<string, [number, number]>;
}

/** Where the nodes tell each other their load. */
export interface SharedLoad {
  /** Publishes this node's load (kept a few seconds unless published again) and returns the other nodes' last published loads. */
  exchange(load: NodeLoad): Promise<NodeLoad[]>;
  /** Withdraws this node's load (shutdown). */
  leave(): Promise<void>;
}

/** The cluster's quota usage, one record per user (the shape of a usage.json entry). */
export interface SharedUsage {
  /** The user's record, or undefined when the cluster has none. */
  read(user: string): Promise<UsageRecord | undefined>;
  /** Stores `record` unless the cluster has one; resolves with the stored one and whether it was this. */
  seed(user: string, record: UsageRecord): Promise<{ record: UsageRecord; stored: boolean }>;
  /** Adds changes (never below zero); resolves with the new record, or undefined when the cluster has none to add to. */
  add(user: string, bytes: number, files: number, at: number): Promise<UsageRecord | undefined>;
  /** Takes the right to measure the user's home first (one node at a time, for `ttlMs` at most); false when another node has it. */
  claimMeasurement(user: string, ttlMs: number): Promise<boolean>;
  /** Whether some node is measuring the user's home now. */
  measuring(user: string): Promise<boolean>;
  /** Gives the right back (the record is stored, or the walk failed). */
  releaseMeasurement(user: string): Promise<void>;
  /** Drops the user's record (no quota any more). */
  drop(user: string): Promise<void>;
}
