/**
 * DFOS's own bookkeeping files (upload temporaries, append journals) carry this prefix.
 * Every name starting with it is reserved, on every backend.
 */
export const TEMP_PREFIX = '.dfos-upload-';

/**
 * The one rule for reserved names: a name whose NFKC form, case-folded, starts with
 * TEMP_PREFIX (so `.DFOS-UPLOAD-x` and a full-width `．dfos-upload-x` count too). A
 * reserved name is refused in every client path, never listed, and a directory holding
 * only reserved entries is empty for RMD.
 */
export function isReservedName(name: string): boolean {
  return name.normalize('NFKC').toLowerCase().startsWith(TEMP_PREFIX);
}
