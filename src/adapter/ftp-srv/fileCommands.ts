import type { FileSession } from '../../core/FileSession.js';
import { asciiTransferSize } from '../../protocol/asciiMode.js';
import type { CommandEntry, FtpConnection } from './internals.js';
import { describeFailure, ReplyError } from './replyError.js';
import { fileSessionOf } from './connectionFs.js';

/** Largest file whose TYPE A transfer size SIZE computes (by reading it). */
const ASCII_SIZE_LIMIT = 64 * 1024 * 1024;

/** A `YYYYMMDDHHMMSS` time-val (RFC 3659, UTC) as a Date, or undefined if it is no real time. */
export function parseTimeVal(text: string): Date | undefined {
  const m = /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})$/.exec(text);
  if (!m) return undefined;
  const [y, mo, d, h, mi, s] = m.slice(1).map(Number) as [number, number, number, number, number, number];
  const date = new Date(Date.UTC(y, mo - 1, d, h, mi, s));
  const same = date.getUTCFullYear() === y && date.getUTCMonth() === mo - 1 && date.getUTCDate() === d && date.getUTCHours() === h && date.getUTCMinutes() === mi && date.getUTCSeconds() === s;
  return same ? date : undefined;
}

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
    directive: 'MFMT',
    handler(this: FtpConnection, { command }) {
      return answer(this, async (s) => {
        const match = /^(\d{14})(?:\.\d{1,3})?\s+(.+)$/.exec(command.arg ?? '');
        const when = match ? parseTimeVal(match[1]!) : undefined;
        if (!match || !when) throw new ReplyError(501, 'Usage: MFMT YYYYMMDDHHMMSS <file> (UTC)');
        const path = await s.setModificationTime(match[2], when);
        return { code: 213, message: `Modify=${match[1]}; ${path}` };
      });
    },
    syntax: '{{cmd}} <YYYYMMDDHHMMSS> <path>',
    description: "Set a file's modification time (UTC; draft-somers-ftp-mfxx)",
  },
  {
    directive: 'SIZE',
    handler(this: FtpConnection, { command }) {
      return answer(this, async (s) => {
        if (!command.arg) throw new ReplyError(501, 'SIZE needs a file name');
        const { path, entry } = await s.stat(command.arg);
        if (entry.type !== 'file') throw new ReplyError(550, `${path}: Not a regular file`);
        if (this.transferType !== 'ascii') return { code: 213, message: String(entry.size) };
        // RFC 3659 §4: the size that would be transferred, which in TYPE A depends on the
        // content (each bare LF goes as CRLF); computed for files up to ASCII_SIZE_LIMIT.
        if (entry.size > ASCII_SIZE_LIMIT) throw new ReplyError(550, `${path}: SIZE in TYPE A is only computed for files up to 64 MiB; use TYPE I`);
        const { bytes } = await s.content(command.arg, ASCII_SIZE_LIMIT);
        return { code: 213, message: String(asciiTransferSize(bytes)) };
      });
    },
    syntax: '{{cmd}} <path>',
    description: 'Return the size of a file',
    flags: { feat: 'SIZE' },
  },
];
