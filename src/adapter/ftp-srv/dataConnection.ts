import type { Socket } from 'node:net';
import { FsError } from '../../storage/FsError.js';
import type { FtpConnection } from './internals.js';

/**
 * Waits for the data connection announced by PASV/EPSV/PORT; throws 425 when there is
 * none or it does not come in time.
 */
export async function openDataConnection(connection: FtpConnection): Promise<Socket> {
  if (!connection.connector?.type) throw new FsError(425, 'Use PASV or EPSV (or PORT) before this command');
  try {
    return await connection.connector.waitForConnection();
  } catch {
    throw new FsError(425, 'Cannot open data connection');
  }
}
