import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { open, readdir, rm, type FileHandle } from 'node:fs/promises';
import { TEMP_PREFIX } from '../reservedNames.js';

/** Names of DFOS's own leftovers: a temporary (`.part`) or an append journal (`.undo`). */
const GENERATED = /^\.dfos-upload-.*\.(part|undo)$/;

/** A fresh unique temporary file name for an upload into some directory. */
export function newTempName(): string {
  return `${TEMP_PREFIX}${randomBytes(12).toString('hex')}.part`;
}

/** A fresh unique journal name for an append in place. */
export function newJournalName(): string {
  return `${TEMP_PREFIX}${randomBytes(12).toString('hex')}.undo`;
}

/** What an append journal records: the file appended to and its size before. */
export interface AppendJournal {
  /** Name of the file in the journal's directory. */
  target: string;
  /** Size before the append: the file is truncated back to it if the append did not finish. */
  size: number;
  /** Inode of the file, so a file replaced meanwhile is never truncated. */
  ino: number;
}

/** Opening a directory of the sweep: never through a link (a swapped-in link fails with ENOTDIR/ELOOP). */
const SWEEP_DIR = constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW;
/** Directories nested deeper than this are not swept (each level holds one descriptor). */
const MAX_DEPTH = 256;

/**
 * Startup sweep after a crash or power loss, under `dir`, recursively: removes upload
 * temporaries, and undoes unfinished appends (truncates the file back to its journalled
 * size when it is still the same inode, then removes the journal). Like the jail, it walks
 * by directory descriptors with O_NOFOLLOW, so a directory swapped for a link meanwhile
 * cannot send it outside the storage. Bounded by `maxEntries` visited, so a huge tree
 * cannot stall startup forever.
 */
export async function removeStaleTemps(dir: string, maxEntries = 1_000_000): Promise<{ removed: number; undone: number }> {
  const counts = { removed: 0, undone: 0, visited: 0 };
  const root = await open(dir, SWEEP_DIR).catch(() => undefined);
  if (!root) return { removed: 0, undone: 0 };
  try {
    await sweep(root, counts, maxEntries, 0);
  } finally {
    await root.close();
  }
  return { removed: counts.removed, undone: counts.undone };
}

async function sweep(dir: FileHandle, counts: { removed: number; undone: number; visited: number }, maxEntries: number, depth: number): Promise<void> {
  const here = `/proc/self/fd/${dir.fd}`;
  let entries;
  try {
    entries = await readdir(here, { withFileTypes: true });
  } catch {
    return;
  }
  for (const entry of entries) {
    if (++counts.visited > maxEntries) return;
    if (GENERATED.test(entry.name) && entry.isFile()) {
      if (entry.name.endsWith('.undo') && (await undoAppend(here, entry.name))) counts.undone++;
      await rm(`${here}/${entry.name}`, { force: true });
      counts.removed++;
    } else if (entry.isDirectory() && depth < MAX_DEPTH) {
      const child = await open(`${here}/${entry.name}`, SWEEP_DIR).catch(() => undefined);
      if (!child) continue;
      try {
        await sweep(child, counts, maxEntries, depth + 1);
      } finally {
        await child.close();
      }
    }
  }
}

/** Truncates the file named in a journal (in the directory `here`) back to its recorded size; true if it did. */
async function undoAppend(here: string, journalName: string): Promise<boolean> {
  let journal: AppendJournal;
  try {
    const handle = await open(`${here}/${journalName}`, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
    try {
      journal = JSON.parse(await handle.readFile('utf8')) as AppendJournal;
    } finally {
      await handle.close();
    }
  } catch {
    return false; // torn journal: written before any byte was appended
  }
  if (typeof journal.target !== 'string' || journal.target.includes('/') || !Number.isSafeInteger(journal.size)) return false;
  const file = await open(`${here}/${journal.target}`, constants.O_WRONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK).catch(() => undefined);
  if (!file) return false;
  try {
    const stats = await file.stat();
    if (!stats.isFile() || stats.ino !== journal.ino || stats.size <= journal.size) return false;
    await file.truncate(journal.size);
    await file.sync();
    return true;
  } finally {
    await file.close();
  }
}
