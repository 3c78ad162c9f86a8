import { StorageError } from '../../storage/StorageBackend.js';
import type { CommandEntry, FtpConnection, FtpCommand } from './internals.js';
import { describeFailure, ReplyError } from './replyError.js';
import { formatListLine, listingName } from './listFormat.js';
import { sendListing } from './dataConnection.js';
import { fileSessionOf } from './connectionFs.js';

/**
 * LIST and NLST. ftp-srv's handler sent a blank line for an empty directory (clients saw
 * a nameless entry), answered a missing directory with 451, and waited for the data
 * connection before sending 150. Here: 150, the lines (nothing for an empty directory),
 * 226; a missing path gets 550 before any data connection is used.
 */
async function list(connection: FtpConnection, command: FtpCommand, namesOnly: boolean): Promise<void> {
  try {
    const { entries } = await fileSessionOf(connection).list(command.arg ?? '.');
    const text = entries.map((e) => `${namesOnly ? listingName(e.name) : formatListLine(e)}\r\n`).join('');
    await sendListing(connection, namesOnly ? 'name list' : 'directory listing', text, entries.length);
  } catch (err) {
    if (err instanceof StorageError || err instanceof ReplyError) {
      const { code, message } = describeFailure(err);
      await connection.reply(code, message);
    } else {
      await connection.reply(426, 'Connection closed; transfer aborted');
    }
  } finally {
    connection.connector.end();
  }
}

/** Registry entries for LIST and NLST. */
export const listCommands: CommandEntry[] = [
  {
    directive: 'LIST',
    handler(this: FtpConnection, { command }) {
      return list(this, command, false);
    },
    syntax: '{{cmd}} [<path>]',
    description: 'List a directory (ls -l format) or one file',
  },
  {
    directive: 'NLST',
    handler(this: FtpConnection, { command }) {
      return list(this, command, true);
    },
    syntax: '{{cmd}} [<path>]',
    description: 'List the names in a directory',
  },
];
