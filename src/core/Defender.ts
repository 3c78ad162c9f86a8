import { readFile } from 'node:fs/promises';
import { RateLimiterMemory, RateLimiterRes, type RateLimiterAbstract } from 'rate-limiter-flexible';
import type { AuditLog } from '../logging/AuditLog.js';
import { normaliseAddress } from '../util/address.js';
import { AllowList } from './AllowList.js';
import { parseBans, writeBansFile, type BanEntry } from './bansFile.js';
import { BanSync } from './shared/BanSync.js';
import type { SharedState } from './shared/SharedState.js';

/** The defender's settings (seconds, as the flags give them). */
export interface DefenderOptions {
  /** Failed logins from one address within `windowS` that ban it; 0 turns the defender off. */
  threshold: number;
  windowS: number;
  /** The first ban's length; each repeat ban of the same address doubles it, up to banTimeMaxS. */
  banTimeS: number;
  banTimeMaxS: number;
  /** Addresses and CIDR ranges never banned. */
  allow: readonly string[];
  /**
   * Where bans are kept (read at start, written on each ban and lift, polled for `dfos bans
   * lift`); undefined: no file (a worker other than the first: the primary holds the bans).
   */
  file: string | undefined;
  audit: AuditLog;
  log: { info(message: string, fields?: object): unknown; warn(message: string, fields?: object): unknown };
  /** How often the file is checked for outside edits and bans for expiry (ms). */
  pollMs?: number;
  /** The cluster's bans and failure scores (`--redis`); absent: this node's memory and file only. */
  shared?: SharedState;
}

/** The settings that can change while the defender runs. */
export type DefenderSettings = Pick<DefenderOptions, 'threshold' | 'windowS' | 'banTimeS' | 'banTimeMaxS' | 'allow'>;

/**
 * Bans client addresses after repeated failed logins (protocol-independent): failures
 * are scored per address with a rate limiter (threshold points per window); the
 * threshold-th failure bans the address for banTime, doubling with each repeat ban.
 * Bans are persisted, so they survive a restart, and the file is polled so that
 * `dfos bans lift` takes effect on a running server.
 *
 * With a shared store (`--redis`), failures on every node count towards one score, and
 * bans are shared: this node pushes its own at once, polls the store's version with the
 * file, and takes the other nodes' bans and lifts (a lift in this node's file is pushed
 * too). Refusals are always decided from this node's own copy, never by asking the store,
 * so a slow or absent store cannot let a banned address in; bans made meanwhile are pushed
 * when it is back.
 */
export class Defender {
  private limiter: RateLimiterAbstract | undefined;
  private allow: AllowList;
  private readonly bans = new Map<string, BanEntry>();
  /** How many times each address was banned (kept after a ban expires, for the doubling). */
  private readonly repeats = new Map<string, number>();
  /** Bans made since the last write (not on the file yet: not lifted by their absence). */
  private readonly unsaved = new Set<string>();
  private timer: NodeJS.Timeout | undefined;
  /** The file's text as last read or written by this server (a difference is an outside edit). */
  private known = '';
  /** File work runs one at a time. */
  private queue: Promise<void> = Promise.resolve();
  /** The cluster's bans (`--redis`); undefined: this node's own only. */
  private readonly cluster: BanSync | undefined;

  private constructor(private options: DefenderOptions) {
    this.allow = new AllowList(options.allow);
    this.limiter = this.limiterFor(options);
    this.cluster = options.shared ? new BanSync(options.shared.bans) : undefined;
  }

  /** Scores in the shared store when there is one (this node's memory while it does not answer), else in memory. */
  private limiterFor(settings: DefenderSettings): RateLimiterAbstract | undefined {
    if (settings.threshold <= 0) return undefined;
    const duration = Math.max(1, Math.ceil(settings.windowS));
    return this.options.shared?.bans.failureLimiter(settings.threshold, duration) ?? new RateLimiterMemory({ points: settings.threshold, duration });
  }

  /**
   * New thresholds, ban times and allow list (SIGHUP). Failed logins are counted afresh
   * under the new threshold; bans in force and the repeat counts that double them stay.
   */
  configure(settings: DefenderSettings): void {
    this.options = { ...this.options, ...settings };
    this.allow = new AllowList(settings.allow);
    this.limiter = this.limiterFor(settings);
  }

  /** Loads the persisted bans (expired ones dropped) and starts polling the file (and the shared store). */
  static async start(options: DefenderOptions): Promise<Defender> {
    const defender = new Defender(options);
    await defender.sync(false);
    if (defender.bans.size > 0) options.log.info('Bans loaded', { file: options.file, bans: defender.bans.size });
    options.shared?.onResync((fresh) => defender.resync(fresh));
    defender.timer = setInterval(
      () =>
        defender.enqueue(async () => {
          await defender.sync(true);
          await defender.pull(false);
        }),
      options.pollMs ?? 1000,
    );
    defender.timer.unref();
    return defender;
  }

  /** The defender is on (threshold above 0). */
  get enabled(): boolean {
    return this.limiter !== undefined;
  }

  /** Stops polling the file. */
  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Waits for pending file writes (tests, shutdown). */
  settled(): Promise<void> {
    return this.queue;
  }

  /** The client-facing reason a connection from `client` is refused, or undefined when it is not banned. */
  refusal(client: string | undefined): string | undefined {
    const ip = normaliseAddress(client);
    if (ip === undefined) return undefined;
    const ban = this.bans.get(ip);
    if (!ban) return undefined;
    const left = ban.until - Date.now();
    if (left <= 0) return undefined;
    return `Too many failed logins from your address; try again in ${Math.ceil(left / 1000)} s`;
  }

  /** The active bans. */
  list(): BanEntry[] {
    const now = Date.now();
    return [...this.bans.values()].filter((b) => b.until > now);
  }

  /**
   * Scores one failed login from `client`; resolves with the ban when this failure
   * triggered one. Allowed addresses and already banned ones are not scored.
   */
  async failed(client: string | undefined, reason: string): Promise<BanEntry | undefined> {
    const ip = normaliseAddress(client);
    if (!this.limiter || ip === undefined || this.allow.has(ip) || this.refusal(ip) !== undefined) return undefined;
    let consumed: number;
    try {
      consumed = (await this.limiter.consume(ip)).consumedPoints;
    } catch (err) {
      if (!(err instanceof RateLimiterRes)) throw err;
      consumed = err.consumedPoints;
    }
    if (consumed < this.options.threshold || this.refusal(ip) !== undefined) return undefined;
    await this.limiter.delete(ip);
    const count = (this.repeats.get(ip) ?? 0) + 1;
    const seconds = Math.min(this.options.banTimeS * 2 ** (count - 1), this.options.banTimeMaxS);
    // An earlier ban that has run out but was not swept yet ends first (its own record).
    if (this.bans.has(ip)) this.lifted(ip, 'expired');
    const ban: BanEntry = { ip, until: Date.now() + Math.round(seconds * 1000), count };
    this.bans.set(ip, ban);
    this.unsaved.add(ip);
    this.repeats.set(ip, count);
    const why = `${this.options.threshold} failed logins within ${this.options.windowS} s (last: ${reason})`;
    this.options.log.warn('Address banned', { client: ip, seconds, count, until: new Date(ban.until).toISOString(), reason: why });
    this.options.audit.record({ session: undefined, user: undefined, client: ip, action: 'ban', result: 'ok', reason: why, durationMs: Math.round(seconds * 1000) });
    this.cluster?.share(ban);
    await this.enqueue(() => this.persist());
    return ban;
  }

  /**
   * Takes the cluster's bans and lifts (see BanSync) when they changed, or at once with
   * `force`; an unreachable store changes nothing here.
   */
  private async pull(force: boolean): Promise<void> {
    const changes = await this.cluster?.pull(this.bans, force);
    if (!changes) return;
    const now = Date.now();
    for (const ban of changes.adopt) {
      const mine = this.bans.get(ban.ip);
      this.bans.set(ban.ip, ban);
      this.repeats.set(ban.ip, Math.max(this.repeats.get(ban.ip) ?? 0, ban.count));
      this.unsaved.add(ban.ip);
      if (!mine || mine.until <= now) {
        this.options.log.info('Address banned on another node', { client: ban.ip, count: ban.count, until: new Date(ban.until).toISOString() });
      }
    }
    for (const ip of changes.lifted) {
      this.bans.delete(ip);
      this.repeats.delete(ip);
      void this.limiter?.delete(ip).catch(() => undefined);
      this.lifted(ip, 'lifted on another node (dfos bans lift --redis, or its bans file)');
    }
    if (changes.adopt.length > 0 || changes.lifted.length > 0) await this.write();
  }

  /** The shared store answers again (or for the first time): push what it missed, then take its bans. */
  private async resync(fresh: boolean): Promise<void> {
    await this.cluster!.resync(fresh, this.list());
    await this.enqueue(() => this.pull(true));
  }

  private enqueue(work: () => Promise<void>): Promise<void> {
    const next = this.queue.then(work).catch((err: unknown) => {
      this.options.log.warn('Bans file not updated', { file: this.options.file, err: err instanceof Error ? err.message : String(err) });
    });
    this.queue = next;
    return next;
  }

  /**
   * Applies outside edits of the file (a ban missing from it was lifted; one added is
   * taken) and drops expired bans; writes the file back when this changed it.
   */
  private async sync(audit: boolean): Promise<void> {
    let text = this.known;
    try {
      if (this.options.file !== undefined) text = await readFile(this.options.file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      text = '';
    }
    let dirty = false;
    if (text !== this.known) {
      const onFile = new Map(parseBans(text).map((b) => [normaliseAddress(b.ip) ?? b.ip, b]));
      for (const [ip, ban] of this.bans) {
        if (onFile.has(ip) || this.unsaved.has(ip)) continue;
        this.bans.delete(ip);
        this.repeats.delete(ip);
        void this.limiter?.delete(ip).catch(() => undefined);
        if (audit && ban.until > Date.now()) {
          this.lifted(ip, 'lifted (removed from the bans file, e.g. dfos bans lift)');
          this.cluster?.unshare(ip, ban.until);
        }
      }
      for (const [ip, ban] of onFile) {
        if (this.unsaved.has(ip)) continue;
        const mine = this.bans.get(ip);
        if (!mine || mine.until !== ban.until || mine.count !== ban.count) {
          this.bans.set(ip, { ...ban, ip });
          this.repeats.set(ip, Math.max(this.repeats.get(ip) ?? 0, ban.count));
          if (audit) this.cluster?.share({ ...ban, ip });
        }
      }
      this.known = text;
    }
    const now = Date.now();
    for (const [ip, ban] of this.bans) {
      if (ban.until > now) continue;
      this.bans.delete(ip);
      dirty = true;
      if (audit) this.lifted(ip, 'expired');
    }
    if (dirty) await this.write();
  }

  private lifted(ip: string, reason: string): void {
    this.options.log.info('Ban lifted', { client: ip, reason });
    this.options.audit.record({ session: undefined, user: undefined, client: ip, action: 'unban', result: 'ok', reason });
  }

  /** Takes in outside edits first (so a lift made meanwhile is not undone), then writes. */
  private async persist(): Promise<void> {
    await this.sync(true);
    await this.write();
  }

  private async write(): Promise<void> {
    const saving = [...this.unsaved];
    if (this.options.file !== undefined) this.known = await writeBansFile(this.options.file, [...this.bans.values()]);
    for (const ip of saving) this.unsaved.delete(ip);
  }
}
