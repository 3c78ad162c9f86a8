import { readFile } from 'node:fs/promises';
import { join } from 'node:path';

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
