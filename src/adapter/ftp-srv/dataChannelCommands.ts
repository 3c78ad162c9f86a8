import { isIP, isIPv4 } from 'node:net';
import { DataChannel } from './DataChannel.js';
import type { CommandEntry, FtpConnection } from './internals.js';
import { normaliseAddress } from '../../util/address.js';
import { sessionOf } from './Session.js';

/** Lowest port an active (PORT/EPRT) connection may go to (RFC 2577). */
const MIN_ACTIVE_PORT = 1024;

function channelOf(connection: FtpConnection): DataChannel | undefined {
  return connection.connector instanceof DataChannel ? connection.connector : undefined;
}

/**
 * The address the client connected to: through a trusted proxy, the one its PROXY header
 * names (the load balancer's), else the control connection's local address.
 */
function connectedTo(connection: FtpConnection): string | undefined {
  return sessionOf(connection)?.proxiedTo ?? normaliseAddress(connection.commandSocket.localAddress);
}

/** The IPv4 address PASV announces: the configured one, else the one the client connected to. */
function announcedAddress(connection: FtpConnection): string | undefined {
  const configured = connection.server.options.dfos_pasv_address;
  if (typeof configured === 'string' && configured) return configured;
  const local = connectedTo(connection);
  return local && isIPv4(local) ? local : undefined;
}

/** Refuses a data command other than EPSV after `EPSV ALL` (RFC 2428 §4). */
function refusedByEpsvAll(connection: FtpConnection): boolean {
  return sessionOf(connection)?.epsvAll === true;
}

/**
 * Validates an active-mode target: the client's own address (no FTP bounce, RFC 2577;
 * through a trusted proxy, the one its PROXY header named) and an unprivileged port.
 * Returns a refusal text, or undefined when acceptable.
 */
function activeTargetProblem(connection: FtpConnection, host: string, port: number): string | undefined {
  if (!Number.isInteger(port) || port < 1 || port > 65535) return 'Invalid port';
  const client = sessionOf(connection)?.client;
  if (client === undefined || normaliseAddress(host) !== client) {
    return 'Data connections go only to your own address';
  }
  if (port < MIN_ACTIVE_PORT) return `Data connections to privileged ports (below ${MIN_ACTIVE_PORT}) are refused`;
  return undefined;
}

async function openPassive(connection: FtpConnection): Promise<number | undefined> {
  const channel = channelOf(connection);
  if (!channel) return undefined;
  try {
    return await channel.listenPassive();
  } catch {
    return undefined;
  }
}

/**
 * PASV, EPSV, PORT, EPRT on DFOS's DataChannel. ftp-srv answered PASV with 502 unless a
 * fixed pasv_url was set, sent IPv6 clients a malformed 227, allowed privileged ports in
 * PORT, and leaked a listener on every repeated PASV.
 */
export const dataChannelCommands: CommandEntry[] = [
  {
    directive: 'PASV',
    async handler(this: FtpConnection) {
      if (refusedByEpsvAll(this)) return this.reply(503, 'EPSV ALL is in effect; use EPSV');
      const address = announcedAddress(this);
      if (!address) return this.reply(522, 'PASV works over IPv4 only; use EPSV');
      const port = await openPassive(this);
      if (port === undefined) return this.reply(425, 'No passive port is free; try again later');
      return this.reply(227, `Entering Passive Mode (${address.replace(/\./g, ',')},${port >> 8},${port & 255})`);
    },
    syntax: '{{cmd}}',
    description: 'Enter passive mode (IPv4)',
  },
  {
    directive: 'EPSV',
    async handler(this: FtpConnection, { command }) {
      const arg = (command.arg ?? '').trim().toUpperCase();
      if (arg === 'ALL') {
        const session = sessionOf(this);
        if (session) session.epsvAll = true;
        return this.reply(200, 'EPSV ALL accepted; only EPSV from now on');
      }
      const family = isIP(connectedTo(this) ?? '') === 6 ? '2' : '1';
      if (arg && arg !== family) return this.reply(522, `Network protocol not supported, use (${family})`);
      const port = await openPassive(this);
      if (port === undefined) return this.reply(425, 'No passive port is free; try again later');
      return this.reply(229, `Entering Extended Passive Mode (|||${port}|)`);
    },
    syntax: '{{cmd}} [1|2|ALL]',
    description: 'Enter extended passive mode (IPv4 and IPv6)',
  },
  {
    directive: 'PORT',
    handler(this: FtpConnection, { command }) {
      if (refusedByEpsvAll(this)) return this.reply(503, 'EPSV ALL is in effect; use EPSV');
      const parts = (command.arg ?? '').trim().split(',');
      if (parts.length !== 6 || parts.some((p) => !/^\d{1,3}$/.test(p) || Number(p) > 255)) {
        return this.reply(501, 'Syntax: PORT h1,h2,h3,h4,p1,p2');
      }
      const n = parts.map(Number);
      const host = n.slice(0, 4).join('.');
      const port = n[4]! * 256 + n[5]!;
      const problem = activeTargetProblem(this, host, port);
      if (problem) return this.reply(501, problem);
      channelOf(this)?.setActive(host, port, 4);
      return this.reply(200, 'PORT command successful');
    },
    syntax: '{{cmd}} <h1,h2,h3,h4,p1,p2>',
    description: 'Active mode: the server connects to this IPv4 address and port',
  },
  {
    directive: 'EPRT',
    handler(this: FtpConnection, { command }) {
      if (refusedByEpsvAll(this)) return this.reply(503, 'EPSV ALL is in effect; use EPSV');
      const arg = (command.arg ?? '').trim();
      const delimiter = arg[0];
      const fields = delimiter ? arg.split(delimiter) : [];
      if (fields.length !== 5 || fields[0] !== '' || fields[4] !== '' || !/^\d+$/.test(fields[3] ?? '')) {
        return this.reply(501, 'Syntax: EPRT |<1 or 2>|<address>|<port>|');
      }
      const [, proto, host = '', portText] = fields;
      const family = proto === '1' ? 4 : proto === '2' ? 6 : undefined;
      if (!family) return this.reply(522, 'Network protocol not supported, use (1,2)');
      if (isIP(host) !== family) return this.reply(501, `Not an IPv${family} address`);
      const port = Number(portText);
      const problem = activeTargetProblem(this, host, port);
      if (problem) return this.reply(501, problem);
      channelOf(this)?.setActive(host, port, family);
      return this.reply(200, 'EPRT command successful');
    },
    syntax: '{{cmd}} |<1 or 2>|<address>|<port>|',
    description: 'Active mode: the server connects to this address and port (IPv4 or IPv6)',
  },
];
