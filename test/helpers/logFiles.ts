import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pollUntil } from './serverProcess.js';

/** Reading the server's JSON-lines logs (dfos.log and audit.log) in tests. */

/** The JSON records of a log file (one object per line); [] if the file is missing. Every line must be JSON. */
export async function readJsonLines(file: string): Promise<Record<string, unknown>[]> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch {
    return [];
  }
  return text
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

/** Reads dfos.log lines (JSON), or [] when the file does not exist yet. */
export function dfosLog(logDir: string): Promise<Record<string, unknown>[]> {
  return readJsonLines(join(logDir, 'dfos.log'));
}

/** Reads audit.log lines (JSON), or [] when the file does not exist yet. */
export function auditLog(logDir: string): Promise<Record<string, unknown>[]> {
  return readJsonLines(join(logDir, 'audit.log'));
}

type LogRecord = Record<string, unknown>;

/**
 * The records `read` returns that match `match`, once there are at least `atLeast` of them.
 * The server writes a line after it has sent the reply the client acts on, and lines
 * written close together reach the file together up to 10 ms later (RotatingFile), so a
 * test that reads a log right after an event can be early: this polls (every 25 ms, at most
 * `timeoutMs`) and returns what matched at the end either way, for the test to assert on.
 */
export async function recordsOnceThere(
  read: () => Promise<LogRecord[]>,
  match: (record: LogRecord) => boolean,
  atLeast = 1,
  timeoutMs = 5000,
): Promise<LogRecord[]> {
  let found: LogRecord[] = [];
  await pollUntil(async () => {
    found = (await read()).filter(match);
    return found.length >= atLeast;
  }, timeoutMs, 25);
  return found;
}

/** The audit.log records matching `match`, once there are `atLeast` (see recordsOnceThere). */
export function auditRecords(logDir: string, match: (record: LogRecord) => boolean, atLeast = 1, timeoutMs = 5000): Promise<LogRecord[]> {
  return recordsOnceThere(() => auditLog(logDir), match, atLeast, timeoutMs);
}

/** The dfos.log records matching `match`, once there are `atLeast` (see recordsOnceThere). */
export function dfosRecords(logDir: string, match: (record: LogRecord) => boolean, atLeast = 1, timeoutMs = 5000): Promise<LogRecord[]> {
  return recordsOnceThere(() => dfosLog(logDir), match, atLeast, timeoutMs);
}
