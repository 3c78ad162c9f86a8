import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';

/** What a link needs. */
export interface RedisLinkOptions {
  url: string;
  /** Prefix of every key (`--redis-prefix`). */
  prefix: string;
  /** The URL as it may be logged (password masked). */
  label: string;
  nodeId: string;
  log: { info(message: string, fields?: object): unknown; warn(message: string, fields?: object): unknown };
}

/** Longest wait for a connection (at start and at each reconnection attempt). */
const CONNECT_TIMEOUT_MS = 1000;
/**
 * Longest wait for one command's reply. Nothing on the accept path waits for Redis (bans
 * and session counts are checked in memory); a failed login's scoring and a quota check
 * wait at most this long, then use what this node knows.
 */
const COMMAND_TIMEOUT_MS = 500;
/** Reconnection attempts back off from 100 ms up to this. */
const RECONNECT_MAX_MS = 2000;
/** How often a link that is down checks whether it can resynchronize. */
const CHECK_MS = 1000;

type Participant = (fresh: boolean) => Promise<void>;

/**
 * The connection to Redis and its health, for every shared concept of this node. Commands
 * never queue while disconnected (they fail at once) and never wait longer than
 * COMMAND_TIMEOUT_MS; reconnection runs in the background. Going down is logged once (the
 * first failure, with its error); coming back runs every participant's resync, then is
 * logged once. An `epoch` key tells whether Redis kept its data across the outage: when it
 * was emptied (restarted without persistence, flushed), the nodes refill it from their
 * local copies.
 */
export class RedisLink {
  readonly client: Redis;
  /**
   * The client as a rate limiter sees it: not ready while the link is down (Redis gone, or
   * too slow), so failed logins are scored in memory at once instead of each waiting for a
   * command timeout.
   */
  readonly limiterClient: Redis;
  private state: 'starting' | 'up' | 'down' = 'starting';
  private downSince = 0;
  private readonly participants: Participant[] = [];
  /** The epoch this node last synchronized with (undefined before the first resync). */
  private epoch: string | undefined;
  private resyncing: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  /** A resync succeeded before (a later one is a return after an outage). */
  private connectedOnce = false;
  /** begin() was called: the participants are registered, resyncs may run. */
  private began = false;

  private constructor(private readonly options: RedisLinkOptions) {
    this.client = new Redis(options.url, {
      lazyConnect: true,
      connectTimeout: CONNECT_TIMEOUT_MS,
      commandTimeout: COMMAND_TIMEOUT_MS,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      retryStrategy: (attempt) => (this.stopped ? null : Math.min(100 * 2 ** attempt, RECONNECT_MAX_MS)),
      connectionName: `dfos:${options.nodeId}`,
    });
    this.limiterClient = new Proxy(this.client, {
      get: (target, prop) => {
        if (prop === 'status') return this.state === 'up' ? target.status : 'unreachable';
        const value: unknown = Reflect.get(target, prop, target);
        return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
      },
    });
    this.client.on('error', (err: Error) => this.down(err));
    this.client.on('close', () => this.down(new Error('connection closed')));
    this.client.on('ready', () => {
      if (this.began) void this.resync();
    });
  }

  /**
   * Connects (waiting at most about a second): a Redis that does not answer is logged and
   * the node starts with local state, reconnecting in the background.
   */
  static async open(options: RedisLinkOptions): Promise<RedisLink> {
    const link = new RedisLink(options);
    await link.client.connect().catch((err: unknown) => link.down(err));
    link.timer = setInterval(() => {
      if (link.began && link.state !== 'up' && link.client.status === 'ready') void link.resync();
    }, CHECK_MS);
    link.timer.unref();
    return link;
  }

  /** The key `name` under the prefix. */
  key(name: string): string {
    return `${this.options.prefix}${name}`;
  }

  /** Whether the last command or resync succeeded. */
  get reachable(): boolean {
    return this.state === 'up';
  }

  /** Runs a command; a failure (timeout, disconnection, error reply) marks the link down and rejects. */
  async run<T>(work: (client: Redis) => Promise<T>): Promise<T> {
    try {
      return await work(this.client);
    } catch (err) {
      this.down(err);
      throw err;
    }
  }

  /**
   * Reports that Redis answers but lost its data (the epoch key is gone: flushed, or
   * replaced by an empty server without a reconnection): handled like an outage, so the
   * resync refills it. Returns the error to throw.
   */
  dataLost(): Error {
    const err = new Error('Redis lost its data (flushed or replaced); refilling it from the nodes');
    this.down(err);
    return err;
  }

  onResync(participant: Participant): void {
    this.participants.push(participant);
  }

  /** The first resync, once the participants are registered (at once when connected; else when Redis answers). */
  begin(): Promise<void> {
    this.began = true;
    return this.client.status === 'ready' ? this.resync() : Promise.resolve();
  }

  /** Stops reconnecting and closes the connection (QUIT, bounded). */
  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    if (this.client.status === 'ready') {
      await Promise.race([this.client.quit().catch(() => undefined), new Promise((r) => setTimeout(r, COMMAND_TIMEOUT_MS).unref())]);
    }
    this.client.disconnect();
  }

  private down(err: unknown): void {
    if (this.stopped || this.state === 'down') return;
    const wasStarting = this.state === 'starting';
    this.state = 'down';
    this.downSince = Date.now();
    const message = err instanceof Error ? err.message : String(err);
    this.options.log.warn(`Redis unreachable${wasStarting ? ' at start' : ''}: counting locally until it is back (check --redis if this lasts)`, {
      redis: this.options.label,
      node: this.options.nodeId,
      err: message,
    });
  }

  /** Checks the epoch, runs every participant's resync (one at a time), then reports the link up. */
  private resync(): Promise<void> {
    this.resyncing ??= this.resyncOnce().finally(() => {
      this.resyncing = undefined;
    });
    return this.resyncing;
  }

  private async resyncOnce(): Promise<void> {
    if (this.stopped) return;
    try {
      const key = this.key('epoch');
      const mine = randomUUID();
      const created = (await this.run((c) => c.set(key, mine, 'NX'))) === 'OK';
      const epoch = created ? mine : await this.run((c) => c.get(key));
      // A first sync adopts what Redis holds, unless Redis holds nothing yet; a later one
      // refills Redis when its epoch changed (its data was lost meanwhile).
      const fresh = this.epoch === undefined ? created : epoch !== this.epoch;
      for (const participant of this.participants) await participant(fresh);
      this.epoch = epoch ?? mine;
      this.state = 'up';
      const fields = { redis: this.options.label, node: this.options.nodeId, ...(fresh ? { refilled: true } : {}) };
      if (this.connectedOnce) {
        this.options.log.info('Redis reachable again: resynchronized', { ...fields, downMs: Date.now() - this.downSince });
      } else {
        this.options.log.info('Redis connected: bans, session counts and quota usage are shared', fields);
      }
      this.connectedOnce = true;
    } catch (err) {
      this.down(err);
    }
  }
}
