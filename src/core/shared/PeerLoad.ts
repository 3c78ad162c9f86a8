import type { NodeLoad, SharedLoad } from './SharedState.js';

/** How often this node publishes its load and reads the others'. */
const EXCHANGE_MS = 500;
/** Other nodes' loads older than this are ignored (this node lost the shared store). */
const STALE_MS = 3000;

/** An empty load. */
export function emptyLoad(): NodeLoad {
  return { ips: {}, users: {}, reserved: {} };
}

/**
 * What the other nodes have open, for caps and quotas that count across nodes: every
 * EXCHANGE_MS this node publishes its own load and keeps the others' sums in memory, so a
 * check (a new connection, a login, an upload's chunk) never waits for the shared store.
 * The sums lag by up to about a second; when the store stops answering they are dropped
 * after STALE_MS and this node counts only its own.
 */
export class PeerLoad {
  private ips = new Map<string, number>();
  private users = new Map<string, number>();
  private reserved = new Map<string, [number, number]>();
  private at = 0;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  /** An exchange waiting for the running one to end (see fresh()). */
  private queued: Promise<void> | undefined;
  /** Users with a reservation in the load the running exchange publishes. */
  private sending = new Set<string>();
  /** Users with a reservation in a load published before (as far as the other nodes may still have it). */
  private sent = new Set<string>();

  constructor(
    private readonly store: SharedLoad,
    /** This node's load right now. */
    private readonly local: () => NodeLoad,
  ) {}

  /** Starts exchanging (the first exchange at once). */
  start(): void {
    this.timer = setInterval(() => void this.exchange(), EXCHANGE_MS);
    this.timer.unref();
    void this.exchange();
  }

  /** Publishes now and refreshes the sums (one exchange at a time; failures keep the last sums until they are stale). */
  exchange(): Promise<void> {
    if (this.running) return this.running;
    const load = this.local();
    this.sending = new Set(Object.keys(load.reserved));
    this.running = this.store
      .exchange(load)
      .then((others) => {
        this.sum(others);
        this.sent = this.sending;
      })
      .catch(() => {
        // It may or may not have landed: the other nodes may have either load.
        for (const user of this.sending) this.sent.add(user);
      })
      .finally(() => {
        this.sending = new Set();
        this.running = undefined;
      });
    return this.running;
  }

  /**
   * Whether the other nodes may see a reservation of `user`'s from this node (in the load
   * last published, or being published): only then does an upload's end need fresh().
   */
  advertises(user: string): boolean {
    return this.sending.has(user) || this.sent.has(user);
  }

  /**
   * An exchange that starts after this call (after the one in flight, if any, ends): what
   * it publishes and reads is at least as new as the call. Callers that come while one is
   * waiting share it. Bounded like exchange().
   */
  fresh(): Promise<void> {
    this.queued ??= (this.running ?? Promise.resolve()).then(() => {
      this.queued = undefined;
      return this.exchange();
    });
    return this.queued;
  }

  /** Stops exchanging and withdraws this node's load (bounded by the store's timeout). */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.running;
    await this.store.leave().catch(() => undefined);
  }

  /** Sessions open on the other nodes from client address `ip`. */
  sessionsFrom(ip: string | undefined): number {
    return ip === undefined || this.stale() ? 0 : (this.ips.get(ip) ?? 0);
  }

  /** Sessions `user` has logged in on the other nodes. */
  sessionsOf(user: string): number {
    return this.stale() ? 0 : (this.users.get(user) ?? 0);
  }

  /** Bytes and file slots that `user`'s uploads in flight on the other nodes hold. */
  reservedBy(user: string): { bytes: number; files: number } {
    const r = this.stale() ? undefined : this.reserved.get(user);
    return { bytes: r?.[0] ?? 0, files: r?.[1] ?? 0 };
  }

  private stale(): boolean {
    return Date.now() - this.at > STALE_MS;
  }

  private sum(others: NodeLoad[]): void {
    const ips = new Map<string, number>();
    const users = new Map<string, number>();
    const reserved = new Map<string, [number, number]>();
    const add = (map: Map<string, number>, counts: Record<string, number>) => {
      for (const [k, n] of Object.entries(counts)) if (Number.isFinite(n)) map.set(k, (map.get(k) ?? 0) + n);
    };
    for (const load of others) {
      add(ips, load.ips);
      add(users, load.users);
      for (const [user, entry] of Object.entries(load.reserved)) {
        if (!Array.isArray(entry)) continue; // another node's malformed entry counts as nothing
        const [bytes, files] = entry as unknown[];
        const r = reserved.get(user) ?? [0, 0];
        reserved.set(user, [r[0] + (Number(bytes) || 0), r[1] + (Number(files) || 0)]);
      }
    }
    this.ips = ips;
    this.users = users;
    this.reserved = reserved;
    this.at = Date.now();
  }
}
