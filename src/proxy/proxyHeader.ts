import { isIPv4, isIPv6, SocketAddress } from 'node:net';
import {
  AddressFamilyType,
  Command,
  INETProtocol,
  IPv4ProxyAddress,
  IPv6ProxyAddress,
  TransportProtocol,
  V1ProxyProtocol,
  V2ProxyProtocol,
} from 'proxy-protocol-js';
import { normaliseAddress } from '../util/address.js';

/**
 * The PROXY protocol header (HAProxy's proxy-protocol.txt, versions 1 and 2) that a load
 * balancer puts in front of a connection to tell the server whose connection it is:
 * where a header ends in the bytes received so far (framing, with the sizes bounded), and
 * what a complete one says (parsed by proxy-protocol-js, then checked: the library parses
 * complete headers only and accepts any text as a v1 address).
 */

/** A v1 header is at most 107 bytes, CRLF included (spec §2.1). */
export const V1_MAX_BYTES = 107;
/**
 * The largest v2 header accepted. The spec allows 16 + 65535 bytes; HAProxy sends 28
 * (IPv4) or 52 (IPv6) plus its optional TLVs (ALPN, authority, unique id, SSL), far less
 * than this. Anything longer is refused without being buffered.
 */
export const V2_MAX_BYTES = 2048;
/** The fixed part of a v2 header: signature, version/command, family/transport, length. */
const V2_FIXED_BYTES = 16;

const V1_SIGNATURE = Buffer.from('PROXY ', 'latin1');
const V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
/** Bytes enough to tell whether a connection starts with either signature. */
export const SIGNATURE_BYTES = V2_SIGNATURE.length;

/** Whether `bytes` (the first ones of a connection) start a PROXY header: yes, no, or too few to tell. */
export function proxySignature(bytes: Buffer): 'yes' | 'no' | 'more' {
  for (const signature of [V1_SIGNATURE, V2_SIGNATURE]) {
    const n = Math.min(bytes.length, signature.length);
    if (bytes.subarray(0, n).equals(signature.subarray(0, n))) return n === signature.length ? 'yes' : 'more';
  }
  return 'no';
}

/** Where the header ends in the bytes received so far. */
export type HeaderFraming =
  /** Not a PROXY header (no signature): the bytes are the client's own. */
  | { kind: 'none' }
  /** A header has started; more bytes are needed. */
  | { kind: 'more' }
  /** The header is the first `length` bytes. */
  | { kind: 'complete'; length: number }
  /** A header that cannot be valid (too long, bad line end, unknown version). */
  | { kind: 'invalid'; reason: string };

/** Finds the end of the PROXY header at the start of `bytes` without reading past the size limits. */
export function frameProxyHeader(bytes: Buffer): HeaderFraming {
  const signature = proxySignature(bytes);
  if (signature !== 'yes') return { kind: signature === 'no' ? 'none' : 'more' };
  if (bytes[0] === V1_SIGNATURE[0]) {
    const lf = bytes.subarray(0, V1_MAX_BYTES).indexOf(0x0a);
    if (lf === -1) return bytes.length >= V1_MAX_BYTES ? { kind: 'invalid', reason: `v1 header longer than ${V1_MAX_BYTES} bytes` } : { kind: 'more' };
    if (bytes[lf - 1] !== 0x0d) return { kind: 'invalid', reason: 'v1 header line does not end with CRLF' };
    return { kind: 'complete', length: lf + 1 };
  }
  if (bytes.length < V2_FIXED_BYTES) return { kind: 'more' };
  if (bytes[12]! >> 4 !== 2) return { kind: 'invalid', reason: `unknown PROXY protocol version ${bytes[12]! >> 4}` };
  const length = V2_FIXED_BYTES + bytes.readUInt16BE(14);
  if (length > V2_MAX_BYTES) return { kind: 'invalid', reason: `v2 header of ${length} bytes (at most ${V2_MAX_BYTES} accepted)` };
  return bytes.length >= length ? { kind: 'complete', length } : { kind: 'more' };
}

/** One end of the proxied connection. */
export interface ProxyEndpoint {
  /** As DFOS writes client addresses: canonical, IPv4-mapped IPv6 as plain IPv4. */
  address: string;
  port: number;
}

/** What a complete header says. */
export type ProxyHeader =
  /** A relayed connection: `source` is the client, `destination` the address it connected to on the proxy. */
  | { version: 1 | 2; command: 'proxy'; source: ProxyEndpoint; destination: ProxyEndpoint }
  /** v2 LOCAL: the proxy's own connection (a health check); no client address. */
  | { version: 2; command: 'local' };

/** A header that is complete but not acceptable; the message says why (for the log). */
export class ProxyHeaderError extends Error {
  override readonly name = 'ProxyHeaderError';
}

/** Canonical text of an address (`2001:DB8:0::7` → `2001:db8::7`), or undefined if it is not one. */
function canonical(address: string, family: 4 | 6): string | undefined {
  if (address.includes('%') || (family === 4 ? !isIPv4(address) : !isIPv6(address))) return undefined;
  try {
    return normaliseAddress(new SocketAddress({ address, family: family === 4 ? 'ipv4' : 'ipv6' }).address);
  } catch {
    return undefined;
  }
}

function endpoint(address: string | undefined, port: number, family: 4 | 6, which: string): ProxyEndpoint {
  const text = address === undefined ? undefined : canonical(address, family);
  if (text === undefined) throw new ProxyHeaderError(`${which} address is not an IPv${family} address`);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new ProxyHeaderError(`${which} port is not a port number`);
  return { address: text, port };
}

function parseV1(header: Buffer): ProxyHeader {
  const text = header.toString('latin1');
  // The proxy does not know the client (spec §2.1): there is no address every rule could use.
  if (/^PROXY UNKNOWN[ \r]/.test(text)) throw new ProxyHeaderError('v1 UNKNOWN (the proxy does not know the client) is not accepted');
  let parsed: V1ProxyProtocol;
  try {
    parsed = V1ProxyProtocol.parse(text);
  } catch {
    throw new ProxyHeaderError('malformed v1 header (expected PROXY TCP4|TCP6 SRC DST SRCPORT DSTPORT)');
  }
  if (parsed.inetProtocol !== INETProtocol.TCP4 && parsed.inetProtocol !== INETProtocol.TCP6) {
    throw new ProxyHeaderError('v1 UNKNOWN (the proxy does not know the client) is not accepted');
  }
  const family = parsed.inetProtocol === INETProtocol.TCP4 ? 4 : 6;
  return {
    version: 1,
    command: 'proxy',
    source: endpoint(parsed.source.ipAddress, parsed.source.port, family, 'source'),
    destination: endpoint(parsed.destination.ipAddress, parsed.destination.port, family, 'destination'),
  };
}

/** Eight 16-bit groups from 16 bytes, for SocketAddress to canonicalise. */
function ipv6Text(bytes: readonly number[]): string {
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((((bytes[i] ?? 0) << 8) | (bytes[i + 1] ?? 0)).toString(16));
  return groups.join(':');
}

function parseV2(header: Buffer): ProxyHeader {
  let parsed: V2ProxyProtocol;
  try {
    parsed = V2ProxyProtocol.parse(new Uint8Array(header.buffer, header.byteOffset, header.length));
  } catch (err) {
    // The library throws plain objects with a message, not Errors.
    throw new ProxyHeaderError(`malformed v2 header: ${(err as { message?: string })?.message ?? String(err)}`);
  }
  // LOCAL: the receiver must ignore the address block (spec §2.2).
  if (parsed.command === Command.LOCAL) return { version: 2, command: 'local' };
  if (parsed.transportProtocol !== TransportProtocol.STREAM) throw new ProxyHeaderError('v2 header for a transport other than TCP (STREAM)');
  const address = parsed.proxyAddress;
  if (parsed.addressFamilyType === AddressFamilyType.INET && address instanceof IPv4ProxyAddress) {
    return {
      version: 2,
      command: 'proxy',
      source: endpoint(address.sourceAddress.address.join('.'), address.sourcePort, 4, 'source'),
      destination: endpoint(address.destinationAddress.address.join('.'), address.destinationPort, 4, 'destination'),
    };
  }
  if (parsed.addressFamilyType === AddressFamilyType.INET6 && address instanceof IPv6ProxyAddress) {
    return {
      version: 2,
      command: 'proxy',
      source: endpoint(ipv6Text(address.sourceAddress.address), address.sourcePort, 6, 'source'),
      destination: endpoint(ipv6Text(address.destinationAddress.address), address.destinationPort, 6, 'destination'),
    };
  }
  throw new ProxyHeaderError(`v2 address family ${AddressFamilyType[parsed.addressFamilyType] ?? 'unknown'} is not supported (INET or INET6 only)`);
}

/** Parses a complete header (as framed by frameProxyHeader); throws ProxyHeaderError when it is not acceptable. */
export function parseProxyHeader(header: Buffer): ProxyHeader {
  return header[0] === V1_SIGNATURE[0] ? parseV1(header) : parseV2(header);
}
