import type { DfosServer } from '../../src/server/DfosServer.js';
import { formatListenAddress } from '../../src/util/listenAddress.js';

/** Requests to a DFOS admin listener (/metrics, /healthz, /readyz) in tests; every wait is bounded. */

/** What the admin listener answered. */
export interface AdminReply {
  status: number;
  body: string;
  headers: Headers;
}

/** The base URL of an in-process server's admin listener (`http://127.0.0.1:N`); throws when it is off. */
export function adminUrl(server: DfosServer): string {
  const address = server.adminAddress;
  if (!address) throw new Error('the admin listener is off; start the server with adminListen: "127.0.0.1:0"');
  return `http://${formatListenAddress(address)}`;
}

/**
 * Sends `method` (default GET) for `path` to the admin listener at `base` (a URL or an
 * in-process server), with `Authorization: Bearer <token>` when a token is given.
 */
export async function adminRequest(
  base: string | DfosServer,
  path: string,
  options: { token?: string; authorization?: string; method?: string; timeoutMs?: number } = {},
): Promise<AdminReply> {
  const url = `${typeof base === 'string' ? base : adminUrl(base)}${path}`;
  const authorization = options.authorization ?? (options.token === undefined ? undefined : `Bearer ${options.token}`);
  const response = await fetch(url, {
    method: options.method ?? 'GET',
    headers: authorization === undefined ? {} : { authorization },
    signal: AbortSignal.timeout(options.timeoutMs ?? 10_000),
  });
  return { status: response.status, body: await response.text(), headers: response.headers };
}

/** The exposition text of /metrics (throws unless it answers 200). */
export async function scrape(base: string | DfosServer, token?: string): Promise<string> {
  const reply = await adminRequest(base, '/metrics', token === undefined ? {} : { token });
  if (reply.status !== 200) throw new Error(`/metrics answered ${reply.status}: ${reply.body}`);
  return reply.body;
}
