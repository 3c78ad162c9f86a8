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

/**
 * The audit records matching `match`, once there are at least `atLeast` of them. The server
 * writes a record after it has sent the reply the client acts on, so a test that reads the
 * file right after a reply can be a few milliseconds early: this polls (every 25 ms, at most
 * `timeoutMs`) and returns what matched at the end either way, for the test to assert on.
 */
export async function auditRecords(
  logDir: string,
  match: (record: Record<string, unknown>) => boolean,
  atLeast = 1,
  timeoutMs = 5000,
): Promise<Record<string, unknown>[]> {
  let found: Record<string, unknown>[] = [];
  await pollUntil(async () => {
    found = (await auditLog(logDir)).filter(match);
    return found.length >= atLeast;
  }, timeoutMs, 25);
  return found;
}
