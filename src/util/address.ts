import { isIPv4 } from 'node:net';

/** Client addresses as DFOS compares, logs and checks them. */

/** `::ffff:127.0.0.1` → `127.0.0.1` (an IPv4 client on a dual-stack socket); other addresses unchanged. */
export function normaliseAddress(address: string | undefined): string | undefined {
  return address?.startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address;
}

/**
 * True for loopback addresses: 127.0.0.0/8, ::1 and IPv4-mapped 127.x.x.x (::ffff:127.0.0.1),
 * with or without an IPv6 zone suffix.
 */
export function isLoopbackAddress(address: string | undefined | null): boolean {
  if (!address) return false;
  let a = address.trim().toLowerCase();
  if (a.startsWith('[') && a.endsWith(']')) a = a.slice(1, -1);
  const zone = a.indexOf('%');
  if (zone !== -1) a = a.slice(0, zone);
  if (a.startsWith('::ffff:')) a = a.slice('::ffff:'.length);
  if (isIPv4(a)) return a.startsWith('127.');
  // ::1 in any spelling (0:0:0:0:0:0:0:1, ::0:1, …).
  if (!/^[0-9a-f:]+$/.test(a) || !a.includes(':')) return false;
  const halves = a.split('::');
  if (halves.length > 2) return false;
  const groups = halves.flatMap((h) => (h === '' ? [] : h.split(':')));
  if (groups.some((g) => g.length === 0 || g.length > 4)) return false;
  if (halves.length === 1 && groups.length !== 8) return false;
  if (halves.length === 2 && groups.length > 7) return false;
  const last = groups.at(-1);
  return last !== undefined && parseInt(last, 16) === 1 && groups.slice(0, -1).every((g) => parseInt(g, 16) === 0);
}
