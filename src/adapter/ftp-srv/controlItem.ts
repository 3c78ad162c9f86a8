import type winston from 'winston';
import { MAX_LINE_BYTES, type ControlItem } from './controlLineReader.js';
import type { FtpConnection } from './internals.js';

/**
 * Runs one item of the control stream on an ftp-srv connection: a command line goes to
 * the (patched) command dispatcher; an over-long line and an empty line, which are not
 * commands, still get their one reply (500, as in vsftpd). Never rejects: a failure is
 * logged, the dispatcher has already answered 451 for a handler that failed.
 */
export async function runControlItem(connection: FtpConnection, item: ControlItem, log: winston.Logger, sessionId: string): Promise<void> {
  try {
    if (item.overlong) {
      await connection.reply(500, `Command line too long (the limit is ${MAX_LINE_BYTES} bytes)`);
    } else if (/^\s*$/.test(item.line)) {
      await connection.reply(500, 'Empty command line; HELP lists the commands');
    } else {
      await connection.commands.handle(item.line);
    }
  } catch (err) {
    log.warn('Command failed', { session: sessionId, err: err instanceof Error ? err.message : String(err) });
  }
}
