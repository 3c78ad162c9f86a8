import { isIP } from 'node:net';

/** An address to listen on, as a `HOST:PORT` flag gives it. */
export interface ListenAddress {
  /** An IP address (IPv6 without brackets). */
  host: string;
  /** 0 picks a free port. */
  port: number;
}

/**
 * Parses `HOST:PORT` (`127.0.0.1:9121`, `[::1]:9121`, `0.0.0.0:0`) with an IP address as
 * HOST; undefined when it is not that form. `off` is the caller's business.
 */
export function parseListenAddress(value: string): ListenAddress | undefined {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]+)):([0-9]{1,5})$/.exec(value.trim());
  if (!m) return undefined;
  const host = m[1] ?? m[2]!;
  const port = Number(m[3]);
  const family = isIP(host);
  // IPv6 needs its brackets (otherwise its colons make the port ambiguous).
  if (family === 0 || (family === 6) !== (m[1] !== undefined) || port > 65535) return undefined;
  return { host, port };
}

/** `HOST:PORT` for messages and URLs (IPv6 in brackets). */
export function formatListenAddress(address: ListenAddress): string {
  return address.host.includes(':') ? `[${address.host}]:${address.port}` : `${address.host}:${address.port}`;
}

