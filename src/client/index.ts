/**
 * `dfos/client`: the typed DFOS client library.
 *
 * ```ts
 * import { DfosClient, NotFoundError } from 'dfos/client';
 * await using client = await DfosClient.connect({ host: 'ftp.example.com', port: 2121, user: 'acme', password });
 * await client.upload('report.csv', 'reports/report.csv', { onProgress: (p) => console.log(p.bytes) });
 * ```
 */
export {
  DfosClient,
  type DfosConnectOptions,
  type DfosUrlConnectOptions,
  type DownloadFileOptions,
  type DownloadOptions,
  type RemotePreview,
  type TransferResult,
  type UploadOptions,
} from './DfosClient.js';
export {
  AuthError,
  ConnectionError,
  DfosError,
  LocalError,
  NotFoundError,
  PermissionError,
  ProtocolError,
  QuotaError,
  TlsVerificationError,
  UnsupportedError,
  type DfosErrorDetails,
} from './errors.js';
export type { ProgressEvent, ProgressHandler } from './progress.js';
export type { RemoteEntry } from './RemoteEntry.js';
