import { TLSSocket } from 'node:tls';
import type { Socket } from 'node:net';
import type { CommandEntry, FtpConnection } from './internals.js';
import { sessionOf, type Session } from './Session.js';

/**
 * Explicit FTPS (RFC 4217): AUTH TLS, PBSZ, PROT, CCC. ftp-srv's AUTH replied 234 and only
 * then wrapped the socket while its plaintext reader was still attached, so a ClientHello
 * sent right behind AUTH TLS (in the same segment, or before the wrap) was parsed as a
 * command (defect 23: basic-ftp failed 106 of 200 connects). Here the control reader
 * stops at the AUTH TLS line and holds every byte after it raw (ControlLineReader
 * watchAuthTls); the handler writes 234, detaches the plaintext reader, puts the held bytes
 * back in front of the socket's input, and only then wraps it, so the handshake sees every
 * byte and no byte is read in clear after 234.
 */

/** Wraps a socket as the TLS server side with the session's own context. */
export function serverTls(socket: Socket, session: Session): TLSSocket {
  session.secureContext ??= session.context.tls!.sessionContext();
  return new TLSSocket(socket, { isServer: true, secureContext: session.secureContext, requestCert: false });
}

/** Describes a secured socket for logs, audit records and STAT: protocol and cipher. */
export function describeTls(socket: TLSSocket): string {
  return `${socket.getProtocol() ?? 'TLS'} ${socket.getCipher()?.name ?? ''}`.trim();
}

/** Makes the control connection TLS: `plain` is its socket, `held` the bytes read past AUTH. */
export function secureControlConnection(connection: FtpConnection, session: Session, plain: Socket, held: Buffer): TLSSocket {
  plain.pause();
  plain.removeAllListeners('data'); // ftp-srv's plaintext reader
  if (held.length > 0) plain.unshift(held); // TLSSocket feeds a wrapped socket's buffered bytes to the handshake
  const secure = serverTls(plain, session);
  secure.on('data', (data: Buffer) => connection._handleData(data));
  secure.on('error', (err) => {
    session.context.log.info('TLS error on the control connection', { session: session.id, client: session.client, proxy: session.proxy, err: err.message });
    secure.destroy();
  });
  secure.once('secure', () => {
    session.tls = describeTls(secure);
    session.context.log.info('Control connection secured', { session: session.id, client: session.client, proxy: session.proxy, tls: session.tls });
  });
  session.adoptSecureSocket(secure, plain);
  return secure;
}

function tlsOff(connection: FtpConnection): boolean {
  return sessionOf(connection)?.context.tls === undefined;
}

/** Registry entries for AUTH, PBSZ, PROT and CCC. */
export const tlsCommands: CommandEntry[] = [
  {
    directive: 'AUTH',
    async handler(this: FtpConnection, { command }) {
      const session = sessionOf(this)!;
      const reader = session.feed.lines;
      const mechanism = (command.arg ?? '').trim().toUpperCase();
      if (tlsOff(this)) {
        reader.releaseHeld();
        return this.reply(502, 'TLS is not configured on this server');
      }
      if (session.tls !== undefined || this.commandSocket instanceof TLSSocket) {
        reader.releaseHeld();
        return this.reply(503, 'The control connection already uses TLS');
      }
      if (this.authenticated) {
        reader.releaseHeld();
        return this.reply(503, 'AUTH TLS must come before USER/PASS');
      }
      if (!['TLS', 'SSL', 'TLS-C'].includes(mechanism)) {
        reader.releaseHeld();
        return this.reply(504, 'Only AUTH TLS (or its old name AUTH SSL) is supported');
      }
      const plain = this.commandSocket;
      await this.reply(234, `AUTH ${mechanism} successful; start the TLS handshake`);
      secureControlConnection(this, session, plain, reader.takeHeld());
      return undefined;
    },
    syntax: '{{cmd}} TLS',
    description: 'Start TLS on the control connection (RFC 4217)',
    flags: { no_auth: true },
  },
  {
    directive: 'PBSZ',
    handler(this: FtpConnection, { command }) {
      const session = sessionOf(this)!;
      if (tlsOff(this)) return this.reply(502, 'TLS is not configured on this server');
      if (session.tls === undefined) return this.reply(503, 'PBSZ needs a TLS control connection: send AUTH TLS first');
      if (command.arg === null || !/^\d+$/.test(command.arg.trim())) return this.reply(501, 'PBSZ needs a number: PBSZ 0');
      session.pbszSent = true;
      return this.reply(200, 'PBSZ=0');
    },
    syntax: '{{cmd}} 0',
    description: 'Protection buffer size (always 0 for TLS, RFC 4217)',
    flags: { no_auth: true },
  },
  {
    directive: 'PROT',
    handler(this: FtpConnection, { command }) {
      const session = sessionOf(this)!;
      if (tlsOff(this)) return this.reply(502, 'TLS is not configured on this server');
      if (session.tls === undefined) return this.reply(503, 'PROT needs a TLS control connection: send AUTH TLS first');
      if (!session.pbszSent) return this.reply(503, 'Send PBSZ 0 before PROT');
      const level = (command.arg ?? '').trim().toUpperCase();
      if (level === 'P') {
        session.protectData = true;
        return this.reply(200, 'Data connections will be protected (TLS)');
      }
      if (level === 'C') {
        if (session.context.tls?.mode === 'required') return this.reply(534, 'Clear data connections are not allowed: this server requires TLS (PROT P)');
        session.protectData = false;
        return this.reply(200, 'Data connections will be clear');
      }
      if (level === 'S' || level === 'E') return this.reply(536, `PROT ${level} is not supported; use P or C`);
      return this.reply(501, 'PROT needs a level: P (private) or C (clear)');
    },
    syntax: '{{cmd}} P|C',
    description: 'Data channel protection: P (TLS) or C (clear)',
    flags: { no_auth: true },
  },
  {
    directive: 'CCC',
    handler(this: FtpConnection) {
      if (tlsOff(this)) return this.reply(502, 'TLS is not configured on this server');
      return this.reply(534, 'CCC refused: the control connection stays encrypted');
    },
    syntax: '{{cmd}}',
    description: 'Clear command channel (refused)',
  },
];
