import { constants } from 'node:fs';
import { copyFile, open, rename, rm, type FileHandle } from 'node:fs/promises';
import { Writable } from 'node:stream';
import { dirname, join } from 'node:path';
import { FsError } from './FsError.js';
import { newTempName } from './hiddenTemp.js';

/** How an upload relates to the existing target. */
export interface UploadMode {
  /** APPE: start from the target's current content (if any) and add to its end. */
  append?: boolean;
  /** REST n + STOR: keep the target's first n bytes, replace the rest with the upload. */
  resumeAt?: number;
}

/**
 * A writable stream that uploads atomically: data goes to a hidden temporary file in the
 * target's directory, which is fsynced and renamed over the target only when the stream
 * finishes. Destroying the stream (error, abort, shutdown) removes the temporary and
 * leaves the target exactly as it was. 'finish' fires only after the rename, so a
 * success reply sent on 'finish' means the new content is visible.
 */
export class AtomicUpload extends Writable {
  private position: number;
  private committed = false;
  /** Bytes received from the client (not counting content kept from the old file). */
  bytesReceived = 0;
  /**
   * Last check before the rename; a rejection discards the upload instead. The transfer
   * uses it to confirm the data connection really ended normally.
   */
  beforeCommit: (() => Promise<void>) | undefined;

  private constructor(
    private readonly handle: FileHandle,
    private readonly tempPath: string,
    readonly targetPath: string,
    startPosition: number,
  ) {
    super({ highWaterMark: 1 << 20, decodeStrings: true });
    this.position = startPosition;
  }

  /**
   * Opens an upload to `targetPath` (a checked server path whose parent exists).
   * `existingSize` is the target's current size, or undefined when it does not exist.
   */
  static async open(targetPath: string, existingSize: number | undefined, mode: UploadMode = {}): Promise<AtomicUpload> {
    const tempPath = join(dirname(targetPath), newTempName());
    const resumeAt = mode.resumeAt ?? 0;
    if (resumeAt > 0 && (existingSize === undefined || resumeAt > existingSize)) {
      throw new FsError(554, `Restart offset ${resumeAt} is beyond the end of the file (${existingSize ?? 0} bytes)`);
    }
    const keepOld = existingSize !== undefined && (mode.append || resumeAt > 0);
    let handle: FileHandle | undefined;
    try {
      if (keepOld) {
        await copyFile(targetPath, tempPath, constants.COPYFILE_FICLONE);
        handle = await open(tempPath, 'r+');
        const start = mode.append ? existingSize : resumeAt;
        await handle.truncate(start);
        return new AtomicUpload(handle, tempPath, targetPath, start);
      }
      handle = await open(tempPath, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o640);
      return new AtomicUpload(handle, tempPath, targetPath, 0);
    } catch (err) {
      await handle?.close().catch(() => undefined);
      await rm(tempPath, { force: true });
      throw err;
    }
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.writeAll([chunk]).then(() => callback(), callback);
  }

  override _writev(chunks: { chunk: Buffer }[], callback: (error?: Error | null) => void): void {
    this.writeAll(chunks.map((c) => c.chunk)).then(() => callback(), callback);
  }

  private async writeAll(buffers: Buffer[]): Promise<void> {
    let total = 0;
    for (const b of buffers) total += b.length;
    let written = 0;
    while (written < total) {
      const { bytesWritten } = await this.handle.writev(sliceBuffers(buffers, written), this.position + written);
      written += bytesWritten;
    }
    this.position += total;
    this.bytesReceived += total;
  }

  override _final(callback: (error?: Error | null) => void): void {
    (async () => {
      await this.beforeCommit?.();
      await this.handle.datasync();
      await this.handle.close();
      await rename(this.tempPath, this.targetPath);
      this.committed = true;
    })().then(() => callback(), callback);
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    if (this.committed) return callback(error);
    this.handle
      .close()
      .catch(() => undefined)
      .then(() => rm(this.tempPath, { force: true }))
      .then(
        () => callback(error),
        () => callback(error),
      );
  }
}

function sliceBuffers(buffers: Buffer[], skip: number): Buffer[] {
  if (skip === 0) return buffers;
  const out: Buffer[] = [];
  for (const b of buffers) {
    if (skip >= b.length) {
      skip -= b.length;
      continue;
    }
    out.push(skip > 0 ? b.subarray(skip) : b);
    skip = 0;
  }
  return out;
}
