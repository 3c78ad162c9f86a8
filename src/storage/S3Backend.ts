import {
  AbortMultipartUploadCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import {
  StorageError,
  type StorageBackend,
  type StorageCapabilities,
  type UserStorage,
} from './StorageBackend.js';
import { isNetworkError, isNotFound, s3Code, s3Status, toStorageError } from './s3/s3Errors.js';
import { S3UserStorage } from './s3/S3UserStorage.js';

/** How to reach the bucket and how uploads are cut. */
export interface S3BackendOptions {
  bucket: string;
  /** Key prefix without leading/trailing slashes ('' for the bucket's top). */
  prefix: string;
  /** An S3-compatible endpoint (Ceph RGW, MinIO...); path-style addressing is used then. */
  endpoint?: string;
  region?: string;
  /** Bytes per multipart part (default 8 MiB, at least 5 MiB). */
  partSizeBytes?: number;
  /** Parts of one upload in flight at once (default 4). */
  queueSize?: number;
  /** Explicit credentials; otherwise the SDK's default chain (AWS_ACCESS_KEY_ID... env, profile). */
  credentials?: { accessKeyId: string; secretAccessKey: string };
  /** Time to open a TCP connection (default 10 s). */
  connectionTimeoutMs?: number;
  /** Time for one request until the response headers (default 15 s). */
  requestTimeoutMs?: number;
  /** Time a socket may sit idle mid-body, e.g. a stalled download (default 30 s). */
  socketTimeoutMs?: number;
  /** Time an upload request may move no byte (default 10 s); uploads have no total limit. */
  uploadIdleTimeoutMs?: number;
  /** Attempts per request, the first included (default 3). */
  maxAttempts?: number;
  /** Time start() waits for the bucket check (default 25 s). */
  startTimeoutMs?: number;
  /** Rename copies in parts above this size (default 5 GiB, S3's CopyObject limit; for tests). */
  singleCopyLimit?: number;
  /** Bytes per part of such a copy (default 512 MiB). */
  copyPartBytes?: number;
}

const MIB = 1024 * 1024;
/** S3's smallest multipart part (except the last). */
const MIN_PART_SIZE = 5 * MIB;

/**
 * Parses the `--storage` value `s3://BUCKET[/PREFIX]`. Throws an Error whose one-line
 * message names the flag and the accepted form.
 */
export function parseS3Url(url: string): { bucket: string; prefix: string } {
  const fail = (why: string): never => {
    throw new Error(`--storage ${JSON.stringify(url)}: ${why}; expected s3://BUCKET[/PREFIX]`);
  };
  const match = /^s3:\/\/([^/]*)(?:\/(.*))?$/.exec(url);
  if (match === null) return fail('not an s3:// URL');
  const bucket = match[1] ?? '';
  if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(bucket)) {
    return fail('the bucket name must be 3-63 characters of a-z, 0-9, "." and "-"');
  }
  const prefix = (match[2] ?? '').replace(/\/+$/, '');
  if (prefix !== '') {
    for (const segment of prefix.split('/')) {
      if (segment === '' || segment === '.' || segment === '..' || /[\0-\x1f\x7f]/.test(segment)) {
        return fail('the prefix must be names separated by single slashes, without "." or ".."');
      }
    }
  }
  return { bucket, prefix };
}

/**
 * Storage in an S3 bucket (AWS or a compatible service such as Ceph RGW): each user's
 * home is the key prefix `PREFIX/<user>/`; see S3UserStorage for how directories work and
 * S3WriteSink for uploads (visible only when complete; memory per upload about
 * partSizeBytes × (queueSize + 1), 40 MiB with the defaults).
 *
 * Every request is bounded: 10 s to connect, 15 s to the response headers, 30 s of idle
 * socket mid-body (a download whose reader stalls that long fails), 3 attempts; upload
 * parts instead fail after 10 s without a byte moving. So when S3 goes away mid-session
 * an operation fails with a StorageError ('unavailable' or 'io') instead of hanging
 * (measured against a black hole: a request fails in about 30 s, an upload in about 40 s).
 */
export class S3Backend implements StorageBackend {
  readonly capabilities: StorageCapabilities = {
    atomicReplace: true,
    resume: false,
    append: false,
    chmod: false,
    renameDirectory: false,
    setModificationTime: false,
  };
  readonly description: string;
  /** Metadata requests and downloads. */
  private readonly client: S3Client;
  /** Upload parts (see the constructor). */
  private readonly uploadClient: S3Client;
  /** The prefix as a key prefix ('' or 'PREFIX/'). */
  private readonly prefixKey: string;
  private readonly partSizeBytes: number;
  private readonly queueSize: number;
  private readonly where: string;

  constructor(private readonly options: S3BackendOptions) {
    const region = options.region ?? 'us-east-1';
    this.partSizeBytes = options.partSizeBytes ?? 8 * MIB;
    this.queueSize = options.queueSize ?? 4;
    if (!Number.isSafeInteger(this.partSizeBytes) || this.partSizeBytes < MIN_PART_SIZE) {
      throw new Error(`S3 part size must be at least 5 MiB (got ${options.partSizeBytes})`);
    }
    if (!Number.isSafeInteger(this.queueSize) || this.queueSize < 1) {
      throw new Error(`S3 queue size must be at least 1 (got ${options.queueSize})`);
    }
    const prefix = options.prefix.replace(/^\/+|\/+$/g, '');
    this.prefixKey = prefix === '' ? '' : `${prefix}/`;
    this.where = options.endpoint ?? `AWS S3 (${region})`;
    this.description = `S3 bucket "${options.bucket}"${prefix === '' ? '' : ` prefix "${prefix}/"`} at ${this.where}`;
    const connectionTimeout = options.connectionTimeoutMs ?? 10_000;
    const common = {
      region,
      ...(options.endpoint !== undefined ? { endpoint: options.endpoint, forcePathStyle: true } : {}),
      ...(options.credentials !== undefined ? { credentials: options.credentials } : {}),
      maxAttempts: options.maxAttempts ?? 3,
      // Checksums only where S3 requires them: S3-compatible services (Ceph RGW before
      // Squid, older MinIO) reject the newer default trailing CRC32 checksums.
      requestChecksumCalculation: 'WHEN_REQUIRED' as const,
      responseChecksumValidation: 'WHEN_REQUIRED' as const,
    };
    this.client = new S3Client({
      ...common,
      requestHandler: {
        connectionTimeout,
        requestTimeout: options.requestTimeoutMs ?? 15_000,
        throwOnRequestTimeout: true,
        socketTimeout: options.socketTimeoutMs ?? 30_000,
      },
    });
    // Upload parts carry up to partSizeBytes each, which on a slow link takes longer than
    // any fixed request timeout; they are bounded by idle time instead (no byte moving).
    this.uploadClient = new S3Client({
      ...common,
      requestHandler: { connectionTimeout, socketTimeout: options.uploadIdleTimeoutMs ?? 10_000 },
    });
  }

  /**
   * Checks the bucket answers (HeadBucket, at most startTimeoutMs) and aborts every
   * multipart upload left under the prefix by a crashed server.
   */
  async start(): Promise<void> {
    const { bucket } = this.options;
    try {
      await this.client.send(new HeadBucketCommand({ Bucket: bucket }), {
        abortSignal: AbortSignal.timeout(this.options.startTimeoutMs ?? 25_000),
      });
    } catch (err) {
      throw new Error(this.startProblem(err), { cause: err });
    }
    try {
      await this.abortLeftoverUploads();
    } catch (err) {
      throw new Error(
        `S3 bucket "${bucket}" at ${this.where}: could not remove unfinished uploads (${s3Code(err)}); check the credentials allow ListBucketMultipartUploads and AbortMultipartUpload`,
        { cause: err },
      );
    }
  }

  /** One line naming what went wrong at start and what to do. */
  private startProblem(err: unknown): string {
    const { bucket } = this.options;
    const code = s3Code(err);
    const status = s3Status(err);
    if (code === 'NoSuchBucket' || status === 404 || code === 'NotFound') {
      return `S3 bucket "${bucket}" does not exist at ${this.where}; create it or fix --storage`;
    }
    if (status === 403 || status === 401 || code === 'AccessDenied' || code === 'InvalidAccessKeyId' || code === 'SignatureDoesNotMatch') {
      const why = code === 'Unknown' || code === 'Error' ? `HTTP ${status}` : code; // HEAD answers have no error body
      return `S3 denied access to bucket "${bucket}" at ${this.where} (${why}); check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY and the bucket's policy`;
    }
    if (code === 'CredentialsProviderError') {
      return `no S3 credentials found for bucket "${bucket}"; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE)`;
    }
    if (isNetworkError(err)) {
      return `S3 endpoint ${this.where} is unreachable (${code}); start the S3 service or fix --s3-endpoint`;
    }
    return `S3 bucket "${bucket}" at ${this.where} failed its check (${code}${status !== undefined ? `, HTTP ${status}` : ''}); fix the S3 settings`;
  }

  /** Aborts every multipart upload whose key lies under the prefix (paged). */
  private async abortLeftoverUploads(): Promise<void> {
    const { bucket } = this.options;
    let keyMarker: string | undefined;
    let uploadIdMarker: string | undefined;
    for (;;) {
      const page = await this.client.send(
        new ListMultipartUploadsCommand({
          Bucket: bucket,
          Prefix: this.prefixKey,
          KeyMarker: keyMarker,
          UploadIdMarker: uploadIdMarker,
        }),
      );
      for (const upload of page.Uploads ?? []) {
        if (upload.Key === undefined || upload.UploadId === undefined) continue;
        await this.client
          .send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: upload.Key, UploadId: upload.UploadId }))
          .catch((err: unknown) => {
            if (!isNotFound(err) && s3Code(err) !== 'NoSuchUpload') throw err;
          });
      }
      if (page.IsTruncated !== true) return;
      keyMarker = page.NextKeyMarker;
      uploadIdMarker = page.NextUploadIdMarker;
      if (keyMarker === undefined) return;
    }
  }

  homeLocation(user: string): string {
    return `s3://${this.options.bucket}/${this.prefixKey}${user}/ at ${this.where}`;
  }

  /** The user's storage under `PREFIX/<user>/`; creates the home marker if missing. */
  async openHome(user: string): Promise<UserStorage> {
    if (user === '' || user === '.' || user === '..' || user.includes('/') || /[\0-\x1f\x7f]/.test(user)) {
      throw new StorageError('invalid-name', `user name ${JSON.stringify(user)} cannot be a storage folder`);
    }
    const root = `${this.prefixKey}${user}/`;
    try {
      await this.client.send(new HeadObjectCommand({ Bucket: this.options.bucket, Key: root }));
    } catch (err) {
      if (!isNotFound(err)) throw homeUnavailable(err);
      try {
        await this.client.send(new PutObjectCommand({ Bucket: this.options.bucket, Key: root, Body: new Uint8Array(0), ContentLength: 0 }));
      } catch (putErr) {
        throw homeUnavailable(putErr);
      }
    }
    return new S3UserStorage({
      client: this.client,
      uploadClient: this.uploadClient,
      bucket: this.options.bucket,
      root,
      partSizeBytes: this.partSizeBytes,
      queueSize: this.queueSize,
      singleCopyLimit: this.options.singleCopyLimit,
      copyPartBytes: this.options.copyPartBytes,
    });
  }

  /** Closes the SDK's connections. */
  async close(): Promise<void> {
    this.client.destroy();
    this.uploadClient.destroy();
  }
}

/** A home that S3 could not check or create: the login is refused as unavailable (cause kept for the log). */
function homeUnavailable(err: unknown): StorageError {
  return new StorageError('unavailable', `Home folder unavailable (${toStorageError(err, '/').kind})`, { cause: err });
}
