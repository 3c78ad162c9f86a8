import { randomBytes } from 'node:crypto';
import type { EventEmitter } from 'node:events';
import { createReadStream, createWriteStream, type WriteStream } from 'node:fs';
import { rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { Readable, type Writable } from 'node:stream';
import { finished } from 'node:stream/promises';
import type { ConnectionOptions as TLSConnectionOptions, TLSSocket } from 'node:tls';
import { Client, FTPError } from 'basic-ftp';
import { decodePreview, type PreviewMode } from '../preview/previewFormat.js';
import { CommandQueue } from './commandQueue.js';
import { bufferControlLines } from './controlReplyFix.js';
import { classify550, closedError, recordLocalError, toDfosError, type Operation } from './errorMapping.js';
import { DfosError, LocalError, NotFoundError, PermissionError, ProtocolError, UnsupportedError } from './errors.js';
import { ProgressReporter, type ProgressHandler } from './progress.js';
import { toRemoteEntry, type RemoteEntry } from './RemoteEntry.js';
import { checkDataSockets, checkPeer, loadCa, normalizeFingerprint, tlsOptionsFor, type TlsVerification } from './tls.js';
import { ForwardingSink, UploadCounter } from './transferStreams.js';
import { defaultPort, parseServerUrl, redactUrl } from './url.js';

/** How to reach and log in to a DFOS (or any FTP) server. */
export interface DfosConnectOptions {
  host: string;
  /** Control port; default 21, or 990 with `secure: 'implicit'`. */
  port?: number;
  user: string;
  password: string;
  /**
   * `true`: explicit TLS (AUTH TLS on the normal port, as `ftpes://`); `'implicit'`: TLS from
   * the first byte (as `ftps://`, port 990); default plain FTP. Data connections are then
   * protected too (PROT P) and reuse the control connection's TLS session.
   */
  secure?: boolean | 'implicit';
  /**
   * With `secure`: trust only this CA for the server's certificate (its name is still checked):
   * PEM text, or the path of a PEM file. Default: the system CAs.
   */
  ca?: string | Buffer;
  /**
   * With `secure`: pin the server's certificate by its SHA-256 fingerprint (`AA:BB:…`; colons
   * and case optional). Any certificate with this fingerprint is accepted, whatever its chain
   * or names (a self-signed server); any other is refused.
   */
  fingerprint?: string;
  /** With `secure`: no certificate verification at all (encrypted, but the server is not authenticated). */
  insecure?: boolean;
  /** Passed to `tls.connect` for the control and data connections (e.g. `servername`, `minVersion`). */
  secureOptions?: TLSConnectionOptions;
  /** Timeout for each command and for a stalled transfer, in milliseconds; default 30 000, 0 = none. */
  timeoutMs?: number;
}

/** The options of `DfosClient.connect(url, options)`: what the URL does not say. */
export interface DfosUrlConnectOptions extends Omit<DfosConnectOptions, 'host' | 'port' | 'user' | 'password' | 'secure'> {
  /** Overrides the URL's user. */
  user?: string;
  /** The password, if the URL has none (a password in a URL tends to end up in logs). */
  password?: string;
}

/** Options for upload(). */
export interface UploadOptions {
  onProgress?: ProgressHandler;
  /**
   * Continue an interrupted upload: the remote file's size says how much is there, only the
   * rest of the source is sent and appended (APPE). A missing remote file starts from 0.
   */
  resume?: boolean;
}

/** Options for download() to a Writable. */
export interface DownloadOptions {
  onProgress?: ProgressHandler;
}

/** Options for download() to a local path. */
export interface DownloadFileOptions extends DownloadOptions {
  /**
   * Keep the partial file if the download fails (`.<name>.dfos-part` next to the target)
   * and, on the next call with `resume`, continue from its size (REST + RETR).
   */
  resume?: boolean;
}

/** What a completed upload or download moved. */
export interface TransferResult {
  /** Bytes sent or received by this call. */
  bytes: number;
  /** Where the transfer started in the file: 0, or the resume point. */
  resumedFrom: number;
}

/** A SITE VIEW preview: the first bytes of a remote file. */
export interface RemotePreview {
  /** Exactly the first min(1024, size) bytes of the file. */
  bytes: Buffer;
  /** The size of the whole file. */
  fileSize: number;
  /** True when the file is longer than the preview. */
  truncated: boolean;
  /** How the server sent it: readable text lines or a hex dump. */
  mode: PreviewMode;
}

const DEFAULT_TIMEOUT_MS = 30_000;
const BUFFER_CHUNK = 64 * 1024;

/**
 * Commands about a path that must already exist: when one fails with a 550 that gives no
 * reason (see classify550), a look at the path tells NotFoundError from PermissionError.
 * Not STOR/APPE/MKD/RNTO, whose path is a target that need not exist.
 */
const EXISTING_PATH_VERBS = /^(RETR|REST|SIZE|DELE|RMD|RNFR|LIST|MLSD|NLST|MDTM|SITE VIEW|CWD)\b/;

/** Replies to SITE VIEW from a server without it: 500/502/504, or a 501/202 that says so. */
function isUnsupportedReply(code: number, text: string): boolean {
  if (code === 500 || code === 502 || code === 504) return true;
  return (code === 501 || code === 202) && /unknown|not understood|not implemented|unrecognized|not supported/i.test(text);
}

/** A reply as a value: FTP error replies (≥ 400) are returned, not thrown; anything else is thrown. */
async function replyOf(send: () => Promise<{ code: number; message: string }>): Promise<{ code: number; message: string }> {
  try {
    return await send();
  } catch (err) {
    if (err instanceof FTPError) return { code: err.code, message: err.message };
    throw err;
  }
}

function isMissing(err: unknown): boolean {
  return (err as NodeJS.ErrnoException | undefined)?.code === 'ENOENT';
}

/** Size of a local file, or 0 if there is none. */
async function localSizeOrZero(path: string): Promise<number> {
  try {
    return (await stat(path)).size;
  } catch (err) {
    if (isMissing(err)) return 0;
    throw err;
  }
}

function waitOpen(stream: EventEmitter): Promise<void> {
  return new Promise((resolveOpen, reject) => {
    stream.once('ready', () => {
      stream.off('error', reject);
      resolveOpen();
    });
    stream.once('error', reject);
  });
}

/** Resolves once the stream has released its file descriptor (or never had one). */
async function waitClosed(stream: WriteStream): Promise<void> {
  if (stream.closed) return;
  await new Promise<void>((done) => stream.once('close', () => done()));
}

/**
 * A DFOS client: typed, one command at a time (concurrent calls are queued), every failure
 * a DfosError, exact SITE VIEW previews.
 *
 * ```ts
 * await using client = await DfosClient.connect({ host, port, user, password });
 * await client.upload('report.csv', 'reports/report.csv');
 * ```
 *
 * If the connection was lost between calls (server idle timeout, network), the next call
 * reconnects with the same options; a call interrupted by the loss fails with ConnectionError.
 * After close(), every call fails with ConnectionError.
 */
export class DfosClient implements AsyncDisposable {
  private readonly ftp: Client;
  private readonly queue = new CommandQueue();
  private userClosed = false;
  /** The server's host, as given to connect(). */
  readonly host: string;
  /** The server's control port. */
  readonly port: number;
  /** The user logged in. */
  readonly user: string;

  private constructor(
    private readonly options: DfosConnectOptions,
    private readonly verification: TlsVerification,
    private readonly tlsOptions: TLSConnectionOptions,
  ) {
    this.host = options.host;
    this.port = options.port ?? defaultPort(options.secure);
    this.user = options.user;
    this.ftp = new Client(options.timeoutMs ?? DEFAULT_TIMEOUT_MS);
    bufferControlLines(this.ftp.ftp);
    checkDataSockets(this.ftp.ftp, verification);
  }

  /**
   * Connects, logs in and prepares the session (binary mode, UTF-8, MLSD if offered).
   *
   * With a URL: `ftp://user@host[:port]` (plain), `ftpes://…` (explicit TLS, port 21) or
   * `ftps://…` (implicit TLS, port 990); the password from the URL or `options.password`.
   * A server certificate that fails verification is a TlsVerificationError.
   */
  static async connect(options: DfosConnectOptions): Promise<DfosClient>;
  static async connect(url: string | URL, options?: DfosUrlConnectOptions): Promise<DfosClient>;
  static async connect(target: DfosConnectOptions | string | URL, urlOptions: DfosUrlConnectOptions = {}): Promise<DfosClient> {
    const invalid = (problem: string) => new ProtocolError(`connect failed: invalid options: ${problem}`, { command: 'connect' });
    let options: DfosConnectOptions;
    if (typeof target === 'string' || target instanceof URL) {
      const text = String(target);
      const parsed = parseServerUrl(text);
      if (typeof parsed === 'string') throw invalid(`the URL ${JSON.stringify(redactUrl(text))} ${parsed}`);
      const password = urlOptions.password ?? parsed.password;
      if (password === undefined) throw invalid('no password: the URL has none and options.password is not set');
      options = { ...urlOptions, host: parsed.host, port: parsed.port, user: urlOptions.user ?? parsed.user, password, secure: parsed.secure };
    } else {
      options = target;
    }
    const port = options.port ?? defaultPort(options.secure);
    const secure = options.secure ?? false;
    const verifiers = (['ca', 'fingerprint', 'insecure'] as const).filter((k) => options[k] !== undefined && options[k] !== false);
    const fingerprint = options.fingerprint === undefined ? undefined : normalizeFingerprint(String(options.fingerprint));
    const problem =
      typeof options.host !== 'string' || options.host === ''
        ? 'host must be a non-empty string'
        : !Number.isInteger(port) || port < 1 || port > 65535
          ? `port must be a whole number from 1 to 65535 (got ${String(port)})`
          : typeof options.user !== 'string' || typeof options.password !== 'string'
            ? 'user and password must be strings'
            : secure !== false && secure !== true && secure !== 'implicit'
              ? `secure must be true, false or 'implicit' (got ${JSON.stringify(secure)})`
              : verifiers.length > 1
                ? `use only one of ca, fingerprint and insecure (got ${verifiers.join(' and ')})`
                : verifiers.length === 1 && secure === false
                  ? `${verifiers[0]} needs TLS: secure: true or 'implicit' (an ftpes:// or ftps:// URL)`
                  : options.fingerprint !== undefined && fingerprint === undefined
                    ? `fingerprint must be a SHA-256 fingerprint, 64 hex digits (AA:BB:…) (got ${JSON.stringify(String(options.fingerprint))})`
                    : options.ca !== undefined && typeof options.ca !== 'string' && !Buffer.isBuffer(options.ca)
                      ? 'ca must be PEM text, a path or a Buffer'
                      : undefined;
    if (problem) throw invalid(problem);
    let verification: TlsVerification = { kind: 'system' };
    if (fingerprint !== undefined) verification = { kind: 'fingerprint', fingerprint };
    else if (options.insecure === true) verification = { kind: 'insecure' };
    else if (options.ca !== undefined) {
      try {
        verification = { kind: 'ca', ca: await loadCa(options.ca) };
      } catch (err) {
        throw new LocalError(`connect failed: cannot read the CA file ${String(options.ca)}: ${(err as Error).message}`, { command: 'connect', cause: err });
      }
    }
    const client = new DfosClient(options, verification, tlsOptionsFor(options.host, verification, options.secureOptions));
    await client.queue.run(() => client.open());
    return client;
  }

  /** True once close() was called. */
  get closed(): boolean {
    return this.userClosed;
  }

  /** Closes the connection at once; a call still running fails with ConnectionError, and so does every later call. */
  close(): void {
    if (this.userClosed) return;
    this.userClosed = true;
    this.ftp.close();
  }

  /** `await using client = await DfosClient.connect(…)` closes the client at the end of the scope. */
  async [Symbol.asyncDispose](): Promise<void> {
    this.close();
  }

  /**
   * Uploads a local file (a string is a path), a Buffer or a Readable to `remotePath`.
   * DFOS stores it atomically: the remote file appears complete or not at all.
   */
  upload(source: string | Uint8Array | Readable, remotePath: string, options: UploadOptions = {}): Promise<TransferResult> {
    const op: Operation = { action: 'upload', path: remotePath, command: `STOR ${remotePath}` };
    return this.call(op, [remotePath], async () => {
      let offset = 0;
      if (options.resume) {
        op.command = `SIZE ${remotePath}`;
        offset = (await this.remoteSize(remotePath, true)) ?? 0;
        op.hint = offset > 0 ? `resuming at byte ${offset} needs APPE on the server` : undefined;
      }
      const src = await this.openSource(source, offset, op);
      const reporter = new ProgressReporter(options.onProgress, offset, src.totalBytes);
      if (src.totalBytes !== undefined && offset === src.totalBytes && offset > 0) {
        src.stream.destroy();
        reporter.finish();
        return { bytes: 0, resumedFrom: offset };
      }
      const counter = new UploadCounter(src.skip, (n) => reporter.add(n), (err) => recordLocalError(op, err));
      const onSourceError = (err: Error) => {
        recordLocalError(op, err);
        counter.destroy(err);
      };
      src.stream.on('error', onSourceError);
      src.stream.pipe(counter);
      op.command = offset > 0 ? `APPE ${remotePath}` : `STOR ${remotePath}`;
      try {
        if (offset > 0) await this.ftp.appendFrom(counter, remotePath);
        else await this.ftp.uploadFrom(counter, remotePath);
      } catch (err) {
        op.settled = true;
        src.stream.unpipe(counter);
        if (src.own) src.stream.destroy();
        counter.destroy();
        throw err;
      } finally {
        src.stream.off('error', onSourceError);
      }
      reporter.finish();
      return { bytes: reporter.transferred, resumedFrom: offset };
    });
  }

  /**
   * Downloads `remotePath` to a local path or into a Writable (ended when the download has
   * completed; left open if it fails). To a path, the data goes to a temporary file next to
   * the target that is renamed over it only on success: a failed download (or a missing
   * remote file) leaves no half-written file.
   */
  download(remotePath: string, target: string, options?: DownloadFileOptions): Promise<TransferResult>;
  download(remotePath: string, target: Writable, options?: DownloadOptions): Promise<TransferResult>;
  download(remotePath: string, target: string | Writable, options: DownloadFileOptions = {}): Promise<TransferResult> {
    const op: Operation = { action: 'download', path: remotePath, command: `SIZE ${remotePath}` };
    return this.call(op, [remotePath], async () => {
      if (typeof target !== 'string' && options.resume) {
        throw new ProtocolError(`download ${remotePath} failed: resume needs a local path as the target, not a stream`, {
          command: op.command,
          path: remotePath,
        });
      }
      // Before any local file exists: a missing remote file fails here.
      const totalBytes = await this.remoteSize(remotePath, false);
      if (typeof target === 'string') return this.downloadToFile(remotePath, target, totalBytes, options, op);
      const reporter = new ProgressReporter(options.onProgress, 0, totalBytes);
      await this.receive(remotePath, target, reporter, op);
      reporter.finish();
      return { bytes: reporter.transferred, resumedFrom: 0 };
    });
  }

  /** Lists a directory (default: the login's root or current directory); `.` and `..` are left out. */
  list(dir?: string): Promise<RemoteEntry[]> {
    const path = dir ?? '';
    const op: Operation = { action: 'list', path: dir ?? '.', command: dir === undefined ? 'LIST' : `LIST ${dir}` };
    return this.call(op, dir === undefined ? [] : [dir], async () => {
      // MLSD when the server offers it (see open()), else LIST (basic-ftp tries `LIST -a`, then `LIST`).
      const verb = this.ftp.availableListCommands[0] ?? 'LIST';
      op.command = dir === undefined ? verb : `${verb} ${dir}`;
      const now = new Date();
      const infos = await this.ftp.list(path);
      // vsftpd lists a missing path as an empty LIST: look at the path before calling it empty.
      if (infos.length === 0 && dir !== undefined && verb !== 'MLSD' && (await this.pathExists(dir, op.command)) === false) {
        throw new NotFoundError(`list ${dir} failed: ${dir} does not exist on the server (its ${verb} was empty) (${op.command})`, {
          command: op.command,
          path: dir,
        });
      }
      return infos.filter((i) => i.name !== '.' && i.name !== '..').map((i) => toRemoteEntry(i, now));
    });
  }

  /** The first ≤ 1024 bytes of a remote file, exactly (decoded from SITE VIEW). */
  async view(remotePath: string): Promise<Buffer> {
    return (await this.preview(remotePath)).bytes;
  }

  /** Like view(), with the file size and how the server encoded the preview. */
  preview(remotePath: string): Promise<RemotePreview> {
    const op: Operation = { action: 'view', path: remotePath, command: `SITE VIEW ${remotePath}` };
    return this.call(op, [remotePath], async () => {
      const res = await replyOf(async () => this.ftp.send(`SITE VIEW ${await this.ftp.protectWhitespace(remotePath)}`));
      if (isUnsupportedReply(res.code, res.message)) {
        throw new UnsupportedError(
          `view ${remotePath} failed: this server has no SITE VIEW (a DFOS extension; it answered "${res.message.replace(/\s*\n\s*/g, ' ')}") (${op.command})`,
          { command: op.command, path: remotePath, code: res.code, reply: res.message },
        );
      }
      if (res.code >= 400) throw new FTPError(res);
      let decoded;
      try {
        decoded = decodePreview(res.message);
      } catch (err) {
        throw new ProtocolError(`view ${remotePath} failed: ${(err as Error).message} (${op.command})`, {
          command: op.command,
          path: remotePath,
          code: res.code,
          reply: res.message,
          cause: err,
        });
      }
      return {
        bytes: decoded.bytes,
        fileSize: decoded.fileSize,
        truncated: decoded.bytes.length < decoded.fileSize,
        mode: decoded.mode,
      };
    });
  }

  /** Size of a remote file in bytes (SIZE). */
  size(remotePath: string): Promise<number> {
    const op: Operation = { action: 'size of', path: remotePath, command: `SIZE ${remotePath}` };
    return this.call(op, [remotePath], () => this.ftp.size(remotePath));
  }

  /** Deletes a remote file (DELE). */
  delete(remotePath: string): Promise<void> {
    const op: Operation = { action: 'delete', path: remotePath, command: `DELE ${remotePath}` };
    return this.call(op, [remotePath], async () => {
      await this.ftp.remove(remotePath);
    });
  }

  /** Removes an empty remote directory (RMD). */
  removeDir(remotePath: string): Promise<void> {
    const op: Operation = { action: 'remove directory', path: remotePath, command: `RMD ${remotePath}` };
    return this.call(op, [remotePath], async () => {
      await this.ftp.send(`RMD ${await this.ftp.protectWhitespace(remotePath)}`);
    });
  }

  /** Creates a remote directory (MKD); its parent must exist. */
  mkdir(remotePath: string): Promise<void> {
    const op: Operation = { action: 'mkdir', path: remotePath, command: `MKD ${remotePath}` };
    return this.call(op, [remotePath], async () => {
      await this.ftp.send(`MKD ${await this.ftp.protectWhitespace(remotePath)}`);
    });
  }

  /** Renames or moves a remote file or directory (RNFR + RNTO). */
  rename(from: string, to: string): Promise<void> {
    const op: Operation = { action: 'rename', path: from, command: `RNFR ${from}` };
    return this.call(op, [from, to], async () => {
      await this.ftp.send(`RNFR ${await this.ftp.protectWhitespace(from)}`);
      op.action = `rename ${from} to`;
      op.path = to;
      op.command = `RNTO ${to}`;
      await this.ftp.send(`RNTO ${await this.ftp.protectWhitespace(to)}`);
    });
  }

  /** Runs one call in the queue: refuses bad paths and use after close, reconnects a lost connection, maps errors. */
  private call<T>(op: Operation, paths: string[], body: () => Promise<T>): Promise<T> {
    return this.queue.run(async () => {
      for (const p of paths) {
        if (typeof p !== 'string' || p === '' || /[\r\n\0]/.test(p)) {
          throw new ProtocolError(
            `${op.action} ${JSON.stringify(p)} failed: a remote path must be a non-empty string without CR, LF or NUL`,
            { command: op.command, path: typeof p === 'string' ? p : undefined },
          );
        }
      }
      if (this.userClosed) throw closedError(op);
      if (this.ftp.closed) await this.open();
      try {
        return await body();
      } catch (err) {
        throw await this.refineMissing(toDfosError(err, op), op);
      }
    });
  }

  /**
   * A 550 without a recognisable reason on a path that must exist (vsftpd's "Failed to open
   * file.", pyftpdlib's "is not retrievable") becomes a NotFoundError when a look at the path
   * shows it is not there; if it is there, or the look is inconclusive, it stays a PermissionError.
   */
  private async refineMissing(err: DfosError, op: Operation): Promise<DfosError> {
    if (!(err instanceof PermissionError) || err.code !== 550 || op.path === undefined) return err;
    if (!EXISTING_PATH_VERBS.test(op.command) || classify550(err.reply ?? '') !== 'unknown') return err;
    if (this.userClosed || this.ftp.closed) return err;
    const found = await this.pathExists(op.path, op.command);
    if (found !== false) return err;
    return new NotFoundError(`${err.message}; ${op.path} does not exist on the server`, {
      code: err.code,
      command: err.command,
      path: err.path,
      reply: err.reply,
      cause: err.cause,
    });
  }

  /**
   * Whether a remote path exists, asked without a data connection: MLST where the server
   * offers it (answers for files and directories alike), else SIZE, MDTM, then STAT (vsftpd
   * answers SIZE and MDTM with 550 for directories too, and STAT with an empty listing for a
   * missing path). true: it exists; false: every answer was "not there"; undefined: unknown.
   */
  private async pathExists(path: string, failedCommand: string): Promise<boolean | undefined> {
    try {
      const arg = await this.ftp.protectWhitespace(path);
      if (this.ftp.availableListCommands.includes('MLSD')) {
        const r = await replyOf(() => this.ftp.send(`MLST ${arg}`));
        if (r.code >= 200 && r.code < 300) return true;
        if (r.code === 550) return false;
      }
      let missing = false;
      for (const verb of ['SIZE', 'MDTM']) {
        if (failedCommand.startsWith(`${verb} `)) {
          missing = true; // It just failed with the same reply.
          continue;
        }
        const r = await replyOf(() => this.ftp.send(`${verb} ${arg}`));
        if (r.code === 213) return true;
        if (r.code === 550) missing = true;
      }
      const r = await replyOf(() => this.ftp.send(`STAT ${arg}`));
      if (r.code >= 211 && r.code <= 213) {
        const lines = r.message.split(/\r?\n/).filter((l) => l.trim() !== '');
        // "213-Status follows:" … "213 End of status": anything between is a listing of the path.
        if (lines.length > 2) return true;
        if (lines.length === 2) return false;
      }
      if (r.code === 550) return false;
      return missing ? false : undefined;
    } catch {
      return undefined;
    }
  }

  /** Connects and logs in (also used to reconnect after the connection was lost). */
  private async open(): Promise<void> {
    const { host, port, user } = this;
    const secure = this.options.secure ?? false;
    const op: Operation = { action: `connect to ${host}:${port}`, command: secure === 'implicit' ? 'connect (implicit TLS)' : 'connect' };
    try {
      // A copy each time: Node's tls.connect writes into the options it is given.
      if (secure === 'implicit') await this.ftp.connectImplicitTLS(host, port, { ...this.tlsOptions });
      else await this.ftp.connect(host, port);
      if (secure === true) {
        op.command = 'AUTH TLS';
        await this.ftp.useTLS({ ...this.tlsOptions });
      }
      if (secure !== false) {
        // Before the user name goes out: fingerprint pinning is checked here (Node checks the rest itself).
        const problem = checkPeer(this.ftp.ftp.socket as TLSSocket, this.verification);
        if (problem) throw problem;
      }
      op.command = 'OPTS UTF8 ON';
      await this.ftp.sendIgnoringError('OPTS UTF8 ON');
      op.action = `login as ${user} at ${host}:${port}`;
      op.command = `USER ${user} / PASS ***`;
      await this.ftp.login(user, this.options.password);
      op.command = 'FEAT / TYPE I';
      await this.ftp.useDefaultSettings();
      // basic-ftp falls back from MLSD to LIST on any error (a missing path, a file) and then
      // keeps LIST for good; with a server that offers MLSD, always use it.
      if (this.ftp.availableListCommands[0] === 'MLSD') this.ftp.availableListCommands = ['MLSD'];
    } catch (err) {
      this.ftp.close();
      throw toDfosError(err, op);
    }
  }

  /**
   * SIZE of a remote file; undefined if the server does not implement SIZE. A missing file
   * is an error, or undefined with `missingOk` (resuming an upload that never started).
   */
  private async remoteSize(remotePath: string, missingOk: boolean): Promise<number | undefined> {
    try {
      return await this.ftp.size(remotePath);
    } catch (err) {
      if (!(err instanceof FTPError)) throw err;
      if (err.code === 500 || err.code === 502 || err.code === 504) return undefined;
      if (err.code !== 550 || !missingOk) throw err;
      // Resuming an upload that never started: a missing remote file is size 0, anything else fails.
      const kind = classify550(err.message);
      if (kind === 'not-found') return undefined;
      if (kind === 'unknown' && (await this.pathExists(remotePath, `SIZE ${remotePath}`)) === false) return undefined;
      throw err;
    }
  }

  /** Opens an upload source at `offset`: a file path or bytes directly, a Readable by skipping. */
  private async openSource(
    source: string | Uint8Array | Readable,
    offset: number,
    op: Operation,
  ): Promise<{ stream: Readable; totalBytes: number | undefined; skip: number; own: boolean }> {
    const tooShort = (size: number) =>
      new ProtocolError(
        `upload ${op.path} failed: cannot resume: the remote file has ${offset} bytes, more than the ${size} bytes of the source (${op.command})`,
        { command: op.command, path: op.path },
      );
    if (typeof source === 'string') {
      let size: number;
      try {
        const st = await stat(source);
        if (!st.isFile()) throw new Error(`${source} is not a regular file`);
        size = st.size;
      } catch (err) {
        op.localError = err;
        throw err;
      }
      if (offset > size) throw tooShort(size);
      const stream = createReadStream(source, { start: offset });
      try {
        await waitOpen(stream);
      } catch (err) {
        op.localError = err;
        throw err;
      }
      return { stream, totalBytes: size, skip: 0, own: true };
    }
    if (source instanceof Uint8Array) {
      const bytes = Buffer.from(source.buffer, source.byteOffset, source.byteLength);
      if (offset > bytes.length) throw tooShort(bytes.length);
      const stream = Readable.from(
        (function* () {
          for (let at = offset; at < bytes.length; at += BUFFER_CHUNK) yield bytes.subarray(at, at + BUFFER_CHUNK);
        })(),
      );
      return { stream, totalBytes: bytes.length, skip: 0, own: true };
    }
    if (source instanceof Readable) return { stream: source, totalBytes: undefined, skip: offset, own: false };
    throw new ProtocolError(`upload ${op.path} failed: the source must be a local path, a Buffer or a Readable`, {
      command: op.command,
      path: op.path,
    });
  }

  /** RETR (after REST when the reporter starts past 0) into `target`, then ends the target and waits for it. */
  private async receive(remotePath: string, target: Writable, reporter: ProgressReporter, op: Operation): Promise<void> {
    const onTargetError = (err: Error) => recordLocalError(op, err);
    target.on('error', onTargetError);
    try {
      const startAt = reporter.startAt;
      op.command = startAt > 0 ? `REST ${startAt} + RETR ${remotePath}` : `RETR ${remotePath}`;
      if (startAt > 0) op.hint = `resuming at byte ${startAt} needs REST on the server`;
      const sink = new ForwardingSink(target, (n) => reporter.add(n), (err) => recordLocalError(op, err));
      await this.ftp.downloadTo(sink, remotePath, startAt);
      target.end();
      await finished(target);
    } finally {
      target.off('error', onTargetError);
    }
  }

  private async downloadToFile(
    remotePath: string,
    localPath: string,
    totalBytes: number | undefined,
    options: DownloadFileOptions,
    op: Operation,
  ): Promise<TransferResult> {
    op.command = `RETR ${remotePath}`;
    const finalPath = resolve(localPath);
    const resume = options.resume === true;
    const part = join(
      dirname(finalPath),
      resume ? `.${basename(finalPath)}.dfos-part` : `.${basename(finalPath)}.${randomBytes(4).toString('hex')}.dfos-part`,
    );
    let file: WriteStream;
    let startAt = 0;
    try {
      const existing = await stat(finalPath).catch((err: unknown) => (isMissing(err) ? undefined : Promise.reject(err)));
      if (existing?.isDirectory()) throw new Error(`${localPath} is a directory`);
      if (resume) startAt = await localSizeOrZero(part);
      // A partial file longer than the remote file cannot be its beginning: start over.
      if (totalBytes !== undefined && startAt > totalBytes) startAt = 0;
      file = createWriteStream(part, { flags: startAt > 0 ? 'a' : 'w' });
      await waitOpen(file);
      // Errors while receiving are recorded by receive(); after a failure (destroy with a
      // write still pending) there is nothing left to report.
      file.on('error', () => undefined);
    } catch (err) {
      op.localError = err;
      throw err;
    }
    const reporter = new ProgressReporter(options.onProgress, startAt, totalBytes);
    try {
      if (totalBytes === undefined || startAt < totalBytes) {
        await this.receive(remotePath, file, reporter, op);
      } else {
        file.end();
        await finished(file);
      }
      await waitClosed(file);
      try {
        await rename(part, finalPath);
      } catch (err) {
        op.localError = err;
        throw err;
      }
    } catch (err) {
      op.settled = true;
      file.destroy();
      await waitClosed(file);
      if (!resume || (await localSizeOrZero(part).catch(() => 0)) === 0) await rm(part, { force: true }).catch(() => undefined);
      throw err;
    }
    reporter.finish();
    return { bytes: reporter.transferred, resumedFrom: startAt };
  }
}
