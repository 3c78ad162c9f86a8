import type { UsageRecord } from '../../usageRecord.js';
import type { SharedUsage } from '../SharedState.js';
import type { RedisLink } from './RedisLink.js';

/**
 * Quota usage in Redis: a hash `<prefix>usage:<user>` (bytes, files, measuredAt,
 * updatedAt; times in ms) per user, changed by atomic increments so that every node's
 * uploads and deletions add up; `<prefix>usage:<user>:measuring` is the short-lived right
 * to walk the user's home first (one node measures, the others wait for its record).
 */

/** KEYS: usage hash. ARGV: bytes, files, measuredAt, updatedAt. Stores the record unless one exists; returns stored (0/1) then the record. */
const SEED = `
local stored = 0
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('HSET', KEYS[1], 'bytes', ARGV[1], 'files', ARGV[2], 'measuredAt', ARGV[3], 'updatedAt', ARGV[4])
  stored = 1
end
local out = redis.call('HGETALL', KEYS[1])
table.insert(out, 1, stored)
return out
`;

/** KEYS: usage hash. ARGV: delta bytes, delta files, updatedAt. Adds (never below zero) to an existing record; returns it, or nil. */
const ADD = `
if redis.call('EXISTS', KEYS[1]) == 0 then return nil end
local bytes = math.max(0, tonumber(redis.call('HGET', KEYS[1], 'bytes') or '0') + tonumber(ARGV[1]))
local files = math.max(0, tonumber(redis.call('HGET', KEYS[1], 'files') or '0') + tonumber(ARGV[2]))
redis.call('HSET', KEYS[1], 'bytes', string.format('%.0f', bytes), 'files', string.format('%.0f', files), 'updatedAt', ARGV[3])
return redis.call('HGETALL', KEYS[1])
`;

/** A record from a flat `field, value, …` reply; undefined when it is empty or malformed. */
function parseRecord(flat: unknown[]): UsageRecord | undefined {
  const fields = new Map<string, number>();
  for (let i = 0; i + 1 < flat.length; i += 2) fields.set(String(flat[i]), Number(flat[i + 1]));
  const bytes = fields.get('bytes');
  const files = fields.get('files');
  if (!Number.isSafeInteger(bytes) || !Number.isSafeInteger(files)) return undefined;
  const time = (name: string) => (Number.isFinite(fields.get(name)) ? fields.get(name)! : 0);
  return { bytes: bytes!, files: files!, measuredAt: time('measuredAt'), updatedAt: time('updatedAt') };
}

/** SharedUsage over a RedisLink. */
export class RedisUsage implements SharedUsage {
  constructor(
    private readonly link: RedisLink,
    private readonly prefix: string,
    private readonly nodeId: string,
  ) {}

  private key(user: string): string {
    return `${this.prefix}usage:${user}`;
  }

  async read(user: string): Promise<UsageRecord | undefined> {
    const flat = await this.link.run((c) => c.call('HGETALL', this.key(user)));
    return Array.isArray(flat) ? parseRecord(flat) : undefined;
  }

  async seed(user: string, record: UsageRecord): Promise<{ record: UsageRecord; stored: boolean }> {
    const args = [record.bytes, record.files, record.measuredAt, record.updatedAt].map((n) => String(Math.round(n)));
    const reply = (await this.link.run((c) => c.eval(SEED, 1, this.key(user), ...args))) as unknown[];
    return { record: parseRecord(reply.slice(1)) ?? record, stored: Number(reply[0]) === 1 };
  }

  async add(user: string, bytes: number, files: number, at: number): Promise<UsageRecord | undefined> {
    const reply = await this.link.run((c) => c.eval(ADD, 1, this.key(user), String(bytes), String(files), String(at)));
    return Array.isArray(reply) ? parseRecord(reply) : undefined;
  }

  async claimMeasurement(user: string, ttlMs: number): Promise<boolean> {
    return (await this.link.run((c) => c.set(`${this.key(user)}:measuring`, this.nodeId, 'PX', ttlMs, 'NX'))) === 'OK';
  }

  async measuring(user: string): Promise<boolean> {
    return (await this.link.run((c) => c.exists(`${this.key(user)}:measuring`))) === 1;
  }

  async releaseMeasurement(user: string): Promise<void> {
    await this.link.run((c) => c.del(`${this.key(user)}:measuring`));
  }

  async drop(user: string): Promise<void> {
    await this.link.run((c) => c.del(this.key(user)));
  }
}
