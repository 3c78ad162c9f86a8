import type { ServerConfig } from '../config/serverConfig.js';
import { LocalBackend } from './LocalBackend.js';
import type { StorageBackend } from './StorageBackend.js';

/** The backend `--storage` selects: a local folder (the default). */
export function createStorageBackend(config: Pick<ServerConfig, 'storage'>): StorageBackend {
  return new LocalBackend({ root: config.storage });
}
