import { isIPv4 } from 'node:net';
import { PassiveConnectorClass, type CommandEntry, type FtpConnection } from './internals.js';
import { normaliseAddress } from './Session.js';

/** Opens a passive listener, closing any listener a previous PASV/EPSV left open. */
async function openPassive(connection: FtpConnection): Promise<number> {
  connection.connector?.end();
  connection.connector = new PassiveConnectorClass(connection);
  const server = await connection.connector.setupServer();
  const address = server.address();
  if (!address || typeof address === 'string') throw new Error('passive listener has no port');
  return address.port;
}

/** The IPv4 address PASV announces: the configured one, else the control connection's. */
function announcedAddress(connection: FtpConnection): string | undefined {
  const configured = connection.server.options.dfos_pasv_address;
  if (typeof configured === 'string' && configured) return configured;
  const local = normaliseAddress(connection.commandSocket.localAddress);
  return local && isIPv4(local) ? local : undefined;
}

/**
 * PASV and EPSV. ftp-srv answered PASV with 502 unless a fixed pasv_url was set, and gave
 * IPv6 clients a malformed 227; here PASV announces --pasv-address or the address the
 * client reached us on, and tells IPv6 clients to use EPSV.
 */
export const passiveCommands: CommandEntry[] = [
  {
    directive: 'PASV',
    async handler(this: FtpConnection) {
      const address = announcedAddress(this);
      if (!address) return this.reply(522, 'PASV works over IPv4 only; use EPSV');
      try {
        const port = await openPassive(this);
        return this.reply(227, `Entering Passive Mode (${address.replace(/\./g, ',')},${port >> 8},${port & 255})`);
      } catch {
        return this.reply(425, 'Cannot open a passive data port; try again later');
      }
    },
    syntax: '{{cmd}}',
    description: 'Enter passive mode (IPv4)',
  },
  {
    directive: 'EPSV',
    async handler(this: FtpConnection, { command }) {
      const arg = (command.arg ?? '').trim().toUpperCase();
      if (arg === 'ALL') return this.reply(200, 'EPSV ALL accepted');
      if (arg && arg !== '1' && arg !== '2') return this.reply(522, 'Network protocol not supported, use (1,2)');
      try {
        const port = await openPassive(this);
        return this.reply(229, `Entering Extended Passive Mode (|||${port}|)`);
      } catch {
        return this.reply(425, 'Cannot open a passive data port; try again later');
      }
    },
    syntax: '{{cmd}} [<protocol>]',
    description: 'Enter extended passive mode (IPv4 and IPv6)',
  },
];
