import { randomBytes } from 'node:crypto';
import { readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * Uploads are written to a hidden temporary file next to their target and renamed over
 * it only when complete. Names with this prefix are invisible to clients: never listed,
 * never readable, viewable, deletable or usable as a target.
 */
export const TEMP_PREFIX = '.dfos-upload-';

/** True when a path's last component is a DFOS upload temporary. */
export function isTempName(name: string): boolean {
  return name.startsWith(TEMP_PREFIX);
}

/** A fresh unique temporary file name for an upload into some directory. */
export function newTempName(): string {
  return `${TEMP_PREFIX}${randomBytes(12).toString('hex')}.part`;
}

/**
 * Removes stale upload temporaries (left by a crash or power loss) under `dir`,
 * recursively, without following symbolic links. Returns how many were removed.
 * Bounded by `maxEntries` visited so a huge tree cannot stall startup forever.
 */
export async function removeStaleTemps(dir: string, maxEntries = 1_000_000): Promise<number> {
  let removed = 0;
  let visited = 0;
  const stack = [dir];
  while (stack.length > 0 && visited < maxEntries) {
    const current = stack.pop()!;
    let entries;
    try {
      entries = await readdir(current, { withFileTypes: true });
    } catch {
      continue;
    }
    for (const entry of entries) {
      visited++;
      const full = join(current, entry.name);
      if (isTempName(entry.name) && entry.isFile()) {
        await rm(full, { force: true });
        removed++;
      } else if (entry.isDirectory()) {
        stack.push(full);
      }
    }
  }
  return removed;
}
