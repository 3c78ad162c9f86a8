import { randomBytes } from 'node:crypto';
import type { BanEntry } from '../../bansFile.js';
import { formatUsage, readUsageFile } from '../../UsageLedger.js';
import type { UsageRecord } from '../../usageRecord.js';
import { writeTextAtomic } from '../../../util/writeTextAtomic.js';
import type { NodeLoad } from '../SharedState.js';
import type { StateOp } from './protocol.js';

/** A worker's published load counts this long without being published again (as with Redis). */
const LOAD_TTL_MS = 5000;

/**
 * The shared state of `--workers N` without `--redis`, held in the primary's memory: the
 * same operations and rules as the Redis store (a ban never shortens a longer one, a lift
 * never removes a newer, longer ban, usage changes add up and never go below zero, one
 * worker measures a home for all), answered to the workers over IPC (IpcState). The
 * primary also persists the quota usage in usage.json (the workers have no usage file);
 * bans.json stays with the first worker, whose Defender polls it for `dfos bans lift`.
 */
export class MemoryStore {
  private readonly epoch = randomBytes(4).toString('hex');
  private bansVersion = 0;
  private readonly bans = new Map<string, BanEntry>();
  private readonly loads = new Map<string, { load: NodeLoad; at: number }>();
  private readonly usage: Map<string, UsageRecord>;
  private readonly measuring = new Map<string, { by: string; until: number }>();
  private timer: NodeJS.Timeout | undefined;
  private writing: Promise<void> = Promise.resolve();

  private constructor(
    private readonly usageFile: string | undefined,
    usage: Map<string, UsageRecord>,
    private readonly log: (message: string, fields?: object) => void,
  ) {
    this.usage = usage;
  }

  /** A store with the usage persisted in `usageFile` (read now). */
  static async open(usageFile: string | undefined, log: (message: string, fields?: object) => void): Promise<MemoryStore> {
    return new MemoryStore(usageFile, usageFile === undefined ? new Map() : await readUsageFile(usageFile), log);
  }

  /** Answers one worker's call. */
  handle(worker: string, op: StateOp, args: unknown[]): unknown {
    switch (op) {
      case 'bans.version':
        return `${this.epoch}:${this.bansVersion}`;
      case 'bans.all':
        return this.allBans();
      case 'bans.put':
        return this.putBans(args[0] as BanEntry[]);
      case 'bans.lift':
        return this.liftBan(String(args[0]), Number(args[1]));
      case 'load.exchange':
        return this.exchange(worker, args[0] as NodeLoad);
      case 'load.leave':
        return void this.loads.delete(worker);
      case 'usage.read':
        return this.usage.get(String(args[0]));
      case 'usage.seed':
        return this.seed(String(args[0]), args[1] as UsageRecord);
      case 'usage.add':
        return this.add(String(args[0]), Number(args[1]), Number(args[2]), Number(args[3]));
      case 'usage.claim':
        return this.claim(worker, String(args[0]), Number(args[1]));
      case 'usage.measuring':
        return this.isMeasuring(String(args[0]));
      case 'usage.release':
        return void this.measuring.delete(String(args[0]));
      case 'usage.drop':
        if (this.usage.delete(String(args[0]))) this.changed();
        return undefined;
    }
  }

  /** A worker is gone: its sessions no longer count, its measurements are given back. */
  workerGone(worker: string): void {
    this.loads.delete(worker);
    for (const [user, m] of this.measuring) if (m.by === worker) this.measuring.delete(user);
  }

  /** Writes the usage now (shutdown). */
  async flush(): Promise<void> {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
      this.write();
    }
    await this.writing;
  }

  private allBans(): BanEntry[] {
    const now = Date.now();
    for (const [ip, ban] of this.bans) if (ban.until <= now) this.bans.delete(ip);
    return [...this.bans.values()];
  }

  private putBans(bans: BanEntry[]): void {
    let changed = false;
    for (const ban of bans) {
      const old = this.bans.get(ban.ip);
      if (old && old.until >= ban.until) continue;
      this.bans.set(ban.ip, { ip: ban.ip, until: ban.until, count: Math.max(ban.count, old?.count ?? 0) });
      changed = true;
    }
    if (changed) this.bansVersion++;
  }

  private liftBan(ip: string, until: number): boolean {
    const old = this.bans.get(ip);
    if (!old || old.until > until) return false;
    this.bans.delete(ip);
    this.bansVersion++;
    return true;
  }

  private exchange(worker: string, load: NodeLoad): NodeLoad[] {
    const now = Date.now();
    this.loads.set(worker, { load, at: now });
    const others: NodeLoad[] = [];
    for (const [id, entry] of this.loads) {
      if (now - entry.at > LOAD_TTL_MS) this.loads.delete(id);
      else if (id !== worker) others.push(entry.load);
    }
    return others;
  }

  private seed(user: string, record: UsageRecord): { record: UsageRecord; stored: boolean } {
    const held = this.usage.get(user);
    if (held) return { record: held, stored: false };
    const copy = { bytes: record.bytes, files: record.files, measuredAt: record.measuredAt, updatedAt: record.updatedAt };
    this.usage.set(user, copy);
    this.changed();
    return { record: copy, stored: true };
  }

  private add(user: string, bytes: number, files: number, at: number): UsageRecord | undefined {
    const held = this.usage.get(user);
    if (!held) return undefined;
    held.bytes = Math.max(0, held.bytes + bytes);
    held.files = Math.max(0, held.files + files);
    held.updatedAt = at;
    this.changed();
    return held;
  }

  private claim(worker: string, user: string, ttlMs: number): boolean {
    if (this.isMeasuring(user)) return false;
    this.measuring.set(user, { by: worker, until: Date.now() + ttlMs });
    return true;
  }

  private isMeasuring(user: string): boolean {
    const m = this.measuring.get(user);
    if (m && m.until <= Date.now()) this.measuring.delete(user);
    return this.measuring.has(user);
  }

  private changed(): void {
    if (this.usageFile === undefined || this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.write();
    }, 1000);
    this.timer.unref();
  }

  private write(): void {
    const file = this.usageFile;
    if (file === undefined) return;
    this.writing = this.writing.then(async () => {
      try {
        await writeTextAtomic(file, formatUsage(this.usage));
      } catch (err) {
        this.log('Cannot write the quota usage file; usage will be measured again after a restart', { file, err: err instanceof Error ? err.message : String(err) });
      }
    });
  }
}
