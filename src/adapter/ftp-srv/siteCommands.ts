import { encodePreview, PREVIEW_LIMIT } from '../../preview/previewFormat.js';
import { commandRegistry, type CommandEntry, type FtpConnection, type ReplyLetter } from './internals.js';
import { describeFailure, ReplyError } from './replyError.js';
import { fileSessionOf } from './connectionFs.js';
import { offered } from './protocolCommands.js';
import { quotaLines } from '../../core/quotaReport.js';

/** SITE sub-commands with their HELP text. */
const SITE_HELP = [
  `SITE VIEW <file>: show the first ${PREVIEW_LIMIT} bytes (text, or a hex dump for binary)`,
  'SITE CHMOD <mode> <file>: set permission bits, mode in octal (e.g. 644)',
  'SITE QUOTA: show your storage quota, what you use of it, and the largest file allowed',
];

/** SITE QUOTA: the user's limits and usage as a multi-line 200 reply. */
async function siteQuota(connection: FtpConnection, arg: string): Promise<void> {
  if (arg) {
    await connection.reply(501, 'SITE QUOTA takes no argument (it shows your own quota)');
    return;
  }
  try {
    const core = fileSessionOf(connection);
    const lines = quotaLines(await core.quotaStatus());
    if (lines.length === 0) await connection.reply(200, `No quota or file-size limit for ${core.user}`);
    else await connection.reply(200, `Quota for ${core.user}:`, ...lines.map((l) => ({ raw: true, message: ` ${l}` })), 'End of quota');
  } catch (err) {
    const { code, message } = describeFailure(err, 451);
    await connection.reply(code, message);
  }
}

/**
 * SITE VIEW <file>: a multi-line 200 reply in the preview format (see previewFormat.ts),
 * sent once the user's download rate allows its bytes.
 */
async function siteView(connection: FtpConnection, arg: string): Promise<void> {
  try {
    if (!arg) throw new ReplyError(501, 'SITE VIEW needs a file name: SITE VIEW <file>');
    const core = fileSessionOf(connection);
    const { head, size } = await core.preview(arg, PREVIEW_LIMIT);
    const lines = encodePreview(head, size);
    // The preview travels on the control connection, at the user's download rate.
    if (core.bandwidth.down.limited) await core.bandwidth.down.take(lines.reduce((n, line) => n + Buffer.byteLength(line.text) + 2, 0));
    const letters: ReplyLetter[] = lines.map((line) => (line.raw ? { raw: true, message: line.text } : line.text));
    await connection.reply(200, ...letters);
  } catch (err) {
    const { code, message } = describeFailure(err, 550);
    await connection.reply(code, message);
  }
}

/** SITE CHMOD <mode> <file>. */
async function siteChmod(connection: FtpConnection, arg: string): Promise<void> {
  const match = /^([0-7]{3,4})\s+(.+)$/.exec(arg);
  if (!match) {
    await connection.reply(501, 'Usage: SITE CHMOD <octal mode> <file>, e.g. SITE CHMOD 644 notes.txt');
    return;
  }
  const [, mode, file] = match as unknown as [string, string, string];
  try {
    const path = await fileSessionOf(connection).chmod(file, parseInt(mode, 8));
    await connection.reply(200, `Mode of ${path} set to ${mode}`);
  } catch (err) {
    const { code, message } = describeFailure(err, 550);
    await connection.reply(code, message);
  }
}

/** SITE, HELP: replacing ftp-srv's (which never answered a bare SITE or SITE CHMOD). */
export const siteCommands: CommandEntry[] = [
  {
    directive: 'SITE',
    async handler(this: FtpConnection, { command }) {
      const arg = (command.arg ?? '').trim();
      const space = arg.indexOf(' ');
      const verb = (space === -1 ? arg : arg.slice(0, space)).toUpperCase();
      const rest = space === -1 ? '' : arg.slice(space + 1).replace(/^ +/, '');
      if (!verb) return this.reply(501, 'SITE needs a sub-command: SITE VIEW <file>, SITE CHMOD <mode> <file> or SITE QUOTA');
      if (verb === 'VIEW') return siteView(this, rest);
      if (verb === 'CHMOD') return siteChmod(this, rest);
      if (verb === 'QUOTA') return siteQuota(this, rest);
      return this.reply(500, `Unknown SITE command ${verb.slice(0, 32).replace(/[^\x21-\x7e]/g, '?')}; see HELP SITE`);
    },
    syntax: '{{cmd}} <sub-command> [<arguments>]',
    description: 'Site-specific commands: VIEW, CHMOD, QUOTA (see HELP SITE)',
  },
  {
    directive: 'HELP',
    handler(this: FtpConnection, { command }) {
      const topic = (command.arg ?? '').trim().toUpperCase();
      if (!topic) {
        const verbs = Object.keys(commandRegistry).filter((v) => offered(this, v)).sort();
        const rows: string[] = [];
        for (let i = 0; i < verbs.length; i += 8) rows.push(' ' + verbs.slice(i, i + 8).join(' '));
        return this.reply(214, 'The following commands are recognized:', ...rows.map((r) => ({ raw: true, message: r })), 'Use HELP <command> for details');
      }
      if (topic === 'SITE') {
        return this.reply(214, 'SITE sub-commands:', ...SITE_HELP.map((l) => ({ raw: true, message: ` ${l}` })), 'End of HELP SITE');
      }
      const entry = Object.prototype.hasOwnProperty.call(commandRegistry, topic) && offered(this, topic) ? commandRegistry[topic] : undefined;
      if (!entry) return this.reply(502, `Unknown command ${topic.slice(0, 32).replace(/[^\x21-\x7e]/g, '?')}`);
      return this.reply(214, `Syntax: ${entry.syntax.replace('{{cmd}}', topic)}`, entry.description);
    },
    syntax: '{{cmd}} [<command>]',
    description: 'List the commands, or explain one',
    flags: { no_auth: true },
  },
];
