import type { Redis } from 'ioredis';
import { RateLimiterMemory, RateLimiterRedis, type RateLimiterAbstract } from 'rate-limiter-flexible';
import type { BanEntry } from '../../bansFile.js';
import type { SharedBans } from '../SharedState.js';
import type { RedisLink } from './RedisLink.js';
import { withRedis } from './redisCommand.js';

/**
 * The bans in Redis: a hash `<prefix>bans` of address → `until:count` (until in ms since
 * the epoch), and `<prefix>bans:version`, incremented by every ban and lift so that nodes
 * poll one small key and read the hash only when it changed. Failed-login scores are
 * rate-limiter-flexible keys `<prefix>fail:<address>`. The scripts keep each change atomic:
 * a ban never shortens a longer one, and a node's lift never removes a newer, longer ban.
 */

/** KEYS: hash, version. ARGV: address, until, count, … Keeps the longer ban and the higher count. */
const PUT = `
local changed = 0
for i = 1, #ARGV, 3 do
  local old = redis.call('HGET', KEYS[1], ARGV[i])
  local oldUntil, oldCount = 0, 0
  if old then
    local u, c = string.match(old, '^(%d+):(%d+)$')
    oldUntil, oldCount = tonumber(u) or 0, tonumber(c) or 0
  end
  if tonumber(ARGV[i + 1]) > oldUntil then
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1] .. ':' .. math.max(tonumber(ARGV[i + 2]), oldCount))
    changed = 1
  end
end
if changed == 1 then redis.call('INCR', KEYS[2]) end
return changed
`;

/** KEYS: hash, version. ARGV: address, until. Lifts the ban unless it ends later than until. */
const LIFT = `
local old = redis.call('HGET', KEYS[1], ARGV[1])
if not old then return 0 end
local u = tonumber(string.match(old, '^(%d+)')) or 0
if u > tonumber(ARGV[2]) then return 0 end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('INCR', KEYS[2])
return 1
`;

/** KEYS: hash. ARGV: now. Drops expired bans and returns the others as address, value, … */
const ALL = `
local out = {}
local flat = redis.call('HGETALL', KEYS[1])
for i = 1, #flat, 2 do
  local u = tonumber(string.match(flat[i + 1], '^(%d+)'))
  if u == nil or u <= tonumber(ARGV[1]) then
    redis.call('HDEL', KEYS[1], flat[i])
  else
    out[#out + 1] = flat[i]
    out[#out + 1] = flat[i + 1]
  end
end
return out
`;

/** A lift of any ban, whatever its end (dfos bans lift). */
const ANY_BAN = Number.MAX_SAFE_INTEGER;

function keys(prefix: string): { hash: string; version: string } {
  return { hash: `${prefix}bans`, version: `${prefix}bans:version` };
}

/** The bans a flat `address, until:count, …` reply holds. */
function parse(flat: unknown): BanEntry[] {
  const out: BanEntry[] = [];
  if (!Array.isArray(flat)) return out;
  for (let i = 0; i + 1 < flat.length; i += 2) {
    const m = /^(\d+):(\d+)$/.exec(String(flat[i + 1]));
    if (m) out.push({ ip: String(flat[i]), until: Number(m[1]), count: Math.max(1, Number(m[2])) });
  }
  return out;
}

async function readBans(client: Redis, prefix: string): Promise<BanEntry[]> {
  return parse(await client.eval(ALL, 1, keys(prefix).hash, String(Date.now())));
}

async function liftBan(client: Redis, prefix: string, ip: string, until: number): Promise<boolean> {
  const k = keys(prefix);
  return (await client.eval(LIFT, 2, k.hash, k.version, ip, String(until))) === 1;
}

/** Every ban in force in the Redis at `url` (dfos bans list --redis). */
export function listBansAt(url: string, prefix: string): Promise<BanEntry[]> {
  return withRedis(url, (client) => readBans(client, prefix));
}

/** Lifts the ban of `ip`, whatever its end, in the Redis at `url` (dfos bans lift --redis); resolves true when there was one. */
export function liftBanAt(url: string, prefix: string, ip: string): Promise<boolean> {
  return withRedis(url, (client) => liftBan(client, prefix, ip, ANY_BAN));
}

/** SharedBans over a RedisLink. */
export class RedisBans implements SharedBans {
  private readonly keys: { hash: string; version: string };

  constructor(
    private readonly link: RedisLink,
    private readonly prefix: string,
  ) {
    this.keys = keys(prefix);
  }

  /** The epoch and the version: an emptied Redis is never read as "every ban was lifted". */
  async version(): Promise<string> {
    const [epoch, version] = await this.link.run((c) => c.mget(this.link.key('epoch'), this.keys.version));
    if (epoch === null || epoch === undefined) throw this.link.dataLost();
    return `${epoch}:${version ?? '0'}`;
  }

  all(): Promise<BanEntry[]> {
    return this.link.run((c) => readBans(c, this.prefix));
  }

  async put(bans: readonly BanEntry[]): Promise<void> {
    if (bans.length === 0) return;
    const args = bans.flatMap((b) => [b.ip, String(b.until), String(b.count)]);
    await this.link.run((c) => c.eval(PUT, 2, this.keys.hash, this.keys.version, ...args));
  }

  lift(ip: string, until: number): Promise<boolean> {
    return this.link.run((c) => liftBan(c, this.prefix, ip, until));
  }

  /**
   * Scores in Redis, so failures on every node add up; while Redis does not answer (not
   * connected, or slower than the command timeout) this node's memory scores instead.
   */
  failureLimiter(points: number, durationS: number): RateLimiterAbstract {
    return new RateLimiterRedis({
      storeClient: this.link.limiterClient,
      keyPrefix: `${this.prefix}fail`,
      points,
      duration: durationS,
      rejectIfRedisNotReady: true,
      insuranceLimiter: new RateLimiterMemory({ points, duration: durationS }),
    });
  }
}
