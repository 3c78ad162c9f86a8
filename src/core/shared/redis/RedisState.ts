import type { SharedState } from '../SharedState.js';
import { RedisBans } from './RedisBans.js';
import { RedisLink, type RedisLinkOptions } from './RedisLink.js';
import { RedisLoad } from './RedisLoad.js';
import { RedisUsage } from './RedisUsage.js';

/**
 * The shared state of a node started with `--redis`: one connection (RedisLink) for the
 * bans, the nodes' loads and quota usage. Loaded only when `--redis` is given, so a node
 * without it never loads the Redis client.
 */
export async function openRedisState(options: RedisLinkOptions): Promise<SharedState> {
  const link = await RedisLink.open(options);
  const { prefix, nodeId } = options;
  return {
    nodeId,
    bans: new RedisBans(link, prefix),
    load: new RedisLoad(link, prefix, nodeId),
    usage: new RedisUsage(link, prefix, nodeId),
    onResync: (participant) => link.onResync(participant),
    begin: () => link.begin(),
    stop: () => link.stop(),
  };
}
