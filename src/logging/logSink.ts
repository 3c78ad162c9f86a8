import { resolve } from 'node:path';
import { RotatingFile, type LogRotation } from './RotatingFile.js';

/** Worker → primary: one line for a log file the primary writes (dfos.log, audit.log, the xferlog). */
export interface LogLine {
  dfos: 'log';
  path: string;
  line: string;
}

/** Where a log file's lines go: the file itself, or (in a worker) the primary that writes it. */
export interface LogSink {
  readonly path: string;
  write(line: string): void;
  reopen(rotation?: LogRotation): void;
  close(): Promise<void>;
}

let forwarding = false;

/**
 * From now on log files opened by this process are written by the primary (`--workers N`):
 * one writer per file, so rotation never races and every worker's lines land in the same
 * dfos.log, audit.log and xferlog, in the order each worker wrote them.
 */
export function forwardLogsToPrimary(): void {
  forwarding = true;
}

/** A log file: a RotatingFile, or in a worker a sink forwarding each line to the primary. */
export function openLogSink(path: string, rotation: LogRotation): LogSink {
  return forwarding ? new ForwardedLog(resolve(path)) : new RotatingFile(path, rotation);
}

/** A worker's side of a log file: lines go to the primary over IPC; the primary rotates and reopens. */
class ForwardedLog implements LogSink {
  constructor(readonly path: string) {}

  write(line: string): void {
    if (!process.connected) return;
    const msg: LogLine = { dfos: 'log', path: this.path, line };
    process.send?.(msg);
  }

  /** The primary reopens the files (it gets the SIGHUP too). */
  reopen(): void {}

  /** Resolves when every line sent so far has left this process (IPC keeps the order). */
  close(): Promise<void> {
    return new Promise((done) => {
      if (!process.send || !process.connected) return done();
      const timer = setTimeout(done, 3000);
      timer.unref();
      process.send({ dfos: 'log-flush' }, undefined, undefined, () => {
        clearTimeout(timer);
        done();
      });
    });
  }
}
