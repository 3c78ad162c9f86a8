import type { Socket } from 'node:net';
import { AllowList } from '../core/AllowList.js';
import { normaliseAddress } from '../util/address.js';
import { readProxyHeader, startsWithProxyHeader } from './connectionStart.js';

/** Where a connection really comes from. */
export interface ConnectionOrigin {
  /** The client's address: the PROXY header's source, or the peer's own for a direct connection. */
  client: string | undefined;
  /** The trusted proxy the connection came through (the TCP peer), when it did. */
  proxy?: string;
  /** The address the client connected to on the proxy (the header's destination), when the header gave one. */
  proxiedTo?: string;
}

/** The outcome of admitting a new connection. */
export type Admission =
  | { ok: true; origin: ConnectionOrigin }
  /** `quiet`: the peer closed without sending a byte (a TCP health check): not worth a warning. */
  | { ok: false; peer: string | undefined; reason: string; quiet?: boolean };

/** How long a trusted proxy may take to send its header (it sends it first, at once). */
export const PROXY_HEADER_TIMEOUT_MS = 5000;
/**
 * Connections waiting for their first bytes at once, at most, counted apart for trusted
 * proxies and for direct clients on the implicit TLS port. Each holds a socket and at most
 * one header's bytes for up to PROXY_HEADER_TIMEOUT_MS. Past it, a trusted proxy's new
 * connection is refused (a proxy that opens connections and sends nothing cannot pile them
 * up) and a direct client's is admitted unchecked (its header, if any, fails the TLS
 * handshake), so clients cannot crowd out the proxy's connections.
 */
export const MAX_PENDING = 512;

/** Why a connection that sends a PROXY header from an untrusted address is refused (for the log). */
export const UNTRUSTED_HEADER = 'PROXY header from an address that is not in --trusted-proxies';

/**
 * The PROXY protocol policy (`--trusted-proxies`): a connection from a trusted proxy must
 * start with a PROXY header (v1 or v2), whose source is then the client's address for every
 * rule; a connection from any other address is a direct client and its own peer address
 * counts. Only created when the list is not empty: with no trusted proxy the accept path
 * reads no header at all.
 */
export class ProxyGate {
  private readonly trusted: AllowList;
  private pendingHeaders = 0;
  private pendingChecks = 0;

  constructor(
    trusted: readonly string[],
    private readonly timeoutMs = PROXY_HEADER_TIMEOUT_MS,
  ) {
    this.trusted = new AllowList(trusted);
  }

  /** True when `peer` (a TCP peer address) is a trusted proxy. */
  trusts(peer: string | undefined): boolean {
    return this.trusted.has(peer);
  }

  /**
   * Admits a new connection (paused, nothing read yet). One from a trusted proxy once its
   * header is read, the bytes after it left in the socket; a v2 LOCAL header (the proxy's own
   * health check) makes it a direct connection from the proxy. A direct one at once, except
   * with `clientSpeaksFirst` (implicit TLS) where its first bytes are checked for a header
   * first (on ports where the server speaks first, see watchForProxyHeader).
   */
  async admit(socket: Socket, { clientSpeaksFirst = false } = {}): Promise<Admission> {
    const peer = normaliseAddress(socket.remoteAddress);
    const direct: Admission = { ok: true, origin: { client: peer } };
    if (!this.trusts(peer)) {
      if (!clientSpeaksFirst || this.pendingChecks >= MAX_PENDING) return direct;
      this.pendingChecks++;
      try {
        return (await startsWithProxyHeader(socket, this.timeoutMs)) ? { ok: false, peer, reason: UNTRUSTED_HEADER } : direct;
      } finally {
        this.pendingChecks--;
      }
    }
    if (this.pendingHeaders >= MAX_PENDING) return { ok: false, peer, reason: `${MAX_PENDING} connections are already waiting for their PROXY header` };
    this.pendingHeaders++;
    try {
      const read = await readProxyHeader(socket, this.timeoutMs);
      if (read.kind === 'none') return { ok: false, peer, reason: 'a trusted proxy sent no PROXY header (send-proxy or send-proxy-v2 missing on the load balancer?)' };
      if (read.kind === 'refused') return { ok: false, peer, reason: read.reason, ...(read.quiet ? { quiet: true } : {}) };
      const header = read.header;
      if (header.command === 'local') return { ok: true, origin: { client: peer, proxy: peer } };
      return { ok: true, origin: { client: header.source.address, proxy: peer, proxiedTo: header.destination.address } };
    } finally {
      this.pendingHeaders--;
    }
  }
}
