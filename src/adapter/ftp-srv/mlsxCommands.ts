import { StorageError } from '../../storage/StorageBackend.js';
import { fileSessionOf } from './connectionFs.js';
import { sendListing } from './dataConnection.js';
import type { CommandEntry, FtpConnection } from './internals.js';
import { mlsxLine } from './mlsxFacts.js';
import { describeFailure, ReplyError } from './replyError.js';
import { sessionOf } from './Session.js';

function isReadOnly(connection: FtpConnection): boolean {
  return fileSessionOf(connection)?.readOnly === true;
}

/** MLSD and MLST (RFC 3659): machine-readable listings with type, size, modify, perm. */
export const mlsxCommands: CommandEntry[] = [
  {
    directive: 'MLSD',
    async handler(this: FtpConnection, { command }) {
      const session = sessionOf(this);
      try {
        const { path, entry, entries } = await fileSessionOf(this).list(command.arg ?? '.');
        if (entry.type !== 'directory') throw new ReplyError(501, `${path}: Not a directory (use MLST for a file)`);
        const facts = session?.mlstFacts ?? [];
        const text = entries.map((e) => `${mlsxLine(e, e.name, facts, isReadOnly(this), fileSessionOf(this).capabilities.append)}\r\n`).join('');
        await sendListing(this, 'MLSD listing', text, entries.length);
      } catch (err) {
        const { code, message } = err instanceof StorageError || err instanceof ReplyError ? describeFailure(err) : { code: 426, message: 'Connection closed; transfer aborted' };
        await this.reply(code, message);
      } finally {
        this.connector.end();
      }
    },
    syntax: '{{cmd}} [<directory>]',
    description: 'Machine-readable directory listing (RFC 3659)',
  },
  {
    directive: 'MLST',
    async handler(this: FtpConnection, { command }) {
      try {
        const { path, entry } = await fileSessionOf(this).stat(command.arg ?? '.');
        const line = mlsxLine(entry, path, sessionOf(this)?.mlstFacts ?? [], isReadOnly(this), fileSessionOf(this).capabilities.append);
        await this.reply(250, `Listing ${path}`, { raw: true, message: ` ${line}` }, 'End');
      } catch (err) {
        const { code, message } = describeFailure(err, 550);
        await this.reply(code, message);
      }
    },
    syntax: '{{cmd}} [<path>]',
    description: 'Machine-readable facts about one file or directory (RFC 3659)',
  },
];
