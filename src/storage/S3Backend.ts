import { join } from 'node:path';
import {
  AbortMultipartUploadCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListPartsCommand,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import {
  StorageError,
  type StorageBackend,
  type StorageCapabilities,
  type StorageLog,
  type UserStorage,
} from './StorageBackend.js';
import { isNetworkError, isNotFound, s3Code, s3Status, toStorageError } from './s3/s3Errors.js';
import { S3UserStorage } from './s3/S3UserStorage.js';
import { UploadJournal } from './s3/uploadJournal.js';
import { formatDuration } from '../util/duration.js';

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
  /**
   * This node's own state directory: the multipart uploads in flight are journaled in
   * its `s3-uploads/`, so the next start aborts those a crash cut. One per node.
   */
  stateDir: string;
  /**
   * A multipart upload under the prefix that was initiated longer ago than this and had
   * no part uploaded since is abandoned and aborted, whoever started it (default 24 h;
   * 0: never).
   */
  abandonedUploadAgeMs?: number;
  /** How often that sweep runs after the one at start (default: hourly, or the age if shorter, at least a minute). */
  sweepEveryMs?: number;
}

/** Multipart uploads listed per page, and pages per sweep (the rest waits for the next one). */
const SWEEP_PAGE_SIZE = 1000;
const SWEEP_MAX_PAGES = 10;
/** Parts listed per page, and pages per upload (S3 allows 10,000 parts). */
const PARTS_PAGE_SIZE = 1000;
const PARTS_MAX_PAGES = 10;

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
 *
 * Several nodes may share one bucket and prefix. A node only ever aborts uploads that are
 * provably not running: its own cut by a crash (journaled under its state dir, see
 * UploadJournal, aborted at its next start), and any upload under the prefix that has been
 * inactive (no part) for abandonedUploadAgeMs (a node that never came back, an older
 * DFOS), checked at start and then periodically.
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
  private readonly abandonedAgeMs: number;
  /** This node's journal of uploads in flight (opened by start()). */
  private journal: UploadJournal | undefined;
  /** UploadId → journal record of this node's multipart uploads in flight (never swept). */
  private readonly live = new Map<string, string>();
  private log: StorageLog = () => undefined;
  private sweepTimer: NodeJS.Timeout | undefined;
  /** The periodic sweep running now, if any. */
  private sweeping: Promise<void> | undefined;
  /** Aborted by close(): stops a running sweep. */
  private readonly closing = new AbortController();
  /** Where the next sweep goes on when the last one stopped at SWEEP_MAX_PAGES. */
  private sweepFrom: { keyMarker?: string; uploadIdMarker?: string } = {};

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
    this.abandonedAgeMs = options.abandonedUploadAgeMs ?? 24 * 3600_000;
    if (!(this.abandonedAgeMs >= 0)) throw new Error(`S3 abandoned-upload age must be 0 or more (got ${options.abandonedUploadAgeMs})`);
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
    for (const client of [this.client, this.uploadClient]) this.journalUploads(client);
  }

  /**
   * Journals every multipart upload `client` creates (uploads through lib-storage, copies
   * in parts): the record is durable before CreateMultipartUpload returns to its caller,
   * so before the first part; it goes when the upload is completed or aborted (or S3 says
   * it no longer exists). An upload that cannot be journaled is aborted and fails.
   */
  private journalUploads(client: S3Client): void {
    client.middlewareStack.add(
      (next, context) => async (args) => {
        const command = context.commandName;
        const input = args.input as { Key?: string; UploadId?: string };
        if (command === 'CreateMultipartUploadCommand') {
          const result = await next(args);
          const uploadId = (result.output as { UploadId?: string }).UploadId;
          if (uploadId !== undefined && input.Key !== undefined) await this.recordUpload(input.Key, uploadId);
          return result;
        }
        if (command !== 'CompleteMultipartUploadCommand' && command !== 'AbortMultipartUploadCommand') return next(args);
        try {
          const result = await next(args);
          await this.forgetUpload(input.UploadId);
          return result;
        } catch (err) {
          if (isUploadGone(err)) await this.forgetUpload(input.UploadId);
          throw err;
        }
      },
      { step: 'initialize', name: 'dfosUploadJournal' },
    );
  }

  /** Journals a new upload; if that fails, aborts it (it would be invisible to a restart) and throws. */
  private async recordUpload(key: string, uploadId: string): Promise<void> {
    const { bucket } = this.options;
    try {
      if (this.journal === undefined) throw new Error('the S3 backend was not started');
      this.live.set(uploadId, await this.journal.record({ bucket, key, uploadId }));
    } catch (err) {
      await this.client
        .send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId: uploadId }))
        .catch(() => undefined);
      throw new Error(`could not journal an S3 upload in ${this.journal?.dir ?? 'the state directory'} (${s3Code(err)})`, { cause: err });
    }
  }

  /** Drops a finished upload from the journal (nothing when it is not this node's). */
  private async forgetUpload(uploadId: string | undefined): Promise<void> {
    const name = uploadId === undefined ? undefined : this.live.get(uploadId);
    if (uploadId === undefined || name === undefined) return;
    this.live.delete(uploadId);
    await this.journal?.forget(name).catch(() => undefined);
  }

  /**
   * Checks the bucket answers (HeadBucket, at most startTimeoutMs), aborts the uploads
   * this node's journal still lists (cut by a crash), sweeps abandoned uploads, and
   * schedules that sweep to run periodically.
   */
  async start(log?: StorageLog): Promise<void> {
    if (log !== undefined) this.log = log;
    const { bucket } = this.options;
    try {
      await this.client.send(new HeadBucketCommand({ Bucket: bucket }), {
        abortSignal: AbortSignal.timeout(this.options.startTimeoutMs ?? 25_000),
      });
    } catch (err) {
      throw new Error(this.startProblem(err), { cause: err });
    }
    const journalDir = join(this.options.stateDir, 's3-uploads');
    try {
      this.journal = await UploadJournal.open(journalDir);
    } catch (err) {
      throw new Error(`cannot use ${journalDir} for the S3 upload journal (${s3Code(err)}); fix --state-dir`, { cause: err });
    }
    try {
      await this.abortJournaledUploads(this.journal);
      await this.sweepAbandonedUploads();
    } catch (err) {
      throw new Error(
        `S3 bucket "${bucket}" at ${this.where}: could not remove unfinished uploads (${s3Code(err)}); check the credentials allow ListBucketMultipartUploads, ListMultipartUploadParts and AbortMultipartUpload`,
        { cause: err },
      );
    }
    if (this.abandonedAgeMs > 0) {
      const every = this.options.sweepEveryMs ?? Math.min(3600_000, Math.max(60_000, this.abandonedAgeMs));
      this.sweepTimer = setInterval(() => this.sweepInBackground(), every);
      this.sweepTimer.unref();
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

  /**
   * Aborts, by their exact UploadId, the uploads the journal still lists: this node's own,
   * cut by a crash or kill -9. Records of another bucket (the state dir was used with
   * another --storage) are tried too, but their failures are only logged.
   */
  private async abortJournaledUploads(journal: UploadJournal): Promise<void> {
    const { bucket } = this.options;
    let aborted = 0;
    let gone = 0;
    let unreadable = 0;
    for (const { name, entry } of await journal.list()) {
      if (entry === undefined) {
        unreadable += 1;
        await journal.forget(name);
        continue;
      }
      try {
        await this.client.send(new AbortMultipartUploadCommand({ Bucket: entry.bucket, Key: entry.key, UploadId: entry.uploadId }));
        aborted += 1;
      } catch (err) {
        if (isUploadGone(err) || s3Code(err) === 'NoSuchBucket') {
          gone += 1;
        } else if (entry.bucket === bucket) {
          throw err;
        } else {
          this.log('Could not abort an S3 upload of another bucket left in the journal', { bucket: entry.bucket, key: entry.key, code: s3Code(err) }, 'warn');
          continue;
        }
      }
      await journal.forget(name);
    }
    if (aborted + gone + unreadable > 0) {
      // Unreadable records (a write cut by a power loss) are left to the abandoned-upload sweep.
      this.log('Aborted the S3 uploads the previous run left unfinished', { count: aborted, alreadyGone: gone, unreadable, journal: journal.dir });
    }
  }

  /** Runs the sweep from the timer: one at a time, failures logged, stopped by close(). */
  private sweepInBackground(): void {
    if (this.sweeping !== undefined) return;
    this.sweeping = this.sweepAbandonedUploads(this.closing.signal)
      .catch((err: unknown) => {
        if (!this.closing.signal.aborted) this.log('Sweeping abandoned S3 uploads failed; trying again later', { code: s3Code(err) }, 'warn');
      })
      .finally(() => {
        this.sweeping = undefined;
      });
  }

  /**
   * Aborts the multipart uploads under the prefix that are abandoned: initiated before
   * now − abandonedAgeMs and without a part uploaded since (a slow but live upload keeps
   * sending parts, so it is never taken). This node's own uploads in flight are skipped.
   * At most SWEEP_MAX_PAGES pages of uploads per run; the next run goes on from there.
   */
  private async sweepAbandonedUploads(signal?: AbortSignal): Promise<void> {
    if (this.abandonedAgeMs === 0) return;
    const { bucket } = this.options;
    const cutoff = Date.now() - this.abandonedAgeMs;
    const olderThan = formatDuration(this.abandonedAgeMs / 1000);
    let { keyMarker, uploadIdMarker } = this.sweepFrom;
    this.sweepFrom = {};
    for (let pages = 0; ; pages++) {
      if (pages === SWEEP_MAX_PAGES) {
        this.sweepFrom = { keyMarker, uploadIdMarker };
        this.log('More multipart uploads than one sweep lists; the next sweep goes on', { pages, after: keyMarker });
        return;
      }
      const page = await this.client.send(
        new ListMultipartUploadsCommand({
          Bucket: bucket,
          Prefix: this.prefixKey,
          KeyMarker: keyMarker,
          UploadIdMarker: uploadIdMarker,
          MaxUploads: SWEEP_PAGE_SIZE,
        }),
        { abortSignal: signal },
      );
      for (const upload of page.Uploads ?? []) {
        const { Key: key, UploadId: uploadId, Initiated: initiated } = upload;
        if (key === undefined || uploadId === undefined || initiated === undefined) continue;
        if (!key.startsWith(this.prefixKey) || this.live.has(uploadId) || initiated.getTime() >= cutoff) continue;
        const lastPart = await this.lastPartTime(key, uploadId, signal);
        if (lastPart === 'gone' || (lastPart !== undefined && lastPart.getTime() >= cutoff)) continue;
        try {
          await this.client.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId: uploadId }), { abortSignal: signal });
        } catch (err) {
          if (isUploadGone(err)) continue;
          throw err;
        }
        this.log('Aborted an abandoned S3 multipart upload', {
          key,
          initiated: initiated.toISOString(),
          lastPart: lastPart?.toISOString() ?? null,
          inactiveFor: `more than ${olderThan}`,
        });
      }
      if (page.IsTruncated !== true || page.NextKeyMarker === undefined) return;
      keyMarker = page.NextKeyMarker;
      uploadIdMarker = page.NextUploadIdMarker;
    }
  }

  /** When the upload's newest part was uploaded (undefined: no part; 'gone': the upload no longer exists). */
  private async lastPartTime(key: string, uploadId: string, signal?: AbortSignal): Promise<Date | undefined | 'gone'> {
    let newest: Date | undefined;
    let marker: string | undefined;
    for (let pages = 0; pages < PARTS_MAX_PAGES; pages++) {
      let page;
      try {
        page = await this.client.send(
          new ListPartsCommand({ Bucket: this.options.bucket, Key: key, UploadId: uploadId, MaxParts: PARTS_PAGE_SIZE, PartNumberMarker: marker }),
          { abortSignal: signal },
        );
      } catch (err) {
        if (isUploadGone(err)) return 'gone';
        throw err;
      }
      for (const part of page.Parts ?? []) {
        if (part.LastModified !== undefined && (newest === undefined || part.LastModified > newest)) newest = part.LastModified;
      }
      if (page.IsTruncated !== true || page.NextPartNumberMarker === undefined) break;
      marker = page.NextPartNumberMarker;
    }
    return newest;
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

  /** Stops the periodic sweep (waiting for a running one to stop) and closes the SDK's connections. */
  async close(): Promise<void> {
    clearInterval(this.sweepTimer);
    this.closing.abort();
    await this.sweeping;
    this.client.destroy();
    this.uploadClient.destroy();
  }
}

/** True when S3 no longer knows the multipart upload (completed or aborted already). */
function isUploadGone(err: unknown): boolean {
  return s3Code(err) === 'NoSuchUpload' || isNotFound(err);
}

/** A home that S3 could not check or create: the login is refused as unavailable (cause kept for the log). */
function homeUnavailable(err: unknown): StorageError {
  return new StorageError('unavailable', `Home folder unavailable (${toStorageError(err, '/').kind})`, { cause: err });
}
