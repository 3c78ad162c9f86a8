import { format } from 'node:util';
import type winston from 'winston';
import type { BunyanLike } from './internals.js';

type Level = 'trace' | 'debug' | 'info' | 'warn' | 'error';

/**
 * Presents a winston logger in the bunyan shape ftp-srv's `log` option requires
 * (passing winston directly crashes on the first connection, upstream #300):
 * `child(fields)` and bunyan-style calls `(msg, …)`, `(err, msg, …)`, `({fields}, msg, …)`.
 * ftp-srv reports client mistakes (a missing file, a reset socket) at `error`; they are
 * logged one level lower so the error level stays meaningful for operators. Its `info`
 * lines ("Listening", "Server closing...") repeat what DFOS logs itself, so they go to
 * `debug`.
 * Secrets are removed by the logger's redact format.
 */
export function bunyanAdapter(logger: winston.Logger, fields: Record<string, unknown> = {}): BunyanLike {
  const emit = (level: Level) => (...args: unknown[]) => {
    const target: Level = level === 'error' ? 'warn' : level === 'info' ? 'debug' : level;
    if (!logger.isLevelEnabled(target)) return;
    let meta: Record<string, unknown> = { ...fields, source: 'ftp-srv' };
    const first = args[0];
    if (first instanceof Error) {
      meta.err = { name: first.name, message: first.message, code: (first as NodeJS.ErrnoException).code };
      args = args.slice(1);
      if (args.length === 0) args = [first.message];
    } else if (first !== null && typeof first === 'object' && !Array.isArray(first)) {
      meta = { ...meta, ...(first as Record<string, unknown>) };
      args = args.slice(1);
    }
    const message = args.length > 0 ? format(...args) : '';
    logger.log(target, message, meta);
  };
  return {
    child: (more) => bunyanAdapter(logger, { ...fields, ...more }),
    trace: emit('trace'),
    debug: emit('debug'),
    info: emit('info'),
    warn: emit('warn'),
    error: emit('error'),
    fatal: emit('error'),
  };
}
