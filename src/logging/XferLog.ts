import type { AuditEvent } from './AuditLog.js';
import type { LogRotation } from './RotatingFile.js';
import { openLogSink, type LogSink } from './logSink.js';
import { xferlogLine } from './xferlogLine.js';

/**
 * The optional xferlog (`--xferlog FILE`): one wu-ftpd format line per finished transfer,
 * next to the JSON audit log, for existing log analysers. Fed by the audit trail (it
 * listens to AuditLog), so it sees exactly the uploads and downloads audit.log records.
 * Rotates and reopens on SIGHUP like the other logs.
 */
export class XferLog {
  private readonly file: LogSink;

  constructor(
    readonly path: string,
    rotation: LogRotation,
  ) {
    this.file = openLogSink(path, rotation);
  }

  /** Writes the line of an audit record that is a transfer; ignores every other record. */
  record(event: AuditEvent): void {
    const line = xferlogLine(event, new Date());
    if (line !== undefined) this.file.write(line);
  }

  /** Writes to a fresh file from now on (SIGHUP after logrotate); a new rotation setting applies from there. */
  reopen(rotation?: LogRotation): void {
    this.file.reopen(rotation);
  }

  /** Flushes and closes the file. */
  close(): Promise<void> {
    return this.file.close();
  }
}
