import { BlockList, isIP } from 'node:net';
import { normaliseAddress } from '../util/address.js';

/** `a.b.c.d`, `a.b.c.d/n`, an IPv6 address or `x::/n`: undefined when well-formed, else the problem. */
export function cidrProblem(entry: string): string | undefined {
  const [address, prefix, extra] = entry.split('/');
  if (extra !== undefined || !address) return 'is not an address or CIDR range';
  const family = isIP(address);
  if (family === 0) return 'is not an address or CIDR range';
  if (prefix === undefined) return undefined;
  if (!/^[0-9]{1,3}$/.test(prefix) || Number(prefix) > (family === 4 ? 32 : 128)) return 'has a bad prefix length';
  return undefined;
}

/**
 * Addresses and CIDR ranges (IPv4 and IPv6) that are never banned. IPv4-mapped IPv6
 * clients (`::ffff:10.0.0.1`) match IPv4 ranges.
 */
export class AllowList {
  private readonly list = new BlockList();
  readonly size: number;

  /** `entries` must be well-formed (see cidrProblem). */
  constructor(entries: readonly string[]) {
    for (const entry of entries) {
      const [address, prefix] = entry.split('/') as [string, string | undefined];
      const type = isIP(address) === 6 ? 'ipv6' : 'ipv4';
      if (prefix === undefined) this.list.addAddress(address, type);
      else this.list.addSubnet(address, Number(prefix), type);
    }
    this.size = entries.length;
  }

  /** True when `client` is allowed (never banned). */
  has(client: string | undefined): boolean {
    const address = normaliseAddress(client);
    if (!address || this.size === 0) return false;
    const family = isIP(address);
    if (family === 0) return false;
    return this.list.check(address, family === 6 ? 'ipv6' : 'ipv4');
  }
}
