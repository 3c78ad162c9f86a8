import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';

/**
 * The kernel's ephemeral port range (net.ipv4.ip_local_port_range): every client socket
 * and every listen(0) of the tests running in parallel takes a port from it at any moment,
 * so a range picked inside it can be taken between the check and the bind (HAProxy once
 * failed to start that way). Fixed ranges are picked below it.
 */
function ephemeralLow(): number {
  try {
    const low = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
    return Number.isInteger(low) && low > 2_000 ? low : 32_768;
  } catch {
    return 32_768;
  }
}

/** Lowest port the search uses (above the well-known and most registered service ports). */
const SEARCH_LOW = 10_000;
const SEARCH_HIGH = Math.max(SEARCH_LOW + 1_000, ephemeralLow() - 1);

/** Whether every port of [min, max] can be listened on at every one of `hosts` right now (all held at once, then closed). */
async function rangeFree(hosts: readonly string[], min: number, max: number): Promise<boolean> {
  const servers: ReturnType<typeof createServer>[] = [];
  try {
    for (const host of hosts) {
      for (let p = min; p <= max; p++) {
        const s = createServer();
        servers.push(s);
        await new Promise<void>((resolve, reject) => {
          s.once('error', reject);
          s.listen({ port: p, host, exclusive: true }, () => resolve());
        });
      }
    }
    return true;
  } catch {
    return false;
  } finally {
    for (const s of servers) await new Promise<void>((resolve) => (s.listening ? s.close(() => resolve()) : resolve()));
  }
}

/**
 * A block of `size` consecutive ports free on every one of `hosts` right now, outside the
 * kernel's ephemeral range and overlapping none of `avoid` (bounded: 200 random tries).
 */
export async function freePortBlock(size: number, hosts: readonly string[] = ['127.0.0.1'], avoid: ReadonlyArray<readonly [number, number]> = []): Promise<[number, number]> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const start = SEARCH_LOW + Math.floor(Math.random() * (SEARCH_HIGH - SEARCH_LOW + 1 - size));
    const end = start + size - 1;
    if (avoid.some(([a, b]) => start <= b && a <= end)) continue;
    if (await rangeFree(hosts, start, end)) return [start, end];
  }
  throw new Error(`no ${size} consecutive free ports on ${hosts.join(', ')} in ${SEARCH_LOW}-${SEARCH_HIGH} after 200 tries`);
}
