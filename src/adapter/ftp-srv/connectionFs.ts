import type { JailedFileSystem } from '../../storage/JailedFileSystem.js';
import type { FtpConnection } from './internals.js';

/** The logged-in connection's filesystem (set by ftp-srv from DFOS's login handler). */
export function fsOf(connection: FtpConnection): JailedFileSystem {
  return connection.fs as JailedFileSystem;
}
