import { closest, distance } from 'fastest-levenshtein';

/** What an unknown configuration key was probably meant to be. */
export type KeySuggestion =
  /** The same words in another spelling (`maxSessions`, `max_sessions`, `--max-sessions`). */
  | { kind: 'spelling'; key: string }
  /** A typo a few edits away (`max-sesions`). */
  | { kind: 'typo'; key: string };

/** The letters and digits of a key, lower case: `maxSessions`, `max_sessions` and `max-sessions` agree. */
function words(key: string): string {
  return key.toLowerCase().replace(/[^a-z0-9]/g, '');
}

/**
 * The valid key an unknown one was meant to be: the same key in another spelling (camelCase,
 * snake_case, a leading `--`), or the nearest key by edit distance when it is close enough
 * to be a typo (at most a third of the key's length, and at most 3 edits). Undefined when
 * nothing is close.
 */
export function nearestKey(unknown: string, valid: readonly string[]): KeySuggestion | undefined {
  const plain = words(unknown);
  const same = valid.find((k) => words(k) === plain);
  if (same !== undefined) return { kind: 'spelling', key: same };
  if (valid.length === 0) return undefined;
  const best = closest(unknown.toLowerCase(), [...valid]);
  const edits = distance(unknown.toLowerCase(), best);
  return edits <= Math.min(3, Math.ceil(best.length / 3)) ? { kind: 'typo', key: best } : undefined;
}
