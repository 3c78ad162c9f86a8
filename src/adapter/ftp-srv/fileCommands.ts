import type { AuditAction } from '../../logging/AuditLog.js';
import type { JailedFileSystem } from '../../storage/JailedFileSystem.js';
import { FsError } from '../../storage/FsError.js';
import type { CommandEntry, FtpConnection } from './internals.js';
import { describeFailure } from './replyError.js';
import { sessionOf } from './Session.js';
import { fsOf } from './connectionFs.js';

/** Quotes a path for a 257 reply (RFC 959: embedded quotes are doubled). */
export function quotePath(path: string): string {
  return `"${path.replace(/"/g, '""')}"`;
}

/**
 * Runs one filesystem action, sends exactly one reply (success or a client-safe failure)
 * and, for changes, writes an audit record.
 */
async function act(
  connection: FtpConnection,
  audit: { action: AuditAction; path: string | null; to?: string } | undefined,
  run: (fs: JailedFileSystem) => Promise<{ code: number; message: string }>,
): Promise<void> {
  const session = sessionOf(connection);
  const started = Date.now();
  let path = audit?.path ?? '';
  try {
    path = fsOf(connection).resolveClientPath(audit?.path ?? '.');
  } catch {
    // reported by run()
  }
  try {
    const { code, message } = await run(fsOf(connection));
    if (audit) session?.audit({ action: audit.action, path, to: audit.to, durationMs: Date.now() - started, result: 'ok', code });
    await connection.reply(code, message);
  } catch (err) {
    const { code, message } = describeFailure(err, 550);
    if (audit) session?.audit({ action: audit.action, path, to: audit.to, durationMs: Date.now() - started, result: 'failed', code, reason: message });
    await connection.reply(code, message);
  }
}

/** Registry entries for DELE, RMD, MKD, RNFR/RNTO and SIZE, replacing ftp-srv's. */
export const fileCommands: CommandEntry[] = [
  {
    directive: 'DELE',
    handler(this: FtpConnection, { command }) {
      return act(this, { action: 'delete', path: command.arg }, async (fs) => ({ code: 250, message: `Deleted ${await fs.delete(command.arg)}` }));
    },
    syntax: '{{cmd}} <path>',
    description: 'Delete a file',
  },
  {
    directive: ['RMD', 'XRMD'],
    handler(this: FtpConnection, { command }) {
      return act(this, { action: 'rmdir', path: command.arg }, async (fs) => ({
        code: 250,
        message: `Removed directory ${await fs.removeDirectory(command.arg)}`,
      }));
    },
    syntax: '{{cmd}} <path>',
    description: 'Remove an empty directory',
  },
  {
    directive: ['MKD', 'XMKD'],
    handler(this: FtpConnection, { command }) {
      return act(this, { action: 'mkdir', path: command.arg }, async (fs) => ({
        code: 257,
        message: `${quotePath(await fs.mkdir(command.arg))} created`,
      }));
    },
    syntax: '{{cmd}} <path>',
    description: 'Make a directory',
  },
  {
    directive: 'RNFR',
    handler(this: FtpConnection, { command }) {
      delete this.renameFrom;
      return act(this, undefined, async (fs) => {
        const path = fs.resolveClientPath(command.arg);
        await fs.get(path);
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
      let to = command.arg ?? '';
      try {
        to = fsOf(this).resolveClientPath(command.arg);
      } catch {
        // reported by rename()
      }
      return act(this, { action: 'rename', path: from, to }, async (fs) => {
        const target = await fs.rename(from, command.arg ?? '');
        this.emit('RNTO', null, target);
        return { code: 250, message: `Renamed ${from} to ${target}` };
      });
    },
    syntax: '{{cmd}} <path>',
    description: 'Rename to',
  },
  {
    directive: 'SIZE',
    handler(this: FtpConnection, { command }) {
      return act(this, undefined, async (fs) => {
        if (!command.arg) throw new FsError(501, 'SIZE needs a file name');
        const stats = await fs.get(command.arg);
        if (!stats.isFile()) throw new FsError(550, `${fs.resolveClientPath(command.arg)}: Not a regular file`);
        return { code: 213, message: String(stats.size) };
      });
    },
    syntax: '{{cmd}} <path>',
    description: 'Return the size of a file',
    flags: { feat: 'SIZE' },
  },
];
