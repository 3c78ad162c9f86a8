/**
 * Human byte sizes for flags and messages: `10GiB`, `100MiB`, `1.5G`, `500k`, `2MB`,
 * `1048576`. Binary units (KiB, MiB, GiB, TiB, and the short K, M, G, T) are powers of
 * 1024; decimal units (kB, MB, GB, TB) are powers of 1000, as their SI names say. A trailing
 * `/s` is accepted, so rates read naturally (`--rate-up 10MiB/s`). No library parses the
 * IEC names (`bytes` treats "MB" as MiB and rejects "MiB"), hence this small parser.
 */

const UNITS: Record<string, number> = {
  '': 1,
  b: 1,
  k: 1024,
  kib: 1024,
  kb: 1000,
  m: 1024 ** 2,
  mib: 1024 ** 2,
  mb: 1000 ** 2,
  g: 1024 ** 3,
  gib: 1024 ** 3,
  gb: 1000 ** 3,
  t: 1024 ** 4,
  tib: 1024 ** 4,
  tb: 1000 ** 4,
};

/** How sizes are written, for error messages. */
export const BYTE_SIZE_RULE = 'a size such as 1048576, 500KiB, 100MiB or 10GiB';

/**
 * Parses a size; undefined when the text is not one (empty, negative, unknown unit, not a
 * whole number of bytes after scaling, or beyond 2^53).
 */
export function parseByteSize(text: string): number | undefined {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)(?:\/s)?\s*$/.exec(text);
  if (!m) return undefined;
  const unit = UNITS[m[2]!.toLowerCase()];
  if (unit === undefined) return undefined;
  const value = Math.round(Number(m[1]) * unit);
  if (!Number.isSafeInteger(value)) return undefined;
  return value;
}

/** A byte count in the largest binary unit that keeps it readable: `10 GiB`, `1.5 MiB`, `512 B`. */
export function formatByteSize(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let i = 0;
  while (Math.abs(value) >= 1024 && i < units.length - 1) {
    value /= 1024;
    i++;
  }
  const text = i === 0 || Number.isInteger(value) ? String(value) : value.toFixed(value < 10 ? 2 : 1).replace(/\.?0+$/, '');
  return `${text} ${units[i]}`;
}
