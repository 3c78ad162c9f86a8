import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeTextAtomic } from '../util/writeTextAtomic.js';

/** One banned client address, as kept in `<state-dir>/bans.json`. */
export interface BanEntry {
  /** The client address (IPv4-mapped IPv6 written as plain IPv4). */
  ip: string;
  /** When the ban ends (ms since the epoch). */
  until: number;
  /** How many times this address has been banned (the ban time doubles with each). */
  count: number;
}

/** Where the bans live under a state directory. */
export function bansFilePath(stateDir: string): string {
  return join(stateDir, 'bans.json');
}

/** Largest bans file read (a bigger one is treated as unreadable, so a bad file cannot exhaust memory). */
const MAX_BYTES = 16 * 1024 * 1024;

/**
 * Reads the bans file: `{ "bans": [{ "ip", "until" (ISO time), "count" }] }`. A missing
 * file is no bans; entries that do not parse are skipped. Throws on other read errors.
 */
export async function readBansFile(file: string): Promise<BanEntry[]> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  return parseBans(text);
}

/** Parses the text of a bans file (see readBansFile); anything malformed is skipped. */
export function parseBans(text: string): BanEntry[] {
  if (text.length > MAX_BYTES) return [];
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch {
    return [];
  }
  const list = (data as { bans?: unknown } | null)?.bans;
  if (!Array.isArray(list)) return [];
  const out: BanEntry[] = [];
  for (const item of list as unknown[]) {
    const e = item as { ip?: unknown; until?: unknown; count?: unknown } | null;
    if (!e || typeof e.ip !== 'string' || typeof e.until !== 'string') continue;
    const until = Date.parse(e.until);
    if (!Number.isFinite(until)) continue;
    const count = typeof e.count === 'number' && Number.isInteger(e.count) && e.count > 0 ? e.count : 1;
    out.push({ ip: e.ip, until, count });
  }
  return out;
}

/** The file's text for `bans` (what writeBansFile writes). */
export function formatBans(bans: readonly BanEntry[]): string {
  const sorted = [...bans].sort((a, b) => (a.ip < b.ip ? -1 : a.ip > b.ip ? 1 : 0));
  return JSON.stringify({ bans: sorted.map((b) => ({ ip: b.ip, until: new Date(b.until).toISOString(), count: b.count })) }, null, 2) + '\n';
}

/** Writes the bans file atomically (a temporary file in the same directory, then rename). */
export async function writeBansFile(file: string, bans: readonly BanEntry[]): Promise<string> {
  const text = formatBans(bans);
  await writeTextAtomic(file, text);
  return text;
}
