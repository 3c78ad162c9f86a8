import { resolve } from 'node:path';
import { LocalBackend } from './LocalBackend.js';
import type { StorageBackend } from './StorageBackend.js';

/** The settings that choose and configure the backend (a subset of the server's configuration). */
export interface StorageSettings {
  /** A folder, or `s3://BUCKET[/PREFIX]`. */
  storage: string;
  /** Local disk: fsync each upload before publishing it (`always`) or not (`never`; still atomic). */
  fsync: 'always' | 'never';
  s3Endpoint?: string | undefined;
  s3Region: string;
  /** Seconds without activity after which another node's multipart upload is aborted (0: never). */
  s3AbandonedUploadAge: number;
  /** The node's own state directory (the S3 upload journal lives there). */
  stateDir: string;
}

/**
 * The backend `--storage` selects: `s3://BUCKET[/PREFIX]` an S3 bucket (with
 * `--s3-endpoint`, `--s3-region` and `--s3-abandoned-upload-age`; credentials from the
 * SDK's standard chain; its upload journal in `--state-dir`), anything else a local folder.
 * The S3 backend (and the AWS SDK under it, ~13 MB of resident memory) is loaded only when
 * it is chosen, so a server on local disk does not carry it.
 */
export async function createStorageBackend(config: StorageSettings): Promise<StorageBackend> {
  if (config.storage.startsWith('s3://')) {
    const { parseS3Url, S3Backend } = await import('./S3Backend.js');
    const { bucket, prefix } = parseS3Url(config.storage);
    return new S3Backend({
      bucket,
      prefix,
      endpoint: config.s3Endpoint,
      region: config.s3Region,
      stateDir: resolve(config.stateDir),
      abandonedUploadAgeMs: config.s3AbandonedUploadAge * 1000,
    });
  }
  return new LocalBackend({ root: config.storage, fsync: config.fsync !== 'never' });
}
