import type { Socket } from 'node:net';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { fileSessionOf } from './connectionFs.js';
import { ReplyError } from './replyError.js';
import { DataChannel } from './DataChannel.js';
import type { FtpConnection } from './internals.js';
import { sessionOf } from './Session.js';

/**
 * Announces a transfer with 150 `announcement`, then waits for the data connection that
 * PASV/EPSV/PORT/EPRT set up. Without any of those there is nothing to wait for: the
 * command gets one 425 and no 150 (as vsftpd and ProFTPD answer). A data connection that
 * does not come in time also gets 425, and so does a command after the passive listener
 * was closed for want of a transfer command (once: the command's end() clears that).
 */
export async function openDataConnection(connection: FtpConnection, announcement: string): Promise<Socket> {
  const session = sessionOf(connection);
  if (session?.context.tls?.mode === 'required' && !session.protectData) {
    throw new ReplyError(521, 'Data connections must be protected on this server: send PBSZ 0 and PROT P');
  }
  if (!connection.connector?.type) {
    if (connection.connector instanceof DataChannel && connection.connector.timedOut) {
      throw new ReplyError(425, 'The passive data port was closed: no transfer command came in time; send PASV or EPSV again');
    }
    throw new ReplyError(425, 'Use PASV or EPSV (or PORT) before this command');
  }
  await connection.reply(150, announcement);
  try {
    return await connection.connector.waitForConnection();
  } catch (err) {
    throw err instanceof ReplyError ? err : new ReplyError(425, 'Cannot open data connection');
  }
}

/**
 * Sends a listing (LIST, NLST, MLSD) over the data connection, at the user's download
 * rate if one applies, then 226 with the entry count. Rejects with ReplyError 425 when
 * there is no data connection, with the socket's error when it fails.
 */
export async function sendListing(connection: FtpConnection, what: string, text: string, count: number): Promise<void> {
  const down = fileSessionOf(connection).bandwidth.down;
  const socket = await openDataConnection(connection, `Opening data connection for the ${what}`);
  if (down.limited) {
    // The user's download rate covers listings too.
    await pipeline(Readable.from([Buffer.from(text, 'utf8')], { objectMode: false }), down.stream(), socket);
  } else {
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.end(text, 'utf8', () => resolve());
    });
  }
  await connection.reply(226, `Transfer complete (${count} ${count === 1 ? 'entry' : 'entries'})`);
}
