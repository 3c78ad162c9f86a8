import { StorageError, type StorageErrorKind } from '../StorageBackend.js';

/**
 * Turning AWS SDK errors into StorageErrors. The SDK throws service errors with a `name`
 * (NoSuchKey, AccessDenied...) and `$metadata.httpStatusCode`, and network failures as
 * Node errors with a `code` (ECONNREFUSED...) or a TimeoutError/AbortError. Clients only
 * ever see their own path: endpoint, bucket and keys stay in `cause` for the log.
 */

/** The parts of an SDK error this module reads. */
interface SdkErrorShape {
  name?: string;
  code?: string;
  Code?: string;
  $metadata?: { httpStatusCode?: number };
}

/** Node error codes that mean "the endpoint could not be reached or stopped answering". */
const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ETIMEDOUT',
  'EPIPE',
  'ECONNABORTED',
]);

/** The HTTP status of a service error (undefined for network failures). */
export function s3Status(err: unknown): number | undefined {
  return (err as SdkErrorShape | undefined)?.$metadata?.httpStatusCode;
}

/** The S3 error code or Node error code, whichever the error carries. */
export function s3Code(err: unknown): string {
  const e = err as SdkErrorShape | undefined;
  return e?.Code ?? e?.code ?? e?.name ?? 'Error';
}

/** True when the object/bucket does not exist (HeadObject answers a bare 404 "NotFound"). */
export function isNotFound(err: unknown): boolean {
  const code = s3Code(err);
  return code === 'NoSuchKey' || code === 'NotFound' || (s3Status(err) === 404 && code !== 'NoSuchBucket');
}

/** True when the endpoint was unreachable, timed out, or the request was aborted for time. */
export function isNetworkError(err: unknown): boolean {
  const e = err as SdkErrorShape | undefined;
  if (e?.code !== undefined && NETWORK_CODES.has(e.code)) return true;
  const name = e?.name;
  return name === 'TimeoutError' || name === 'AbortError' || name === 'RequestTimeout';
}

/** The StorageError kind for an SDK error. */
export function storageKindOf(err: unknown): StorageErrorKind {
  if (err instanceof StorageError) return err.kind;
  const code = s3Code(err);
  const status = s3Status(err);
  if (code === 'NoSuchBucket') return 'unavailable';
  if (isNotFound(err)) return 'not-found';
  if (code === 'AccessDenied' || code === 'InvalidAccessKeyId' || code === 'SignatureDoesNotMatch') {
    return 'unavailable';
  }
  if (status === 403) return 'unavailable';
  if (code === 'EntityTooLarge' || code === 'QuotaExceeded') return 'no-space';
  if (code === 'PreconditionFailed' || status === 412) return 'busy';
  if (code === 'SlowDown' || status === 503) return 'busy';
  if (isNetworkError(err)) return 'unavailable';
  if (code === 'CredentialsProviderError') return 'unavailable';
  return 'io';
}

/** A client-safe message for an SDK error about `clientPath`. */
function messageFor(kind: StorageErrorKind, clientPath: string): string {
  switch (kind) {
    case 'not-found':
      return `${clientPath}: No such file or directory`;
    case 'unavailable':
      return `${clientPath}: Storage is unavailable, try again later`;
    case 'busy':
      return `${clientPath}: Storage is busy (the file changed or the service is overloaded), try again`;
    case 'no-space':
      return `${clientPath}: Insufficient storage space`;
    default:
      return `${clientPath}: Storage error`;
  }
}

/**
 * Wraps any error from an S3 call about `clientPath` into a StorageError (a StorageError
 * passes through unchanged).
 */
export function toStorageError(err: unknown, clientPath: string): StorageError {
  if (err instanceof StorageError) return err;
  const kind = storageKindOf(err);
  return new StorageError(kind, messageFor(kind, clientPath), { cause: err });
}
