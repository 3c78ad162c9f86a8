import type { Readable, Writable } from 'node:stream';
import type { Socket } from 'node:net';

/**
 * The storage interface every backend implements (one file per backend: LocalBackend for
 * a disk folder, S3Backend for an S3 bucket). It knows nothing about FTP: paths are
 * normalised absolute client paths below one user's home (`/`, `/docs/a.txt`; the core
 * has already refused `..`, control characters and reserved names), and failures are
 * StorageErrors with a kind, never reply codes.
 */

/** What an entry is: 'other' is a special file on disk (FIFO, socket, device), never transferred. */
export type EntryType = 'file' | 'directory' | 'other';

/** One file or directory as a backend reports it. */
export interface StorageEntry {
  /** The entry's name in its directory ('/' for the home itself). */
  name: string;
  type: EntryType;
  /** Bytes (0 for directories). */
  size: number;
  /** Last modification. */
  mtime: Date;
  /** Permission bits (0o000–0o777), where the backend has them. */
  mode?: number;
}

/**
 * Why a storage operation failed. `invalid-name`: the name itself is not allowed;
 * `invalid-target`: the name is fine but cannot be the target of this change (a directory
 * as an upload target, a directory moved into itself); `invalid-argument`: a missing or
 * malformed argument; `bad-offset`: a restart offset beyond the end of the file;
 * `quota-exceeded`: the user's quota or file-size limit (raised by the core, not backends).
 */
export type StorageErrorKind =
  | 'not-found'
  | 'denied'
  | 'exists'
  | 'not-a-directory'
  | 'is-a-directory'
  | 'not-a-file'
  | 'not-empty'
  | 'invalid-name'
  | 'invalid-target'
  | 'invalid-argument'
  | 'no-space'
  | 'quota-exceeded'
  | 'busy'
  | 'bad-offset'
  | 'unsupported'
  | 'unavailable'
  | 'io';

/**
 * A storage failure safe to show to a client: `message` names only client paths (never a
 * server path, bucket key or endpoint). `cause` keeps the original error for the log.
 */
export class StorageError extends Error {
  constructor(
    readonly kind: StorageErrorKind,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'StorageError';
  }
}

/** What a backend can do, so the protocol layer advertises and answers truthfully. */
export interface StorageCapabilities {
  /** An upload replaces its target only when complete (readers never see a partial file). */
  atomicReplace: boolean;
  /** REST n + STOR (keep the first n bytes, write the rest). */
  resume: boolean;
  /** APPE (add to the end of an existing file). */
  append: boolean;
  /** Permission bits (SITE CHMOD, mode in listings). */
  chmod: boolean;
  /** Renaming a directory (with everything in it). */
  renameDirectory: boolean;
  /** Setting a file's modification time (MFMT, so sync clients keep times). */
  setModificationTime: boolean;
}

/** An open file to read from a byte offset. */
export interface ReadHandle {
  /** Bytes that will be read (from the offset to the end, or up to the requested length). */
  readonly size: number;
  /** The whole file's size (what SIZE and SITE VIEW report). */
  readonly fileSize: number;
  /** The bytes as a stream (consumed at most once). */
  stream(): Readable;
  /**
   * A faster way to send the bytes to a socket, where the backend has one (local disk
   * reuses two buffers with overlapped reads); otherwise use stream().
   */
  sendTo?(socket: Socket): Promise<void>;
  /** Releases the handle (idempotent; also after a failure). */
  close(): Promise<void>;
}

/** An upload in progress: write into `stream`, then commit() or abort(). */
/** The most bytes one WriteSink.copyIn() call takes (one socket read). */
export const COPY_IN_MAX = 64 << 10;

export interface WriteSink {
  /** Where the bytes go; finishing the stream does not publish them. */
  readonly stream: Writable;
  /**
   * Offered by sinks that copy the bytes into memory of their own: takes up to COPY_IN_MAX
   * bytes at once, so a reader may receive every chunk into one reused buffer (no garbage
   * per chunk). Returns whether the next call may follow at once; when false, wait for
   * room(). Throws what the upload failed with (a write error, a limit). The bytes come
   * before anything written to `stream`, which is then only ended.
   */
  copyIn?(bytes: Buffer): boolean;
  /** With copyIn: resolves once copyIn may be called again; rejects with what the upload failed with. */
  room?(): Promise<void>;
  /** Bytes written so far (not counting content kept from the old file). */
  readonly bytesWritten: number;
  /** Publishes the upload (durably) after the stream has finished. */
  commit(): Promise<void>;
  /** Discards the upload: the target stays exactly as it was. Idempotent. */
  abort(): Promise<void>;
}

/** How an upload relates to the existing target. */
export interface WriteMode {
  /** Add to the end of the existing file (or create it). */
  append?: boolean;
  /** Keep the first `resumeAt` bytes of the existing file, write the rest. */
  resumeAt?: number;
}

/** What a user's files take: their total size and how many there are. */
export interface StorageUsage {
  bytes: number;
  files: number;
}

/** One user's view of the storage: their home is `/`. */
export interface UserStorage {
  /** The entry at `path` (following links that stay inside, where the backend has links). */
  stat(path: string): Promise<StorageEntry>;
  /** Entries of the directory at `path`, complete (backends page internally). */
  list(path: string): Promise<StorageEntry[]>;
  /** Opens a regular file for reading from `offset`, at most `length` bytes. */
  openRead(path: string, options?: { offset?: number; length?: number }): Promise<ReadHandle>;
  /** Starts an upload to `path`. */
  openWrite(path: string, mode?: WriteMode): Promise<WriteSink>;
  /** Creates one directory (the parent must exist). */
  mkdir(path: string): Promise<void>;
  /** Removes an empty directory. */
  rmdir(path: string): Promise<void>;
  /** Deletes a file. */
  delete(path: string): Promise<void>;
  /** Renames a file (or a directory, when capabilities.renameDirectory); replaces a target file. */
  rename(from: string, to: string): Promise<void>;
  /** Sets permission bits (when capabilities.chmod). */
  chmod(path: string, mode: number): Promise<void>;
  /** Sets a file's modification time (when capabilities.setModificationTime). */
  setModificationTime(path: string, mtime: Date): Promise<void>;
  /**
   * Measures everything under the home: regular files and their bytes (directories,
   * links, special files and DFOS's own temporaries not counted). Walks the whole home,
   * so it is for the quota's first measurement, not for every upload.
   */
  measureUsage(): Promise<StorageUsage>;
}

/** Where a backend reports what its housekeeping did, for the operator (level 'info' unless said). */
export type StorageLog = (message: string, fields: Record<string, unknown>, level?: 'info' | 'warn') => void;

/** A storage backend: one per server. */
export interface StorageBackend {
  readonly capabilities: StorageCapabilities;
  /** A short description for the startup log line (no secrets). */
  readonly description: string;
  /**
   * Checks the backend is usable and cleans up what a crash left (temporaries, unfinished
   * multipart uploads). Throws an Error whose message is one line naming the problem and
   * the fix. `log` receives what the cleanup did (at start and in later background
   * housekeeping, until close()), for the operator.
   */
  start(log?: StorageLog): Promise<void>;
  /** Where a user's home lives (a folder, a bucket prefix), for operator logs only, never for clients. */
  homeLocation(user: string): string;
  /**
   * The storage of one user, whose home is created if missing. A home that cannot be
   * created or used is a StorageError of kind 'unavailable' (its cause says why).
   */
  openHome(user: string): Promise<UserStorage>;
  /** Stops background work and releases connections. */
  close(): Promise<void>;
}
