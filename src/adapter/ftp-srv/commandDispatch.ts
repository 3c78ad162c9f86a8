import { CommandsClass, commandRegistry, ConnectionClass, type FtpCommand, type FtpCommands, type FtpConnection } from './internals.js';
import { argumentProblem } from './argumentRules.js';
import { sessionOf } from './Session.js';

/** Commands that use a data connection: the session is busy while they run. */
const DATA_COMMANDS = new Set(['LIST', 'NLST', 'RETR', 'STOR', 'APPE', 'STOU', 'MLSD']);
/** Commands whose leading `-x` words are ls-style flags, not names. */
const FLAG_COMMANDS = new Set(['LIST', 'NLST', 'STAT']);
/** An ABOR command line. */
const ABOR_LINE = /^\s*ABOR\s*$/i;
/** STAT without argument: during a transfer, answered at once with its status. */
const STAT_LINE = /^\s*STAT\s*$/i;

/**
 * Parses a command line keeping its argument intact. ftp-srv's parser strips every `"`
 * and drops any `-x` word as a flag (so `DELE -a` and `MKD "q"` failed); here flags are
 * only recognised at the start of LIST/NLST/STAT arguments.
 */
export function parseCommandLine(message: string): FtpCommand {
  const line = message.replace(/^\s+/, '');
  const space = line.indexOf(' ');
  const directive = (space === -1 ? line : line.slice(0, space)).toUpperCase();
  let rest = space === -1 ? '' : line.slice(space + 1);
  const flags: string[] = [];
  if (FLAG_COMMANDS.has(directive)) {
    for (let m = /^(-[A-Za-z]+)(?:\s+|$)/.exec(rest); m; m = /^(-[A-Za-z]+)(?:\s+|$)/.exec(rest)) {
      flags.push(m[1]!);
      rest = rest.slice(m[0].length);
    }
  }
  return { directive, arg: rest === '' ? null : rest, flags, raw: message };
}

/**
 * Runs a parsed command's handler from ftp-srv's registry, with ftp-srv's checks and
 * reply texts (502 unknown verb, 530 before login). ftp-srv's own FtpCommands.handle did
 * the same after cloning the command twice with lodash, making a child logger, and
 * resolving through a bluebird promise (a setImmediate turn) for every command.
 */
function runRegistered(commands: FtpCommands, command: FtpCommand): unknown {
  const connection = commands.connection;
  const entry = Object.hasOwn(commandRegistry, command.directive) ? commandRegistry[command.directive] : undefined;
  if (!entry) return connection.reply(502, `Command not allowed: ${command.directive}`);
  if (!entry.flags?.no_auth && !connection.authenticated) return connection.reply(530, `Command requires authentication: ${command.directive}`);
  if (!entry.handler) return connection.reply(502, `Handler not set on command: ${command.directive}`);
  const result = entry.handler.call(connection, { log: connection.log, command, previous_command: commands.previousCommand });
  commands.previousCommand = command;
  return result;
}

/**
 * Replaces ftp-srv's control-channel input handling (process-wide, once):
 * - line buffering with a length cap and Telnet IAC removal (ControlLineReader);
 * - commands run strictly one after another per connection (ftp-srv ran the commands
 *   of different TCP reads concurrently), taken from the input one at a time with
 *   backpressure, so a pipelining client cannot make the server queue without bound
 *   (CommandFeed);
 * - no raw line is logged (ftp-srv traced `PASS secret`);
 * - every command gets a reply even when its handler throws or forgets to answer, and an
 *   empty line gets 500;
 * - the idle timer restarts on each command and is suspended during transfers;
 * - a draining session is closed with 421 as soon as its command is done.
 */
export function installCommandDispatch(): void {
  const commandsProto = CommandsClass.prototype;
  const connectionProto = ConnectionClass.prototype;
  if ((commandsProto as { dfosPatched?: boolean }).dfosPatched) return;
  (commandsProto as { dfosPatched?: boolean }).dfosPatched = true;
  const originalHandle = commandsProto.handle;

  commandsProto.parse = function (this: FtpCommands, message: string) {
    return parseCommandLine(message ?? '');
  };

  commandsProto.handle = async function (this: FtpCommands, input: string | FtpCommand) {
    const connection = this.connection;
    const session = sessionOf(connection);
    const command = typeof input === 'string' ? parseCommandLine(input) : input;
    if (!session) return originalHandle.call(this, command);
    if (session.closed) return;
    const problem = argumentProblem(command);
    if (problem) {
      await connection.reply(501, problem);
      session.touch();
      return;
    }
    session.suspendIdle();
    const isData = DATA_COMMANDS.has(command.directive) && connection.authenticated === true;
    if (isData) session.beginTransfer(command.directive);
    session.current = { verb: command.directive, since: Date.now() };
    const repliesBefore = session.replyCount;
    try {
      await runRegistered(this, command);
    } catch (err) {
      // A handler that throws is a bug: log it once with its stack, the client gets 451.
      session.context.log.error('Command handler failed', {
        session: session.id,
        user: session.user,
        directive: command.directive,
        err: err instanceof Error ? err.stack ?? err.message : String(err),
      });
    } finally {
      session.current = undefined;
      if (isData) session.endTransfer();
    }
    if (session.replyCount === repliesBefore && !session.closed && !connection.commandSocket.destroyed) {
      await connection.reply(451, `${command.directive}: Requested action aborted, local error in processing`);
    }
    session.touch();
    if (session.draining && !session.busy) await session.close421('Server shutting down, closing control connection');
  };

  connectionProto._handleData = function (this: FtpConnection, data: Buffer) {
    const session = sessionOf(this);
    if (!session) return;
    // ABOR must act while the transfer runs (ftp-srv never read it mid-transfer): cut the
    // data connection now; the transfer answers 426, then ABOR itself is answered 226.
    // The feed keeps reading during a transfer (up to its input cap) so ABOR is seen.
    const abor = session.feed.push(data, session.busy ? ABOR_LINE : undefined);
    if (abor && session.busy) session.abortTransfer('aborted by client', true);
    // STAT during a transfer is answered now, not after it (RFC 959 §4.1.3).
    while (session.busy && session.feed.takeIf(STAT_LINE)) void session.replyTransferStatus();
  };
}
