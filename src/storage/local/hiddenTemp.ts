import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { open, readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
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

/**
 * Startup sweep after a crash or power loss, under `dir`, recursively, without following
 * symbolic links: removes upload temporaries, and undoes unfinished appends (truncates the
 * file back to its journalled size when it is still the same inode, then removes the
 * journal). Bounded by `maxEntries` visited, so a huge tree cannot stall startup forever.
 */
export async function removeStaleTemps(dir: string, maxEntries = 1_000_000): Promise<{ removed: number; undone: number }> {
  let removed = 0;
  let undone = 0;
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
      if (GENERATED.test(entry.name) && entry.isFile()) {
        if (entry.name.endsWith('.undo') && (await undoAppend(current, full))) undone++;
        await rm(full, { force: true });
        removed++;
      } else if (entry.isDirectory()) {
        stack.push(full);
      }
    }
  }
  return { removed, undone };
}

/** Truncates the file named in a journal back to its recorded size; true if it did. */
async function undoAppend(dir: string, journalPath: string): Promise<boolean> {
  let journal: AppendJournal;
  try {
    journal = JSON.parse(await readFile(journalPath, 'utf8')) as AppendJournal;
  } catch {
    return false; // torn journal: written before any byte was appended
  }
  if (typeof journal.target !== 'string' || journal.target.includes('/') || !Number.isSafeInteger(journal.size)) return false;
  const file = await open(join(dir, journal.target), constants.O_WRONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK).catch(() => undefined);
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
