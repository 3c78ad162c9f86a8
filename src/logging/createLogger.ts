import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import winston from 'winston';
import type { LogLevel } from '../config/serverConfig.js';
import { redact } from './redact.js';

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
}

/** The operational log and the audit trail, with a way to flush both on exit. */
export interface Loggers {
  /** Operational log: console (human) and `<logDir>/dfos.log` (JSON lines). */
  log: winston.Logger;
  /** Audit trail: `<logDir>/audit.log`, one JSON object per action. */
  auditLog: winston.Logger;
  /** Flushes and closes every file; resolves when the data is written. */
  close(): Promise<void>;
}

/** Creates the loggers; creates the log directory if needed. */
export function createLoggers(options: LoggerOptions): Loggers {
  mkdirSync(options.logDir, { recursive: true, mode: 0o750 });
  const json = winston.format.combine(redactFormat(), winston.format.timestamp(), winston.format.json());
  const fileOptions = { maxsize: 100 * 1024 * 1024, maxFiles: 10, tailable: true };
  const transports: winston.transport[] = [
    new winston.transports.File({ filename: join(options.logDir, 'dfos.log'), format: json, ...fileOptions }),
  ];
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
  const log = winston.createLogger({ levels: LEVELS, level: options.level, transports, exitOnError: false });
  const auditLog = winston.createLogger({
    levels: LEVELS,
    level: 'info',
    transports: [new winston.transports.File({ filename: join(options.logDir, 'audit.log'), format: json, ...fileOptions })],
    exitOnError: false,
  });
  log.on('error', () => undefined);
  auditLog.on('error', () => undefined);
  let closing: Promise<void> | undefined;
  return {
    log,
    auditLog,
    close: () => (closing ??= Promise.all([endLogger(log), endLogger(auditLog)]).then(() => undefined)),
  };
}

/** Ends a winston logger and waits until its file transports have written everything. */
function endLogger(logger: winston.Logger): Promise<void> {
  const files = logger.transports.filter((t): t is InstanceType<typeof winston.transports.File> => t instanceof winston.transports.File);
  const done = files.map(
    (t) =>
      new Promise<void>((resolve) => {
        t.once('finish', () => resolve());
        setTimeout(resolve, 3000).unref();
      }),
  );
  logger.end();
  return Promise.all(done).then(() => undefined);
}
