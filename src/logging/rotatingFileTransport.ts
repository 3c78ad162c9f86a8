import TransportStream from 'winston-transport';
import type winston from 'winston';
import type { LogRotation } from './RotatingFile.js';
import { openLogSink, type LogSink } from './logSink.js';

/** Where winston keeps a record's formatted line (triple-beam's MESSAGE). */
const MESSAGE = Symbol.for('message');

/**
 * A winston transport writing each formatted record as one line of a RotatingFile, so
 * dfos.log and audit.log rotate by size or by day and reopen on SIGHUP like the xferlog.
 * (winston's own File transport rotates by size only and cannot reopen its file.)
 */
export class RotatingFileTransport extends TransportStream {
  readonly file: LogSink;

  constructor(path: string, rotation: LogRotation, format: winston.Logform.Format) {
    super({ format });
    this.file = openLogSink(path, rotation);
  }

  override log(info: Record<string | symbol, unknown>, next: () => void): void {
    this.file.write(String(info[MESSAGE]));
    next();
  }

  /** Flushes and closes the file. */
  override close(): void {
    void this.file.close();
  }
}
