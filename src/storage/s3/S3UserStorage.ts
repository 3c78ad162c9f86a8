import { PassThrough, Readable } from 'node:stream';
import {
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  type HeadObjectCommandOutput,
  type S3Client,
} from '@aws-sdk/client-s3';
import {
  StorageError,
  type ReadHandle,
  type StorageEntry,
  type StorageUsage,
  type UserStorage,
  type WriteMode,
  type WriteSink,
} from '../StorageBackend.js';
import { copyObject } from './copyObject.js';
import { isNotFound, toStorageError } from './s3Errors.js';
import { S3WriteSink } from './S3WriteSink.js';
import { isReservedName } from '../reservedNames.js';

/** What one user's storage needs from the backend. */
export interface S3UserStorageOptions {
  client: S3Client;
  /** The client for upload parts (idle-bounded rather than time-bounded). */
  uploadClient: S3Client;
  bucket: string;
  /** The user's root key, ending in '/' (`PREFIX/alice/`). */
  root: string;
  partSizeBytes: number;
  queueSize: number;
  /** Above this size rename copies in parts (default: S3's 5 GiB CopyObject limit). */
  singleCopyLimit?: number;
  /** Bytes per part of such a copy. */
  copyPartBytes?: number;
}

/**
 * One user's view of an S3 prefix: client path `/a/b.txt` is key `ROOT` + `a/b.txt`.
 *
 * S3 has no directories, so a directory is a key prefix: it exists when a zero-byte marker
 * object `ROOT/dir/` exists (mkdir creates one) or any key lies below it (objects written
 * by other tools). That keeps mkdir/rmdir/stat behaving as on disk: an empty directory
 * survives, rmdir refuses a non-empty one, mkdir needs its parent. Directory mtimes are
 * the marker's; a directory known only from its keys reports the time of the listing.
 */
export class S3UserStorage implements UserStorage {
  constructor(private readonly options: S3UserStorageOptions) {}

  // ---- keys ----

  /** Checks a client path is absolute and normalised (the core has done so already). */
  private check(path: string): void {
    if (!path.startsWith('/') || path.includes('\0') || (path !== '/' && path.endsWith('/'))) {
      throw new StorageError('invalid-name', `${path}: Invalid path`);
    }
    for (const segment of path.slice(1).split('/')) {
      if (path !== '/' && (segment === '' || segment === '.' || segment === '..')) {
        throw new StorageError('invalid-name', `${path}: Invalid path`);
      }
    }
  }

  /** The object key of a file. */
  private fileKey(path: string): string {
    return this.options.root + path.slice(1);
  }

  /** The marker key / listing prefix of a directory (the root itself for '/'). */
  private dirKey(path: string): string {
    return path === '/' ? this.options.root : `${this.options.root}${path.slice(1)}/`;
  }

  private parentOf(path: string): string {
    const i = path.lastIndexOf('/');
    return i <= 0 ? '/' : path.slice(0, i);
  }

  private nameOf(path: string): string {
    return path === '/' ? '/' : path.slice(path.lastIndexOf('/') + 1);
  }

  // ---- lookups ----

  /** HeadObject of a file key, or undefined when there is none. */
  private async headFile(path: string): Promise<HeadObjectCommandOutput | undefined> {
    try {
      return await this.options.client.send(
        new HeadObjectCommand({ Bucket: this.options.bucket, Key: this.fileKey(path) }),
      );
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  /**
   * The directory at `path` (marker time as mtime), or undefined when neither a marker
   * nor any key below it exists.
   */
  private async findDirectory(path: string): Promise<StorageEntry | undefined> {
    const prefix = this.dirKey(path);
    const answer = await this.options.client.send(
      new ListObjectsV2Command({ Bucket: this.options.bucket, Prefix: prefix, MaxKeys: 1 }),
    );
    const first = answer.Contents?.[0];
    if (first === undefined && (answer.CommonPrefixes?.length ?? 0) === 0) return undefined;
    const mtime = first?.Key === prefix && first.LastModified !== undefined ? first.LastModified : new Date();
    return { name: this.nameOf(path), type: 'directory', size: 0, mtime };
  }

  /** The entry at `path`, or undefined. A directory wins over a same-named file (only other tools make both). */
  private async lookup(path: string): Promise<StorageEntry | undefined> {
    if (path === '/') {
      return (await this.findDirectory('/')) ?? { name: '/', type: 'directory', size: 0, mtime: new Date() };
    }
    const [head, dir] = await Promise.all([this.headFile(path), this.findDirectory(path)]);
    if (dir !== undefined) return dir;
    if (head !== undefined) {
      return { name: this.nameOf(path), type: 'file', size: head.ContentLength ?? 0, mtime: head.LastModified ?? new Date() };
    }
    return undefined;
  }

  /** Throws unless `path` is an existing directory. */
  private async requireDirectory(path: string): Promise<void> {
    const entry = await this.lookup(path);
    if (entry === undefined) throw new StorageError('not-found', `${path}: No such file or directory`);
    if (entry.type !== 'directory') throw new StorageError('not-a-directory', `${path}: Not a directory`);
  }

  // ---- UserStorage ----

  async stat(path: string): Promise<StorageEntry> {
    this.check(path);
    try {
      const entry = await this.lookup(path);
      if (entry === undefined) throw new StorageError('not-found', `${path}: No such file or directory`);
      return entry;
    } catch (err) {
      throw toStorageError(err, path);
    }
  }

  /** Pages through ListObjectsV2 (1,000 keys a page) until the listing is complete. */
  async list(path: string): Promise<StorageEntry[]> {
    this.check(path);
    try {
      const prefix = this.dirKey(path);
      const byName = new Map<string, StorageEntry>();
      let sawAnything = false;
      let token: string | undefined;
      const now = new Date();
      do {
        const page = await this.options.client.send(
          new ListObjectsV2Command({
            Bucket: this.options.bucket,
            Prefix: prefix,
            Delimiter: '/',
            ContinuationToken: token,
          }),
        );
        for (const object of page.Contents ?? []) {
          sawAnything = true;
          const key = object.Key ?? '';
          if (key === prefix) continue; // the directory's own marker
          const name = key.slice(prefix.length);
          if (name === '' || byName.has(name)) continue;
          byName.set(name, { name, type: 'file', size: object.Size ?? 0, mtime: object.LastModified ?? now });
        }
        for (const common of page.CommonPrefixes ?? []) {
          sawAnything = true;
          const name = (common.Prefix ?? '').slice(prefix.length, -1);
          if (name === '') continue;
          byName.set(name, { name, type: 'directory', size: 0, mtime: now });
        }
        token = page.IsTruncated === true ? page.NextContinuationToken : undefined;
      } while (token !== undefined);
      if (!sawAnything && path !== '/') {
        if ((await this.headFile(path)) !== undefined) {
          throw new StorageError('not-a-directory', `${path}: Not a directory`);
        }
        throw new StorageError('not-found', `${path}: No such file or directory`);
      }
      return [...byName.values()];
    } catch (err) {
      throw toStorageError(err, path);
    }
  }

  /** One flat listing of every key under the home (1,000 a page): objects not ending in "/" are files. */
  async measureUsage(): Promise<StorageUsage> {
    const usage: StorageUsage = { bytes: 0, files: 0 };
    try {
      const prefix = this.dirKey('/');
      let token: string | undefined;
      do {
        const page = await this.options.client.send(
          new ListObjectsV2Command({ Bucket: this.options.bucket, Prefix: prefix, ContinuationToken: token }),
        );
        for (const object of page.Contents ?? []) {
          const key = object.Key ?? '';
          if (key.endsWith('/') || key.split('/').some(isReservedName)) continue;
          usage.bytes += object.Size ?? 0;
          usage.files += 1;
        }
        token = page.IsTruncated === true ? page.NextContinuationToken : undefined;
      } while (token !== undefined);
      return usage;
    } catch (err) {
      throw toStorageError(err, '/');
    }
  }

  async openRead(path: string, options: { offset?: number; length?: number } = {}): Promise<ReadHandle> {
    this.check(path);
    const offset = options.offset ?? 0;
    try {
      const head = path === '/' ? undefined : await this.headFile(path);
      if (head === undefined) {
        if ((await this.lookup(path)) !== undefined) {
          throw new StorageError('is-a-directory', `${path}: Is a directory`);
        }
        throw new StorageError('not-found', `${path}: No such file or directory`);
      }
      const total = head.ContentLength ?? 0;
      if (!Number.isSafeInteger(offset) || offset < 0 || offset > total) {
        throw new StorageError('bad-offset', `${path}: Offset ${offset} is beyond the end of the file (${total} bytes)`);
      }
      const size = Math.min(total - offset, options.length ?? Number.MAX_SAFE_INTEGER);
      if (size <= 0) return emptyHandle(total);
      const answer = await this.options.client.send(
        new GetObjectCommand({
          Bucket: this.options.bucket,
          Key: this.fileKey(path),
          Range: `bytes=${offset}-${offset + size - 1}`,
          // A replace between HEAD and GET must fail, not mix two versions' sizes.
          IfMatch: head.ETag,
        }),
      );
      const body = answer.Body;
      if (!(body instanceof Readable)) throw new StorageError('io', `${path}: Storage error`);
      return bodyHandle(body, size, total, path);
    } catch (err) {
      throw toStorageError(err, path);
    }
  }

  async openWrite(path: string, mode: WriteMode = {}): Promise<WriteSink> {
    this.check(path);
    if (mode.append === true) {
      throw new StorageError('unsupported', `${path}: Appending is not supported on S3 storage; upload the whole file`);
    }
    if (mode.resumeAt !== undefined && mode.resumeAt !== 0) {
      throw new StorageError('unsupported', `${path}: Resuming an upload is not supported on S3 storage; upload the whole file`);
    }
    if (path === '/') throw new StorageError('is-a-directory', `${path}: Is a directory`);
    try {
      await this.requireDirectory(this.parentOf(path));
      if ((await this.findDirectory(path)) !== undefined) {
        throw new StorageError('is-a-directory', `${path}: Is a directory`);
      }
    } catch (err) {
      throw toStorageError(err, path);
    }
    return new S3WriteSink({
      client: this.options.uploadClient,
      bucket: this.options.bucket,
      key: this.fileKey(path),
      clientPath: path,
      partSizeBytes: this.options.partSizeBytes,
      queueSize: this.options.queueSize,
    });
  }

  async mkdir(path: string): Promise<void> {
    this.check(path);
    try {
      if (path === '/') throw new StorageError('exists', `${path}: Already exists`);
      await this.requireDirectory(this.parentOf(path));
      if ((await this.lookup(path)) !== undefined) throw new StorageError('exists', `${path}: Already exists`);
      await this.options.client.send(
        new PutObjectCommand({ Bucket: this.options.bucket, Key: this.dirKey(path), Body: new Uint8Array(0), ContentLength: 0 }),
      );
    } catch (err) {
      throw toStorageError(err, path);
    }
  }

  async rmdir(path: string): Promise<void> {
    this.check(path);
    try {
      if (path === '/') throw new StorageError('denied', `${path}: The home directory cannot be removed`);
      const entry = await this.lookup(path);
      if (entry === undefined) throw new StorageError('not-found', `${path}: No such file or directory`);
      if (entry.type !== 'directory') throw new StorageError('not-a-directory', `${path}: Not a directory`);
      const marker = this.dirKey(path);
      const answer = await this.options.client.send(
        new ListObjectsV2Command({ Bucket: this.options.bucket, Prefix: marker, MaxKeys: 2 }),
      );
      if ((answer.Contents ?? []).some((object) => object.Key !== marker)) {
        throw new StorageError('not-empty', `${path}: Directory not empty`);
      }
      await this.options.client.send(new DeleteObjectCommand({ Bucket: this.options.bucket, Key: marker }));
    } catch (err) {
      throw toStorageError(err, path);
    }
  }

  async delete(path: string): Promise<void> {
    this.check(path);
    try {
      const head = path === '/' ? undefined : await this.headFile(path);
      if (head === undefined) {
        if ((await this.lookup(path)) !== undefined) throw new StorageError('is-a-directory', `${path}: Is a directory`);
        throw new StorageError('not-found', `${path}: No such file or directory`);
      }
      await this.options.client.send(
        new DeleteObjectCommand({ Bucket: this.options.bucket, Key: this.fileKey(path) }),
      );
    } catch (err) {
      throw toStorageError(err, path);
    }
  }

  /**
   * Renames a file: a server-side copy (UploadPartCopy above 5 GiB) then a delete of the
   * source. Not atomic: a crash between the two leaves both names. Directories would mean
   * copying every key below them, so they are refused.
   */
  async rename(from: string, to: string): Promise<void> {
    this.check(from);
    this.check(to);
    try {
      const source = await this.lookup(from);
      if (source === undefined) throw new StorageError('not-found', `${from}: No such file or directory`);
      if (source.type === 'directory') {
        throw new StorageError('unsupported', `${from}: Renaming a directory is not supported on S3 storage`);
      }
      if (from === to) return;
      await this.requireDirectory(this.parentOf(to));
      if ((await this.findDirectory(to)) !== undefined) throw new StorageError('is-a-directory', `${to}: Is a directory`);
      const head = await this.headFile(from);
      if (head === undefined) throw new StorageError('not-found', `${from}: No such file or directory`);
      await copyObject({
        client: this.options.client,
        bucket: this.options.bucket,
        from: this.fileKey(from),
        to: this.fileKey(to),
        size: head.ContentLength ?? 0,
        etag: head.ETag,
        singleCopyLimit: this.options.singleCopyLimit,
        copyPartBytes: this.options.copyPartBytes,
      });
      await this.options.client.send(
        new DeleteObjectCommand({ Bucket: this.options.bucket, Key: this.fileKey(from) }),
      );
    } catch (err) {
      throw toStorageError(err, from);
    }
  }

  async chmod(path: string, _mode: number): Promise<void> {
    throw new StorageError('unsupported', `${path}: Permission bits are not supported on S3 storage`);
  }

  /** S3 sets LastModified itself: an object's time cannot be chosen. */
  async setModificationTime(path: string, _mtime: Date): Promise<void> {
    throw new StorageError('unsupported', `${path}: Setting modification times is not supported on S3 storage`);
  }
}

/** A handle for zero bytes (an empty file or an offset at its end): no GET needed. */
function emptyHandle(fileSize: number): ReadHandle {
  return { size: 0, fileSize, stream: () => Readable.from([]), close: async () => undefined };
}

/**
 * A handle over a GetObject body. Errors of the body (connection reset, socket timeout)
 * reach the reader as a StorageError about the client path, never as a raw SDK error.
 */
function bodyHandle(body: Readable, size: number, fileSize: number, path: string): ReadHandle {
  let out: PassThrough | undefined;
  return {
    size,
    fileSize,
    stream() {
      if (out !== undefined) throw new StorageError('io', `${path}: already being read`);
      const pass = new PassThrough();
      out = pass;
      body.on('error', (err) => pass.destroy(toStorageError(err, path)));
      body.pipe(pass);
      return pass;
    },
    async close() {
      if (!body.destroyed) body.destroy();
    },
  };
}
