import { connect, isIPv4, type Socket } from 'node:net';
import {
  Command,
  INETProtocol,
  IPv4Address,
  IPv4ProxyAddress,
  IPv6Address,
  IPv6ProxyAddress,
  Peer,
  TransportProtocol,
  UnspecProxyAddress,
  V1ProxyProtocol,
  V2ProxyProtocol,
} from 'proxy-protocol-js';
import { RawFtp, type RawReply } from './rawFtp.js';
import type { DataOpener } from './dataTransfer.js';

/**
 * PROXY protocol headers for tests (built with proxy-protocol-js, the library DFOS parses
 * them with, and checked by hand-made bytes in the tests), and connections that play a load
 * balancer: they connect from a trusted address (127.0.0.1 by default) and send a header
 * naming a made-up client before anything else.
 */

/** Where the made-up client connected to on the "load balancer" (the header's destination). */
export const BALANCER = { v4: '198.51.100.1', v6: '2001:db8::1', port: 21 };

/** The 16 bytes of an IPv6 address (test addresses only: no embedded IPv4). */
function ipv6Bytes(address: string): number[] {
  const [head = '', tail] = address.split('::');
  const groups = (text: string) => (text === '' ? [] : text.split(':').map((g) => parseInt(g, 16)));
  const left = groups(head);
  const right = tail === undefined ? [] : groups(tail);
  const all = [...left, ...Array<number>(8 - left.length - right.length).fill(0), ...right];
  return all.flatMap((g) => [g >> 8, g & 0xff]);
}

/** A v1 (text) header: `PROXY TCP4|TCP6 <source> <destination> <sport> <dport>\r\n`. */
export function proxyV1(source: string, sourcePort = 40_000): Buffer {
  const v4 = isIPv4(source);
  const protocol = v4 ? INETProtocol.TCP4 : INETProtocol.TCP6;
  const text = new V1ProxyProtocol(protocol, new Peer(source, sourcePort), new Peer(v4 ? BALANCER.v4 : BALANCER.v6, BALANCER.port)).build();
  return Buffer.from(text, 'latin1');
}

/** A v2 (binary) PROXY header for a TCP connection from `source` (IPv4 or IPv6). */
export function proxyV2(source: string, sourcePort = 40_000): Buffer {
  const address = isIPv4(source)
    ? new IPv4ProxyAddress(IPv4Address.createFrom(source.split('.').map(Number)), sourcePort, IPv4Address.createFrom(BALANCER.v4.split('.').map(Number)), BALANCER.port)
    : new IPv6ProxyAddress(IPv6Address.createFrom(ipv6Bytes(source)), sourcePort, IPv6Address.createFrom(ipv6Bytes(BALANCER.v6)), BALANCER.port);
  return Buffer.from(new V2ProxyProtocol(Command.PROXY, TransportProtocol.STREAM, address).build());
}

/** A v2 LOCAL header: the balancer's own connection (a health check), no client address. */
export function proxyV2Local(): Buffer {
  return Buffer.from(new V2ProxyProtocol(Command.LOCAL, TransportProtocol.UNSPEC, new UnspecProxyAddress()).build());
}

/** Both header versions, for tests that run once per version. */
export const PROXY_VERSIONS = [
  { name: 'v1', header: proxyV1 },
  { name: 'v2', header: proxyV2 },
] as const;

/** Opens a TCP connection from `localAddress` to `port` on 127.0.0.1 and writes `first` at once (bounded wait). */
export async function connectSending(port: number, first: Buffer, localAddress = '127.0.0.1', timeoutMs = 5000): Promise<Socket> {
  const socket = connect({ host: '127.0.0.1', port, localAddress });
  socket.setNoDelay(true);
  socket.on('error', () => undefined);
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no connection within ${timeoutMs} ms`)), timeoutMs);
    socket.once('connect', () => {
      clearTimeout(timer);
      resolve();
    });
    socket.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
  if (first.length > 0) socket.write(first);
  return socket;
}

/** A control connection through the "balancer" at `proxy`, for a client at `source`: header sent, greeting read. */
export async function proxiedFtp(port: number, source: string, options: { header?: (source: string) => Buffer; proxy?: string } = {}): Promise<RawFtp> {
  const socket = await connectSending(port, (options.header ?? proxyV2)(source), options.proxy);
  return RawFtp.over(socket);
}

/** proxiedFtp, then USER and PASS; throws unless the login succeeds. */
export async function proxiedLogin(port: number, source: string, user: string, password: string, options: { header?: (source: string) => Buffer } = {}): Promise<RawFtp> {
  const raw = await proxiedFtp(port, source, options);
  await raw.command(`USER ${user}`);
  const reply = await raw.command(`PASS ${password}`);
  if (reply.code !== 230) throw new Error(`login failed: ${reply.raw}`);
  return raw;
}

/** Opens an EPSV data connection through the "balancer": a header for `source` first (v2 unless told). */
export function proxiedData(source: string, header: (source: string) => Buffer = proxyV2): DataOpener {
  return (epsv: RawReply) => {
    const m = /\(\|\|\|(\d+)\|\)/.exec(epsv.raw);
    if (!m) throw new Error(`not an EPSV reply: ${epsv.raw}`);
    return connectSending(Number(m[1]), header(source));
  };
}
