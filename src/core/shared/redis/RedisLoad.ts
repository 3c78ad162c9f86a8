import type { NodeLoad, SharedLoad } from '../SharedState.js';
import type { RedisLink } from './RedisLink.js';

/**
 * Each node's load in Redis: `<prefix>node:<node-id>` holds its last published NodeLoad as
 * JSON and expires unless published again, so the sessions of a node that crashed or lost
 * Redis stop counting after LOAD_TTL_MS; `<prefix>nodes` lists the node ids (ids whose key
 * expired are removed by the next exchange).
 */

/** How long a published load counts without being published again. */
export const LOAD_TTL_MS = 5000;

/**
 * KEYS: the node set. ARGV: key prefix of node loads, this node's id, its load, TTL in ms.
 * Publishes this node's load and returns every other node's.
 */
const EXCHANGE = `
redis.call('SET', ARGV[1] .. ARGV[2], ARGV[3], 'PX', ARGV[4])
redis.call('SADD', KEYS[1], ARGV[2])
local out = {}
for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if id ~= ARGV[2] then
    local v = redis.call('GET', ARGV[1] .. id)
    if v then out[#out + 1] = v else redis.call('SREM', KEYS[1], id) end
  end
end
return out
`;

/** A published load as far as it parses (a malformed one counts as nothing). */
function parseLoad(text: unknown): NodeLoad | undefined {
  try {
    const v = JSON.parse(String(text)) as Partial<NodeLoad> | null;
    if (!v || typeof v !== 'object') return undefined;
    return { ips: v.ips ?? {}, users: v.users ?? {}, reserved: v.reserved ?? {} };
  } catch {
    return undefined;
  }
}

/** SharedLoad over a RedisLink. */
export class RedisLoad implements SharedLoad {
  constructor(
    private readonly link: RedisLink,
    private readonly prefix: string,
    private readonly nodeId: string,
  ) {}

  async exchange(load: NodeLoad): Promise<NodeLoad[]> {
    const others = await this.link.run((c) => c.eval(EXCHANGE, 1, `${this.prefix}nodes`, `${this.prefix}node:`, this.nodeId, JSON.stringify(load), String(LOAD_TTL_MS)));
    return (Array.isArray(others) ? others : []).map(parseLoad).filter((l): l is NodeLoad => l !== undefined);
  }

  async leave(): Promise<void> {
    await this.link.run((c) => c.multi().del(`${this.prefix}node:${this.nodeId}`).srem(`${this.prefix}nodes`, this.nodeId).exec());
  }
}
