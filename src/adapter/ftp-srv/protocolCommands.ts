import type { StorageCapabilities } from '../../storage/StorageBackend.js';
import { parseRestOffset } from './argumentRules.js';
import { ReplyError } from './replyError.js';
import { fileSessionOf } from './connectionFs.js';
import type { CommandEntry, FtpConnection } from './internals.js';
import { formatListLine } from './listFormat.js';
import { MLST_FACTS, mlstFeature, mlstTime, type MlstFact } from './mlsxFacts.js';
import { quotePath } from './fileCommands.js';
import { describeFailure } from './replyError.js';
import { quotaLines } from '../../core/quotaReport.js';
import { sessionOf } from './Session.js';

/** The features FEAT announces: exactly what works (ftp-srv listed AUTH TLS without TLS). */
function features(connection: FtpConnection): string[] {
  const capabilities = connection.server.options.dfos_capabilities as StorageCapabilities | undefined;
  const tls = sessionOf(connection)?.context.tls !== undefined;
  return [
    ...(tls ? ['AUTH TLS', 'AUTH SSL'] : []),
    'EPRT',
    'EPSV',
    'MDTM',
    ...(capabilities?.setModificationTime ? ['MFMT'] : []),
    mlstFeature(sessionOf(connection)?.mlstFacts ?? MLST_FACTS),
    'PASV',
    ...(tls ? ['PBSZ', 'PROT'] : []),
    'REST STREAM',
    'SIZE',
    'TVFS',
    'UTF8',
  ];
}

/** Runs a path command and sends its one reply (a client-safe failure on error). */
async function answer(connection: FtpConnection, run: () => Promise<void>): Promise<void> {
  try {
    await run();
  } catch (err) {
    const { code, message } = describeFailure(err, 550);
    await connection.reply(code, message);
  }
}

function requireArg(arg: string | null, verb: string, what: string): string {
  if (!arg) throw new ReplyError(501, `${verb} needs ${what}`);
  return arg;
}

/**
 * FEAT, OPTS, STAT, TYPE, MDTM, CWD, CDUP, PWD, QUIT, replacing ftp-srv's: OPTS UTF8 now
 * works before login, STAT uses 211/212/213 correctly (ftp-srv swapped 212 and 213),
 * TYPE A converts line endings, and a missing argument is a 501 instead of acting on the
 * current directory.
 */
export const protocolCommands: CommandEntry[] = [
  {
    directive: 'FEAT',
    handler(this: FtpConnection) {
      return this.reply(211, 'Features:', ...features(this).map((f) => ({ raw: true, message: ` ${f}` })), 'End');
    },
    syntax: '{{cmd}}',
    description: 'List the protocol extensions this server supports',
    flags: { no_auth: true },
  },
  {
    directive: 'OPTS',
    handler(this: FtpConnection, { command }) {
      const arg = (command.arg ?? '').trim();
      const space = arg.indexOf(' ');
      const option = (space === -1 ? arg : arg.slice(0, space)).toUpperCase();
      const value = space === -1 ? '' : arg.slice(space + 1).trim();
      if (!option) return this.reply(501, 'OPTS needs an option: OPTS UTF8 ON or OPTS MLST <facts>');
      if (option === 'UTF8' || option === 'UTF-8') {
        if (/^(ON)?$/i.test(value)) return this.reply(200, 'UTF8 mode is on');
        if (/^OFF$/i.test(value)) return this.reply(504, 'UTF8 cannot be turned off: names are always UTF-8');
        return this.reply(501, 'OPTS UTF8 takes ON');
      }
      if (option === 'MLST') {
        const asked = value
          .split(';')
          .map((f) => f.trim().toLowerCase())
          .filter((f) => f !== '');
        const unknown = asked.filter((f) => !(MLST_FACTS as readonly string[]).includes(f));
        if (unknown.length > 0) {
          return this.reply(501, `Unknown MLST fact ${unknown[0]!.slice(0, 32).replace(/[^\x21-\x7e]/g, '?')}; offered: ${MLST_FACTS.join(';')};`);
        }
        const wanted = asked as MlstFact[];
        const session = sessionOf(this);
        if (session) session.mlstFacts = MLST_FACTS.filter((f) => wanted.includes(f));
        return this.reply(200, `MLST OPTS ${(session?.mlstFacts ?? []).map((f) => `${f};`).join('')}`);
      }
      return this.reply(501, `Unknown option ${option.slice(0, 32).replace(/[^\x21-\x7e]/g, '?')}`);
    },
    syntax: '{{cmd}} <option> [<value>]',
    description: 'Set an option: UTF8 ON, MLST <facts>',
    flags: { no_auth: true },
  },
  {
    directive: 'STAT',
    handler(this: FtpConnection, { command }) {
      const session = sessionOf(this);
      if (!command.arg) {
        return answer(this, async () => {
          const quota = session?.user ? quotaLines(await fileSessionOf(this).quotaStatus()) : [];
          await this.reply(
            211,
            'DFOS FTP server status:',
            { raw: true, message: ` Connected from ${session?.client ?? 'unknown'}` },
            { raw: true, message: ` Logged in as ${session?.user ?? 'nobody'}` },
            ...quota.map((l) => ({ raw: true, message: ` ${l}` })),
            { raw: true, message: ` Control connection: ${session?.tls ? `TLS (${session.tls})` : 'clear'}; data connections: ${session?.protectData ? 'TLS (PROT P)' : 'clear (PROT C)'}` },
            { raw: true, message: ` TYPE: ${this.transferType === 'ascii' ? 'ASCII' : 'BINARY'}, STRUcture: File, MODE: Stream` },
            { raw: true, message: ` Data connection: ${this.connector?.type || 'none'}` },
            'End of status',
          );
        });
      }
      return answer(this, async () => {
        const { path, entry, entries } = await fileSessionOf(this).list(command.arg);
        const lines = entries.map((e) => formatListLine(e));
        const code = entry.type === 'directory' ? 212 : 213;
        await this.reply(code, `Status of ${path}:`, ...lines.map((l) => ({ raw: true, message: ` ${l}` })), 'End of status');
      });
    },
    syntax: '{{cmd}} [<path>]',
    description: 'Server status, or a listing of a directory (212) or file (213)',
  },
  {
    directive: 'REST',
    handler(this: FtpConnection, { command }) {
      const offset = parseRestOffset(command.arg);
      if (offset === undefined) return this.reply(501, 'REST needs a byte count: decimal digits only, e.g. REST 1024');
      this.restByteCount = offset;
      return this.reply(350, `Restarting next transfer at ${offset}`);
    },
    syntax: '{{cmd}} <byte-count>',
    description: 'Restart the next RETR or STOR at this byte (stream mode)',
  },
  {
    directive: 'TYPE',
    handler(this: FtpConnection, { command }) {
      const arg = (command.arg ?? '').trim().toUpperCase().replace(/\s+/g, ' ');
      if (arg === 'A' || arg === 'A N') {
        this.transferType = 'ascii';
        return this.reply(200, 'Type set to A (line endings converted)');
      }
      if (arg === 'I' || arg === 'L 8' || arg === 'L8') {
        this.transferType = 'binary';
        return this.reply(200, 'Type set to I');
      }
      if (!arg) return this.reply(501, 'TYPE needs A or I');
      return this.reply(504, 'Only TYPE A and TYPE I are supported');
    },
    syntax: '{{cmd}} <A|I>',
    description: 'Transfer type: A (text, CRLF on the wire) or I (binary)',
  },
  {
    directive: 'MDTM',
    handler(this: FtpConnection, { command }) {
      return answer(this, async () => {
        const { path, entry } = await fileSessionOf(this).stat(requireArg(command.arg, 'MDTM', 'a file name'));
        // RFC 3659 §3 defines MDTM for files only.
        if (entry.type !== 'file') throw new ReplyError(550, `${path}: Not a regular file`);
        await this.reply(213, mlstTime(entry.mtime).slice(0, 14));
      });
    },
    syntax: '{{cmd}} <path>',
    description: 'Last modification time of a file (UTC, YYYYMMDDHHMMSS)',
    flags: { feat: 'MDTM' },
  },
  {
    directive: ['CWD', 'XCWD'],
    handler(this: FtpConnection, { command }) {
      return answer(this, async () => {
        const path = await fileSessionOf(this).chdir(requireArg(command.arg, 'CWD', 'a directory'));
        await this.reply(250, `Directory changed to ${quotePath(path)}`);
      });
    },
    syntax: '{{cmd}} <directory>',
    description: 'Change the working directory',
  },
  {
    directive: ['CDUP', 'XCUP'],
    handler(this: FtpConnection) {
      return answer(this, async () => {
        const path = await fileSessionOf(this).chdir('..');
        await this.reply(250, `Directory changed to ${quotePath(path)}`);
      });
    },
    syntax: '{{cmd}}',
    description: 'Change to the parent directory',
  },
  {
    directive: ['PWD', 'XPWD'],
    handler(this: FtpConnection) {
      return this.reply(257, `${quotePath(fileSessionOf(this).currentDirectory())} is the current directory`);
    },
    syntax: '{{cmd}}',
    description: 'Print the working directory',
  },
  {
    directive: 'QUIT',
    handler(this: FtpConnection) {
      const session = sessionOf(this);
      if (session) {
        session.closed = true;
        session.ending = { code: 221, reason: 'QUIT' };
      }
      return this.close(221, 'Goodbye');
    },
    syntax: '{{cmd}}',
    description: 'Log out and close the connection',
    flags: { no_auth: true },
  },
];

/** Verbs that exist only where TLS is configured (hidden from HELP elsewhere, answered 502). */
export const TLS_VERBS = ['AUTH', 'PBSZ', 'PROT', 'CCC'];

/** Whether `verb` is offered by this connection's server (the registry is process-wide). */
export function offered(connection: FtpConnection, verb: string): boolean {
  return !TLS_VERBS.includes(verb) || sessionOf(connection)?.context.tls !== undefined;
}
