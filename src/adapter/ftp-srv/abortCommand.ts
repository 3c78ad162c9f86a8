import type { CommandEntry, FtpConnection } from './internals.js';
import { sessionOf } from './Session.js';

/**
 * ABOR. The running transfer was already cut when the line arrived (see
 * commandDispatch.ts) and answered 426; ABOR then gets 226. With no transfer running it
 * closes any open passive listener and answers 225.
 */
export const abortCommand: CommandEntry = {
  directive: 'ABOR',
  handler(this: FtpConnection) {
    const session = sessionOf(this);
    if (session?.abortedByClient) {
      session.abortedByClient = false;
      return this.reply(226, 'Abort successful; data connection closed');
    }
    this.connector?.end();
    return this.reply(225, 'No transfer to abort');
  },
  syntax: '{{cmd}}',
  description: 'Abort the running transfer',
};
