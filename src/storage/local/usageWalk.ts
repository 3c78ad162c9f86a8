import { lstat, readdir } from 'node:fs/promises';
import { posix } from 'node:path';
import { isReservedName } from '../reservedNames.js';
import type { StorageUsage } from '../StorageBackend.js';
import type { JailResolver } from './JailResolver.js';

/** Deepest directory level walked (deeper ones are not counted; paths that deep are not usable over FTP anyway). */
const MAX_DEPTH = 256;

/**
 * Sums the regular files under a jailed home. Each directory is held open by descriptor
 * (JailResolver), entries are lstat'ed and links are never followed, so nothing is counted
 * twice and nothing outside the home is looked at. Entries that vanish during the walk
 * are skipped; DFOS's temporaries are not counted.
 */
export async function measureJailedUsage(resolver: JailResolver): Promise<StorageUsage> {
  const usage: StorageUsage = { bytes: 0, files: 0 };
  const pending: Array<{ path: string; depth: number }> = [{ path: '/', depth: 0 }];
  while (pending.length > 0) {
    const { path, depth } = pending.pop()!;
    let held;
    try {
      held = await resolver.openDirectory(path);
    } catch {
      continue; // vanished or replaced meanwhile
    }
    try {
      const names = await readdir(held.self()).catch(() => [] as string[]);
      for (const name of names) {
        if (isReservedName(name)) continue;
        const stats = await lstat(held.at(name)).catch(() => undefined);
        if (stats?.isFile()) {
          usage.bytes += stats.size;
          usage.files += 1;
        } else if (stats?.isDirectory() && depth < MAX_DEPTH) {
          pending.push({ path: posix.join(path, name), depth: depth + 1 });
        }
      }
    } finally {
      await held.close();
    }
  }
  return usage;
}
