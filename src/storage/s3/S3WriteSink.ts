import { PassThrough, Writable } from 'node:stream';
import type { S3Client } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { StorageError, type WriteSink } from '../StorageBackend.js';
import { toStorageError } from './s3Errors.js';

/** Where one upload goes and how it is cut into parts. */
export interface S3WriteSinkOptions {
  client: S3Client;
  bucket: string;
  key: string;
  /** The client's path, for error messages. */
  clientPath: string;
  /** Bytes per multipart part (at least 5 MiB, S3's minimum). */
  partSizeBytes: number;
  /** Parts uploaded at once. */
  queueSize: number;
}

/** Why an aborted upload's input stream is destroyed: makes lib-storage give up, never complete. */
class UploadAborted extends Error {
  constructor() {
    super('upload aborted');
    this.name = 'UploadAborted';
  }
}

/**
 * An upload to S3 that becomes visible only at commit().
 *
 * lib-storage's Upload completes the object (PutObject for less than one part,
 * CompleteMultipartUpload otherwise) as soon as its input stream ends. So the input is a
 * PassThrough that only commit() ends; the `stream` the caller writes into is a separate
 * Writable that forwards chunks with backpressure and whose finish does nothing. Until
 * commit() no object exists under the key; abort() destroys the input with an error, which
 * makes lib-storage abort the multipart upload (AbortMultipartUpload) instead of
 * completing it, and leaves any previous object untouched. The backend journals the
 * multipart upload while it exists (see S3Backend.journalUploads): if that last call fails
 * (S3 down) or the process dies, the node's next start() aborts the leftover upload.
 *
 * Memory: lib-storage holds one part being filled plus `queueSize` parts in flight, so an
 * upload buffers at most about partSizeBytes × (queueSize + 1) bytes (8 MiB × 5 = 40 MiB
 * with the defaults). The largest object is partSizeBytes × 10,000 parts (80 GB).
 */
export class S3WriteSink implements WriteSink {
  readonly stream: Writable;
  private written = 0;
  private readonly input: PassThrough;
  private readonly done: Promise<unknown>;
  private failure: unknown;
  private state: 'open' | 'committing' | 'committed' | 'aborted' = 'open';
  /** The write callback waiting for the input to drain (failed when the upload fails). */
  private pendingWrite: ((err?: Error | null) => void) | undefined;

  constructor(private readonly options: S3WriteSinkOptions) {
    this.input = new PassThrough();
    const upload = new Upload({
      client: options.client,
      params: { Bucket: options.bucket, Key: options.key, Body: this.input },
      partSize: options.partSizeBytes,
      queueSize: options.queueSize,
      leavePartsOnError: false,
    });
    this.done = upload.done();
    // Observed here so a failure before commit() is never an unhandled rejection.
    this.done.catch((err: unknown) => {
      this.failure = err;
      const cb = this.pendingWrite;
      this.pendingWrite = undefined;
      const error = toStorageError(err, options.clientPath);
      if (cb !== undefined) cb(error);
      else if (this.state === 'open' && !this.stream.destroyed) this.stream.destroy(error);
    });

    this.stream = new Writable({
      write: (chunk: Buffer, _encoding, callback) => {
        if (this.state !== 'open') {
          callback(new StorageError('io', `${options.clientPath}: upload already finished`));
          return;
        }
        if (this.failure !== undefined) {
          callback(toStorageError(this.failure, options.clientPath));
          return;
        }
        this.written += chunk.length;
        if (this.input.write(chunk)) {
          callback();
          return;
        }
        this.pendingWrite = callback;
        this.input.once('drain', () => {
          const cb = this.pendingWrite;
          this.pendingWrite = undefined;
          cb?.();
        });
      },
      // Finishing the caller's stream publishes nothing: only commit() ends the input.
      final: (callback) => callback(),
    });
  }

  get bytesWritten(): number {
    return this.written;
  }

  /** Ends the input and waits for lib-storage to complete the object. */
  async commit(): Promise<void> {
    if (this.state === 'committed') return;
    if (this.state !== 'open') {
      throw new StorageError('io', `${this.options.clientPath}: upload was aborted`);
    }
    this.state = 'committing';
    this.input.end();
    try {
      await this.done;
      this.state = 'committed';
    } catch (err) {
      this.state = 'aborted';
      throw toStorageError(err, this.options.clientPath);
    }
  }

  /**
   * Discards the upload and waits until lib-storage has aborted its multipart upload
   * (or failed to: the node's next start() aborts it then). Idempotent.
   */
  async abort(): Promise<void> {
    if (this.state === 'committed' || this.state === 'committing') return;
    if (this.state === 'aborted') {
      await this.done.catch(() => undefined);
      return;
    }
    this.state = 'aborted';
    this.input.destroy(new UploadAborted());
    if (!this.stream.destroyed) this.stream.destroy();
    await this.done.catch(() => undefined);
  }
}
