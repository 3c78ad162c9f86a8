import type { FileSession } from '../../core/FileSession.js';
import type { CommandEntry, FtpConnection } from './internals.js';
import { describeFailure, ReplyError } from './replyError.js';
import { fileSessionOf } from './connectionFs.js';

/** Quotes a path for a 257 reply (RFC 959: embedded quotes are doubled). */
export function quotePath(path: string): string {
  return `"${path.replace(/"/g, '""')}"`;
}

/**
 * Runs one core operation and sends exactly one reply: the success text, or the failure
 * the core's error kind maps to. (The core writes the audit record.)
 */
async function answer(connection: FtpConnection, run: (session: FileSession) => Promise<{ code: number; message: string }>, fallbackCode = 550): Promise<void> {
  try {
    const { code, message } = await run(fileSessionOf(connection));
    await connection.reply(code, message);
  } catch (err) {
    const { code, message } = describeFailure(err, fallbackCode);
    await connection.reply(code, message);
  }
}

/** Registry entries for DELE, RMD, MKD, RNFR/RNTO and SIZE, replacing ftp-srv's. */
export const fileCommands: CommandEntry[] = [
  {
    directive: 'DELE',
    handler(this: FtpConnection, { command }) {
      return answer(this, async (s) => ({ code: 250, message: `Deleted ${await s.delete(command.arg)}` }));
    },
    syntax: '{{cmd}} <path>',
    description: 'Delete a file',
  },
  {
    directive: ['RMD', 'XRMD'],
    handler(this: FtpConnection, { command }) {
      return answer(this, async (s) => ({ code: 250, message: `Removed directory ${await s.rmdir(command.arg)}` }));
    },
    syntax: '{{cmd}} <path>',
    description: 'Remove an empty directory',
  },
  {
    directive: ['MKD', 'XMKD'],
    handler(this: FtpConnection, { command }) {
      return answer(this, async (s) => ({ code: 257, message: `${quotePath(await s.mkdir(command.arg))} created` }));
    },
    syntax: '{{cmd}} <path>',
    description: 'Make a directory',
  },
  {
    directive: 'RNFR',
    handler(this: FtpConnection, { command }) {
      delete this.renameFrom;
      return answer(this, async (s) => {
        const { path } = await s.stat(command.arg ?? '');
        this.renameFrom = path;
        return { code: 350, message: `${path} exists, ready for destination name` };
      });
    },
    syntax: '{{cmd}} <path>',
    description: 'Rename from',
  },
  {
    directive: 'RNTO',
    handler(this: FtpConnection, { command }) {
      const from = this.renameFrom;
      delete this.renameFrom;
      if (!from) return this.reply(503, 'Send RNFR first');
      return answer(this, async (s) => ({ code: 250, message: `Renamed ${from} to ${await s.rename(from, command.arg)}` }));
    },
    syntax: '{{cmd}} <path>',
    description: 'Rename to',
  },
  {
    directive: 'SIZE',
    handler(this: FtpConnection, { command }) {
      return answer(this, async (s) => {
        if (!command.arg) throw new ReplyError(501, 'SIZE needs a file name');
        const { path, entry } = await s.stat(command.arg);
        if (entry.type !== 'file') throw new ReplyError(550, `${path}: Not a regular file`);
        return { code: 213, message: String(entry.size) };
      });
    },
    syntax: '{{cmd}} <path>',
    description: 'Return the size of a file',
    flags: { feat: 'SIZE' },
  },
];
