import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import winston from 'winston';
import { AuditLog } from './AuditLog.js';
import { redact } from './redact.js';
import type { LogRotation } from './RotatingFile.js';
import { openLogSink, type LogSink } from './logSink.js';
import { RotatingFileTransport } from './rotatingFileTransport.js';

/** Log levels accepted by `--log-level`; `trace` also shows ftp-srv's per-command tracing. */
export const LOG_LEVELS = ['error', 'warn', 'info', 'debug', 'trace'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** winston levels, including `trace` for ftp-srv's per-command tracing. */
const LEVELS: Record<LogLevel, number> = { error: 0, warn: 1, info: 2, debug: 3, trace: 4 };

/** Applies redact() to every field of every record, in every transport. */
const redactFormat = winston.format((info) => {
  const clean = redact({ ...info }) as Record<string, unknown>;
  for (const key of Object.keys(info)) info[key] = clean[key];
  return info;
});

const consoleLine = winston.format.printf((info) => {
  const { level, message, timestamp, ...rest } = info as Record<string, unknown>;
  const fields = Object.entries(rest)
    .filter(([k]) => typeof k === 'string')
    .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
    .join(' ');
  return `${String(timestamp)} ${String(level)}: ${String(message)}${fields ? ' ' + fields : ''}`;
});

/** Options for the server's loggers. */
export interface LoggerOptions {
  logDir: string;
  level: LogLevel;
  /** Also print human-readable lines on the console. */
  console: boolean;
  /** How dfos.log and audit.log rotate (default: at 100 MiB, 10 kept). */
  rotation?: LogRotation;
  /** Fields added to every line of both logs (a worker's `worker: N`). */
  fields?: Record<string, unknown>;
}

/** The rotation DFOS has always had: at 100 MiB, 10 rotated files kept. */
export const DEFAULT_ROTATION: LogRotation = { mode: 'size', maxSize: 100 * 1024 * 1024, maxFiles: 10 };

/** The operational log and the audit trail, with a way to flush both on exit. */
export interface Loggers {
  /** Operational log: console (human) and `<logDir>/dfos.log` (JSON lines). */
  log: winston.Logger;
  /** Audit trail: `<logDir>/audit.log`, one JSON object per action. */
  audit: AuditLog;
  /**
   * Writes to fresh dfos.log and audit.log files from now on (SIGHUP, after the system's
   * logrotate moved them away); a new rotation setting applies from there.
   */
  reopen(rotation?: LogRotation): void;
  /** Flushes and closes every file; resolves when the data is written. */
  close(): Promise<void>;
  /** Where dfos.log and audit.log lines go (the primary of `--workers N` writes the workers' lines there too). */
  readonly files: { dfos: LogSink; audit: LogSink };
}

/** Creates the loggers; creates the log directory if needed. */
export function createLoggers(options: LoggerOptions): Loggers {
  mkdirSync(options.logDir, { recursive: true, mode: 0o750 });
  const json = winston.format.combine(redactFormat(), winston.format.timestamp(), winston.format.json());
  const rotation = options.rotation ?? DEFAULT_ROTATION;
  const dfosFile = new RotatingFileTransport(join(options.logDir, 'dfos.log'), rotation, json);
  const auditFile = openLogSink(join(options.logDir, 'audit.log'), rotation);
  const transports: winston.transport[] = [dfosFile];
  if (options.console) {
    // Colours only on a terminal: piped output (pm2 logs, journald, files) stays plain text.
    const colours = process.stdout.isTTY === true && !process.env.NO_COLOR;
    const colour = colours ? [winston.format.colorize({ colors: { trace: 'gray' } })] : [];
    transports.push(
      new winston.transports.Console({
        format: winston.format.combine(redactFormat(), winston.format.timestamp(), ...colour, consoleLine),
        stderrLevels: ['error', 'warn'],
      }),
    );
  }
  const meta = options.fields ? { defaultMeta: options.fields } : {};
  const log = winston.createLogger({ levels: LEVELS, level: options.level, transports, exitOnError: false, ...meta });
  log.on('error', () => undefined);
  let closing: Promise<void> | undefined;
  return {
    log,
    audit: new AuditLog(auditFile, options.fields),
    reopen: (next) => {
      dfosFile.file.reopen(next);
      auditFile.reopen(next);
    },
    files: { dfos: dfosFile.file, audit: auditFile },
    close: () => (closing ??= Promise.all([endLogger(log, dfosFile), auditFile.close()]).then(() => undefined)),
  };
}

/** Ends a winston logger and waits (bounded) until its file has written everything. */
function endLogger(logger: winston.Logger, file: RotatingFileTransport): Promise<void> {
  const done = new Promise<void>((resolve) => {
    file.once('finish', () => void file.file.close().then(resolve));
    setTimeout(resolve, 3000).unref();
  });
  logger.end();
  return done;
}
