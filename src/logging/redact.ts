/** Replaces the argument of a raw `PASS …` command line. */
const PASS_LINE = /^(\s*PASS)\s+\S.*$/i;
/** Keys whose values are secrets wherever they appear. */
const SECRET_KEYS = /^(pass(word)?|secret|token|authorization)$/i;

/**
 * Returns a copy of a log value with every secret removed: `PASS …` lines anywhere (ftp-srv
 * logs the raw line at trace level) and values of password-like keys. Depth-bounded, so
 * a cyclic or huge object cannot stall logging.
 */
export function redact(value: unknown, depth = 0): unknown {
  if (typeof value === 'string') return PASS_LINE.test(value) ? value.replace(PASS_LINE, '$1 ********') : value;
  if (value === null || typeof value !== 'object' || depth > 6) return value;
  if (value instanceof Error) return { name: value.name, message: redact(value.message, depth + 1), code: (value as NodeJS.ErrnoException).code };
  if (Buffer.isBuffer(value)) return `<${value.length} bytes>`;
  if (Array.isArray(value)) return value.slice(0, 100).map((v) => redact(v, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [key, v] of Object.entries(value as Record<string, unknown>)) {
    out[key] = SECRET_KEYS.test(key) && v !== undefined ? '********' : redact(v, depth + 1);
  }
  return out;
}
