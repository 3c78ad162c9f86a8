import { randomUUID } from 'node:crypto';
import { mkdir, open, readdir, readFile, unlink } from 'node:fs/promises';
import { join } from 'node:path';

/** One multipart upload this node created. */
export interface JournalEntry {
  bucket: string;
  key: string;
  uploadId: string;
}

/** A journal file and what it holds (undefined when it cannot be read back). */
export interface JournalRecord {
  name: string;
  entry: JournalEntry | undefined;
}

const SUFFIX = '.json';

/**
 * The multipart uploads this node has in flight, so the next start can abort the ones a
 * crash (or kill -9) cut: one small file per upload in a directory of the node's own
 * state dir (`<state-dir>/s3-uploads/`), written when S3 has created the upload and before
 * its first part, removed when it is completed or aborted.
 *
 * One file per upload keeps uploads independent (no shared file to rewrite, no lock): a
 * record is one exclusive create, write, fdatasync and a directory fsync (so it survives
 * a power cut too); forgetting is an unlink, not synced (a lost unlink only makes the next
 * start abort an upload S3 no longer knows, which is answered NoSuchUpload and dropped).
 * The directory must belong to this node alone: another server sharing it would abort
 * this one's uploads when it starts.
 */
export class UploadJournal {
  private constructor(readonly dir: string) {}

  /** Opens (creating, mode 0700) the journal directory. */
  static async open(dir: string): Promise<UploadJournal> {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    return new UploadJournal(dir);
  }

  /** Records an upload durably; returns the record's name for forget(). */
  async record(entry: JournalEntry): Promise<string> {
    const name = `${randomUUID()}${SUFFIX}`;
    const file = join(this.dir, name);
    const handle = await open(file, 'wx', 0o600);
    try {
      await handle.writeFile(JSON.stringify(entry));
      await handle.datasync();
    } catch (err) {
      await handle.close().catch(() => undefined);
      await unlink(file).catch(() => undefined);
      throw err;
    }
    await handle.close();
    await syncDirectory(this.dir);
    return name;
  }

  /** Removes a record (a missing one is fine). */
  async forget(name: string): Promise<void> {
    try {
      await unlink(join(this.dir, name));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }

  /** Every record, in no particular order. */
  async list(): Promise<JournalRecord[]> {
    const records: JournalRecord[] = [];
    for (const name of await readdir(this.dir)) {
      if (!name.endsWith(SUFFIX)) continue;
      let text: string;
      try {
        text = await readFile(join(this.dir, name), 'utf8');
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
        throw err;
      }
      records.push({ name, entry: parseEntry(text) });
    }
    return records;
  }
}

/** The entry in a record's text, or undefined when it is not one (a write cut by a power loss). */
function parseEntry(text: string): JournalEntry | undefined {
  try {
    const value = JSON.parse(text) as Partial<JournalEntry> | null;
    const { bucket, key, uploadId } = value ?? {};
    if (typeof bucket === 'string' && typeof key === 'string' && typeof uploadId === 'string' && uploadId !== '') {
      return { bucket, key, uploadId };
    }
  } catch {
    /* not JSON */
  }
  return undefined;
}

/** Makes a directory's entries durable (best effort: not every platform can fsync a directory). */
async function syncDirectory(dir: string): Promise<void> {
  let handle;
  try {
    handle = await open(dir, 'r');
    await handle.sync();
  } catch {
    /* best effort */
  } finally {
    await handle?.close().catch(() => undefined);
  }
}
