import { resolve } from 'node:path';
import type { ServerConfig } from '../config/serverConfig.js';
import { LocalBackend } from './LocalBackend.js';
import { parseS3Url, S3Backend } from './S3Backend.js';
import type { StorageBackend } from './StorageBackend.js';

/**
 * The backend `--storage` selects: `s3://BUCKET[/PREFIX]` an S3 bucket (with
 * `--s3-endpoint`, `--s3-region` and `--s3-abandoned-upload-age`; credentials from the
 * SDK's standard chain; its upload journal in `--state-dir`), anything else a local folder.
 */
export function createStorageBackend(
  config: Pick<ServerConfig, 'storage' | 'fsync' | 's3Endpoint' | 's3Region' | 's3AbandonedUploadAge' | 'stateDir'>,
): StorageBackend {
  if (config.storage.startsWith('s3://')) {
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
