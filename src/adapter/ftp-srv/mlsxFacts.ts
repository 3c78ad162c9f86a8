import type { StorageEntry } from '../../storage/StorageBackend.js';
import { listingName } from './listFormat.js';

/** The MLST facts DFOS offers (RFC 3659 §7.5), in FEAT order. */
export const MLST_FACTS = ['type', 'size', 'modify', 'perm'] as const;
export type MlstFact = (typeof MLST_FACTS)[number];

/** `YYYYMMDDHHMMSS.sss` in UTC (RFC 3659 time-val). */
export function mlstTime(date: Date): string {
  const p = (n: number, w = 2) => String(n).padStart(w, '0');
  return `${date.getUTCFullYear()}${p(date.getUTCMonth() + 1)}${p(date.getUTCDate())}${p(date.getUTCHours())}${p(date.getUTCMinutes())}${p(date.getUTCSeconds())}.${p(date.getUTCMilliseconds(), 3)}`;
}

/**
 * The `perm` fact: what this login may do with the entry. Files: r (RETR), w (STOR),
 * a (APPE, where the storage can append), d (DELE), f (RNFR). Directories: e (CWD), l (LIST), c (STOR inside),
 * m (MKD inside), p (delete contents), d (RMD), f (RNFR). Read-only logins get r / el.
 */
function perm(stats: StorageEntry, readOnly: boolean, canAppend: boolean): string {
  if (stats.type === 'directory') return readOnly ? 'el' : 'elcmpdf';
  return readOnly ? 'r' : canAppend ? 'rwadf' : 'rwdf';
}

/** One MLSD/MLST entry: `fact=value;…; name` with the selected facts. */
export function mlsxLine(stats: StorageEntry, name: string, facts: readonly MlstFact[], readOnly: boolean, canAppend = true): string {
  const values: Record<MlstFact, string | undefined> = {
    type: stats.type === 'directory' ? 'dir' : stats.type === 'file' ? 'file' : 'OS.unix=other',
    size: stats.type === 'directory' ? undefined : String(stats.size),
    modify: mlstTime(stats.mtime),
    perm: perm(stats, readOnly, canAppend),
  };
  const text = facts
    .filter((f) => values[f] !== undefined)
    .map((f) => `${f}=${values[f]};`)
    .join('');
  return `${text} ${listingName(name)}`;
}

/** The FEAT line for MLST: every offered fact, `*` marking the selected ones. */
export function mlstFeature(selected: readonly MlstFact[]): string {
  return `MLST ${MLST_FACTS.map((f) => `${f}${selected.includes(f) ? '*' : ''};`).join('')}`;
}
