import { normaliseAddress } from '../../util/address.js';
import type { BanEntry } from '../bansFile.js';
import type { SharedBans } from './SharedState.js';

/** How this node's bans differ from the cluster's: bans to take (new here, or longer), and addresses lifted elsewhere. */
export interface BanChanges {
  adopt: BanEntry[];
  lifted: string[];
}

/**
 * Keeps a defender's bans in step with the cluster's (`--redis`): this node's bans and
 * lifts are pushed at once and remembered until the store confirms them (pushed again by
 * the resync when it was unreachable), and the store's bans are compared with this node's
 * whenever its version changes. The defender applies the differences; it never asks the
 * store whether an address is banned.
 */
export class BanSync {
  /** Bans the store has not confirmed yet. */
  private readonly toPush = new Map<string, BanEntry>();
  /** Lifts the store has not confirmed yet: address → the lifted ban's end. */
  private readonly toLift = new Map<string, number>();
  /** The store's version as last read (undefined: read at the next pull). */
  private version: string | undefined;

  constructor(private readonly store: SharedBans) {}

  /** Pushes a ban made (or taken from the bans file) on this node. */
  share(ban: BanEntry): void {
    this.toPush.set(ban.ip, ban);
    this.store.put([ban]).then(
      () => {
        if (this.toPush.get(ban.ip) === ban) this.toPush.delete(ban.ip);
      },
      () => undefined,
    );
  }

  /** Pushes a lift made in this node's bans file (a newer, longer ban in the store stays). */
  unshare(ip: string, until: number): void {
    this.toPush.delete(ip);
    this.toLift.set(ip, until);
    this.store.lift(ip, until).then(
      () => {
        if (this.toLift.get(ip) === until) this.toLift.delete(ip);
      },
      () => undefined,
    );
  }

  /**
   * The differences between `local` and the store's bans, when the store's version changed
   * since the last pull (or `force`); undefined when nothing changed or the store does not
   * answer. A ban this node has not pushed yet is not "lifted" by its absence, nor is a
   * ban it lifted itself taken back.
   */
  async pull(local: ReadonlyMap<string, BanEntry>, force: boolean): Promise<BanChanges | undefined> {
    let list: BanEntry[];
    try {
      const version = await this.store.version();
      if (!force && version === this.version) return undefined;
      list = await this.store.all();
      this.version = version;
    } catch {
      return undefined;
    }
    const now = Date.now();
    const held = new Map(list.map((b) => [normaliseAddress(b.ip) ?? b.ip, { ...b, ip: normaliseAddress(b.ip) ?? b.ip }]));
    const adopt = [...held.values()].filter((ban) => !this.toLift.has(ban.ip) && (local.get(ban.ip)?.until ?? 0) < ban.until);
    const lifted = [...local.values()].filter((ban) => !held.has(ban.ip) && !this.toPush.has(ban.ip) && ban.until > now).map((ban) => ban.ip);
    return { adopt, lifted };
  }

  /**
   * The store answers again (or for the first time): pushes the bans and lifts it missed,
   * or every ban in force (`active`) when it lost its data. Rejects when it fails again.
   */
  async resync(fresh: boolean, active: readonly BanEntry[]): Promise<void> {
    const push = fresh ? [...active] : [...this.toPush.values()].filter((b) => b.until > Date.now());
    await this.store.put(push);
    for (const ban of push) if (this.toPush.get(ban.ip) === ban) this.toPush.delete(ban.ip);
    for (const [ip, until] of [...this.toLift]) {
      if (!fresh) await this.store.lift(ip, until);
      this.toLift.delete(ip);
    }
    this.version = undefined;
  }
}
