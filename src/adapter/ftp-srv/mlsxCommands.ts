import { FsError } from '../../storage/FsError.js';
import { fsOf } from './connectionFs.js';
import { sendListing } from './dataConnection.js';
import type { CommandEntry, FtpConnection } from './internals.js';
import { mlsxLine } from './mlsxFacts.js';
import { describeFailure } from './replyError.js';
import { sessionOf } from './Session.js';

function isReadOnly(connection: FtpConnection): boolean {
  return sessionOf(connection)?.readOnly === true;
}

/** MLSD and MLST (RFC 3659): machine-readable listings with type, size, modify, perm. */
export const mlsxCommands: CommandEntry[] = [
  {
    directive: 'MLSD',
    async handler(this: FtpConnection, { command }) {
      const session = sessionOf(this);
      try {
        const fs = fsOf(this);
        const target = command.arg ?? '.';
        const stats = await fs.get(target);
        if (!stats.isDirectory()) throw new FsError(501, `${fs.resolveClientPath(target)}: Not a directory (use MLST for a file)`);
        const entries = await fs.list(target);
        const facts = session?.mlstFacts ?? [];
        const text = entries.map((e) => `${mlsxLine(e, e.name, facts, isReadOnly(this))}\r\n`).join('');
        await sendListing(this, 'MLSD listing', text, entries.length);
      } catch (err) {
        const { code, message } = err instanceof FsError ? describeFailure(err) : { code: 426, message: 'Connection closed; transfer aborted' };
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
        const fs = fsOf(this);
        const path = fs.resolveClientPath(command.arg ?? '.');
        const stats = await fs.get(path);
        const line = mlsxLine(stats, path, sessionOf(this)?.mlstFacts ?? [], isReadOnly(this));
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
