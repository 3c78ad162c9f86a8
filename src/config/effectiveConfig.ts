import { Document, isScalar, isSeq, type Pair } from 'yaml';

/** One setting of the effective configuration: its key (flag name), value, and where the value came from. */
export interface EffectiveSetting {
  key: string;
  /** The validated value; undefined when unset (no default). */
  value: unknown;
  /** Where it came from, for the comment: `--port`, `DFOS_PORT`, `dfos.yaml line 3`, `default`. */
  from: string;
}

/** Keys whose values are secrets themselves (a key naming a file that holds one, `…-file`, is only a path). */
const SECRET_KEY = /(^|-)(password|passwd|secret|token|credentials?)(-|$)/;

/** What replaces a secret in printed configuration. */
export const MASK = '********';

/**
 * A value as it may be printed: secret-bearing keys are masked entirely, and a password in
 * a URL (`http://user:pw@host`) is masked wherever it appears.
 */
export function maskSecret(key: string, value: unknown): unknown {
  if (value === undefined || value === null) return value;
  if (SECRET_KEY.test(key) && !key.endsWith('-file')) return MASK;
  if (typeof value === 'string') return value.replace(/^([a-z][a-z0-9+.-]*:\/\/[^/:@\s]*):[^/@\s]*@/i, `$1:${MASK}@`);
  if (Array.isArray(value)) return value.map((v) => maskSecret(key, v));
  return value;
}

/**
 * The effective configuration as YAML that is itself a valid config file: every key in
 * order, unset ones as `null`, lists in flow style, each line commented with where its
 * value came from; secrets masked.
 */
export function formatEffectiveConfig(settings: readonly EffectiveSetting[], heading: string): string {
  const values: Record<string, unknown> = {};
  for (const s of settings) values[s.key] = maskSecret(s.key, s.value) ?? null;
  const doc = new Document(values);
  doc.commentBefore = ` ${heading}`;
  const from = new Map(settings.map((s) => [s.key, s.from]));
  for (const pair of (doc.contents as { items: Pair[] }).items) {
    const key = isScalar(pair.key) ? String(pair.key.value) : '';
    if (isSeq(pair.value)) pair.value.flow = true;
    if (isScalar(pair.value) || isSeq(pair.value)) pair.value.comment = ` ${from.get(key) ?? ''}`;
  }
  return doc.toString({ lineWidth: 0 });
}
