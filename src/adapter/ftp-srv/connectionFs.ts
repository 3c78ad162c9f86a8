import type { FileSession } from '../../core/FileSession.js';
import type { FtpConnection } from './internals.js';

/**
 * The logged-in connection's core session. ftp-srv keeps whatever the login handler
 * resolved as `fs` on the connection; DFOS resolves the FileSession, so every command
 * handler reaches storage only through the core.
 */
export function fileSessionOf(connection: FtpConnection): FileSession {
  return connection.fs as FileSession;
}
