/**
 * Human durations for flags: `3600` (seconds), `90s`, `30m`, `6h`, `2d`, `1.5h`. Only
 * one number and one unit; months and years are left out on purpose (their length varies).
 */

const UNIT_SECONDS: Record<string, number> = { '': 1, s: 1, m: 60, h: 3600, d: 86_400 };

/** How durations are written, for error messages. */
export const DURATION_RULE = 'a duration such as 3600 (seconds), 90m, 6h or 2d';

/** Parses a duration into seconds; undefined when the text is not one (empty, negative, unknown unit). */
export function parseDuration(text: string): number | undefined {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$/i.exec(text);
  if (!m) return undefined;
  const seconds = Number(m[1]) * UNIT_SECONDS[m[2]!.toLowerCase()]!;
  return Number.isFinite(seconds) ? seconds : undefined;
}

/** Seconds as the largest exact unit (`86400` → `1d`, `5400` → `90m`, `90` → `90s`), for logs. */
export function formatDuration(seconds: number): string {
  for (const [unit, size] of [['d', 86_400], ['h', 3600], ['m', 60]] as const) {
    if (seconds >= size && seconds % size === 0) return `${seconds / size}${unit}`;
  }
  return `${seconds}s`;
}
