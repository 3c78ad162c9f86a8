import { FsError } from '../../storage/FsError.js';
import type { FtpConnection } from './internals.js';

/** Reply code and client-safe text for a failure; never exposes server paths. */
export function describeFailure(err: unknown, fallbackCode = 451): { code: number; message: string } {
  if (err instanceof FsError) return { code: err.code, message: err.message };
  return { code: fallbackCode, message: 'Requested action aborted: local error in processing' };
}

/** Sends the one reply for a failed command and returns its code. */
export async function replyFailure(connection: FtpConnection, err: unknown, fallbackCode = 451): Promise<number> {
  const { code, message } = describeFailure(err, fallbackCode);
  if (!(err instanceof FsError)) {
    connection.log.warn({ err: err instanceof Error ? err.message : String(err) }, 'Command failed');
  }
  await connection.reply(code, message);
  return code;
}
