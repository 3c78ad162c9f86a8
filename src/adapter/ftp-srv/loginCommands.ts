import type { CommandEntry, FtpConnection } from './internals.js';
import { StorageError } from '../../storage/StorageBackend.js';
import { sessionOf } from './Session.js';

/**
 * USER and PASS. ftp-srv kept the user name after a failed PASS, so the client could
 * never retry on the same connection ("Username already set"); here a failed login
 * resets it. Every refusal gets the same 530 text, whatever the reason; a login the
 * server cannot serve (a StorageError 'unavailable', e.g. its home folder is unusable) gets 421
 * and the connection is closed, since retrying the password cannot help.
 */
export const loginCommands: CommandEntry[] = [
  {
    directive: 'USER',
    handler(this: FtpConnection, { command }) {
      if (this.authenticated) return this.reply(503, 'Already logged in');
      if (!command.arg) return this.reply(501, 'USER needs a user name');
      const session = sessionOf(this);
      if (session?.context.tls?.mode === 'required' && session.tls === undefined) {
        return this.reply(530, 'TLS required: send AUTH TLS first (or use the implicit FTPS port)');
      }
      this.username = command.arg;
      return this.reply(331, 'User name okay, need password');
    },
    syntax: '{{cmd}} <username>',
    description: 'Authentication user name',
    flags: { no_auth: true },
  },
  {
    directive: 'PASS',
    async handler(this: FtpConnection, { command }) {
      if (this.authenticated) return this.reply(202, 'Already logged in');
      if (!this.username) return this.reply(503, 'Send USER first');
      const username = this.username;
      try {
        await this.login(username, command.arg ?? '');
        return this.reply(230, 'Login successful');
      } catch (err) {
        this.username = undefined;
        if (err instanceof StorageError && err.kind === 'unavailable') {
          const session = sessionOf(this);
          if (session) return session.close421(err.message);
          return this.close(421, err.message);
        }
        // Every refusal reads the same ('Login incorrect'), except a right password refused
        // because the account needs TLS, whose message says so.
        await this.reply(530, err instanceof StorageError && err.kind === 'denied' ? err.message : 'Login incorrect');
        // A failed login that got the address banned (or one from an address banned
        // meanwhile): 421 with the reason, and the connection is closed. Otherwise, after
        // --max-login-attempts failures the connection is closed too: a guesser must
        // reconnect (and pay the greeting and the delay) for every few tries.
        const session = sessionOf(this);
        const refusal = session?.context.refusal?.(session.client);
        const limit = session?.context.maxLoginAttempts ?? 0;
        if (session && refusal !== undefined) await session.close421(refusal);
        else if (session && limit > 0 && ++session.failedLogins >= limit) {
          await session.close421(`Too many failed logins (${limit}); closing the connection`);
        }
        return undefined;
      }
    },
    syntax: '{{cmd}} <password>',
    description: 'Authentication password',
    flags: { no_auth: true },
  },
];
