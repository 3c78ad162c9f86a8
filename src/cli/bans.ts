import { Option, type Command } from 'commander';
import { isIP } from 'node:net';
import { maskSecret } from '../config/effectiveConfig.js';
import { bansFilePath, readBansFile, writeBansFile, type BanEntry } from '../core/bansFile.js';
import { isRedisPrefix, isRedisUrl, REDIS_PREFIX_RULE, REDIS_URL_RULE } from '../core/shared/redisUrl.js';
import { normaliseAddress } from '../util/address.js';
import { operationError, usageError } from './errors.js';
import { stateDirOption } from './options.js';

/** Where `dfos bans` reads and writes: Redis (`--redis`, shared by a cluster) or the state directory's bans.json. */
interface BansOptions {
  stateDir: string;
  redis?: string;
  redisPrefix: string;
}

/** `--redis URL` and `--redis-prefix P` (env DFOS_REDIS, DFOS_REDIS_PREFIX), as `dfos serve` takes them. */
function redisOptions(): Option[] {
  return [
    new Option('--redis <url>', "the cluster's Redis (as given to dfos serve): list or lift there instead of in bans.json").env('DFOS_REDIS'),
    new Option('--redis-prefix <prefix>', 'prefix of the Redis keys (as given to dfos serve)').env('DFOS_REDIS_PREFIX').default('dfos:'),
  ];
}

/** Runs `work` on the cluster's Redis, or throws one line naming the flag and the problem. */
async function onRedis<T>(opts: BansOptions & { redis: string }, work: (bans: typeof import('../core/shared/redis/RedisBans.js')) => Promise<T>): Promise<T> {
  if (!isRedisUrl(opts.redis)) throw usageError(`--${REDIS_URL_RULE} (got ${JSON.stringify(maskSecret('redis', opts.redis))})`);
  if (!isRedisPrefix(opts.redisPrefix)) throw usageError(`--${REDIS_PREFIX_RULE} (got ${JSON.stringify(opts.redisPrefix)})`);
  const bans = await import('../core/shared/redis/RedisBans.js');
  try {
    return await work(bans);
  } catch (err) {
    throw operationError(`cannot use Redis at ${String(maskSecret('redis', opts.redis))}: ${err instanceof Error ? err.message : String(err)}; check --redis`);
  }
}

/** Where the bans were read or written, for the messages. */
function place(opts: BansOptions): string {
  return opts.redis !== undefined ? `Redis ${String(maskSecret('redis', opts.redis))} (prefix ${opts.redisPrefix})` : bansFilePath(opts.stateDir);
}

/** Registers `dfos bans list|lift`. */
export function registerBans(program: Command): void {
  const bans = program.command('bans').description('list or lift the addresses banned after failed logins');

  const list = bans
    .command('list')
    .description('list active bans: address, until (UTC), how many times banned')
    .addOption(stateDirOption('bans in bans.json'));
  for (const o of redisOptions()) list.addOption(o);
  list.action(async (opts: BansOptions) => {
    const { redis } = opts;
    const now = Date.now();
    const all: BanEntry[] =
      redis !== undefined ? await onRedis({ ...opts, redis }, (b) => b.listBansAt(redis, opts.redisPrefix)) : await readBansFile(bansFilePath(opts.stateDir));
    const active = all.filter((b) => b.until > now).sort((a, b) => (a.ip < b.ip ? -1 : a.ip > b.ip ? 1 : 0));
    if (active.length === 0) {
      process.stderr.write(`no active bans in ${place(opts)}\n`);
      return;
    }
    for (const b of active) process.stdout.write(`${b.ip}  until ${new Date(b.until).toISOString()}  count ${b.count}\n`);
  });

  const lift = bans
    .command('lift')
    .description('lift the ban of an address (running servers notice within seconds; with --redis, every node of the cluster)')
    .argument('<ip>', 'the banned address')
    .addOption(stateDirOption('bans in bans.json'));
  for (const o of redisOptions()) lift.addOption(o);
  lift.action(async (ip: string, opts: BansOptions) => {
    const address = normaliseAddress(ip.trim());
    if (!address || isIP(address) === 0) throw usageError(`IP must be an IPv4 or IPv6 address (got ${JSON.stringify(ip)})`);
    const { redis } = opts;
    if (redis !== undefined) {
      const lifted = await onRedis({ ...opts, redis }, (b) => b.liftBanAt(redis, opts.redisPrefix, address));
      if (!lifted) throw operationError(`${address} is not banned (${place(opts)})`);
    } else {
      const file = bansFilePath(opts.stateDir);
      const all = await readBansFile(file);
      const rest = all.filter((b) => normaliseAddress(b.ip) !== address);
      if (rest.length === all.length) throw operationError(`${address} is not banned (${file})`);
      await writeBansFile(file, rest);
    }
    process.stdout.write(`lifted the ban of ${address} in ${place(opts)}\n`);
  });
}
