import { createWriteStream, existsSync, mkdirSync, openSync, readdirSync, renameSync, statSync, unlinkSync, type WriteStream } from 'node:fs';
import { basename, dirname, extname, join } from 'node:path';

/**
 * `--log-rotate`: `size` (at --log-max-size, --log-max-files kept), `daily` (at local
 * midnight, --log-max-files days kept) or `none` (left to the system's logrotate, which
 * signals SIGHUP so the files are reopened).
 */
export const LOG_ROTATIONS = ['size', 'daily', 'none'] as const;
export type LogRotationMode = (typeof LOG_ROTATIONS)[number];

/** How a log file is rotated (the --log-rotate, --log-max-size and --log-max-files settings). */
export interface LogRotation {
  mode: LogRotationMode;
  /** With mode size: rotate once the file reaches this many bytes. */
  maxSize: number;
  /** Rotated files kept besides the live one (numbered or dated); 0 keeps every one. */
  maxFiles: number;
}

/** The local calendar day of a time, as YYYY-MM-DD (daily rotation names files after it). */
export function localDay(time: Date): string {
  const pad = (n: number) => String(n).padStart(2, '0');
  return `${time.getFullYear()}-${pad(time.getMonth() + 1)}-${pad(time.getDate())}`;
}

/**
 * Lines written within this long of each other reach the file in one write. Each write of
 * a file stream is a round trip to libuv's thread pool; a login wrote two audit lines, each
 * on its own trip. A/B, 200 logins one after another held open, one process, 20 and 25
 * rounds with the order swapped: median 0.132/0.110 → 0.112/0.098 s, server CPU per round
 * 0.155/0.110 → 0.130/0.100 s. close() (shutdown, a fatal error) writes what is pending.
 */
export const COALESCE_MS = 10;

/**
 * One append-only log file that the server writes line by line (dfos.log, audit.log, the
 * xferlog). The live file always has its configured name, so `tail -F` and the system's
 * logrotate find it:
 * - size: at maxSize the file becomes NAME1.EXT (NAME1 becomes NAME2, …; the names winston
 *   used before), keeping maxFiles;
 * - daily: at the first line of a new local day the file becomes NAME-YYYY-MM-DD.EXT (the
 *   day its lines are from, also after a restart), keeping the newest maxFiles;
 * - none: never rotated here.
 * reopen() (SIGHUP) starts a fresh file at the name after logrotate moved the old one away.
 * Lines written before a rotation or reopen still land in the old file (its descriptor
 * follows the rename). Renames are synchronous, between two lines, so none is lost or split.
 */
export class RotatingFile {
  private stream!: WriteStream;
  private size = 0;
  /** The local day of the lines in the live file (daily rotation). */
  private day = '';
  private closing: Promise<void> | undefined;
  /** Streams of files moved aside that are still writing their last lines (close() waits for them). */
  private readonly retiring = new Set<Promise<void>>();
  private readonly ext: string;
  private readonly stem: string;

  constructor(
    readonly path: string,
    private rotation: LogRotation,
    /** The clock (tests move it past midnight). */
    private readonly now: () => Date = () => new Date(),
  ) {
    mkdirSync(dirname(path), { recursive: true, mode: 0o750 });
    this.ext = extname(path);
    this.stem = basename(path, this.ext);
    this.open();
  }

  /** Appends one line (a newline is added). */
  write(line: string): void {
    const text = `${line}\n`;
    const now = this.now();
    if (this.rotation.mode === 'daily' && localDay(now) !== this.day) {
      if (this.size > 0) this.rotate(() => this.rotateDaily());
      else this.day = localDay(now);
    }
    if (this.stream.writableCorked === 0) this.holdBack(this.stream);
    this.stream.write(text);
    this.size += Buffer.byteLength(text);
    if (this.rotation.mode === 'size' && this.size >= this.rotation.maxSize) this.rotate(() => this.rotateBySize());
  }

  /** Writes to a fresh file at the path from now on (after logrotate renamed it); new rotation settings apply from here. */
  reopen(rotation: LogRotation = this.rotation): void {
    this.rotation = rotation;
    const old = this.stream;
    this.open();
    this.retire(old);
  }

  /** Flushes and closes the file (and files just rotated); resolves when every line is written (bounded: 3 s). */
  close(): Promise<void> {
    return (this.closing ??= new Promise((resolve) => {
      const timer = setTimeout(resolve, 3000);
      timer.unref();
      this.retire(this.stream);
      void Promise.all([...this.retiring]).then(() => {
        clearTimeout(timer);
        resolve();
      });
    }));
  }

  /** Holds `stream`'s lines back for COALESCE_MS, then writes them at once (ending the stream writes them too). */
  private holdBack(stream: WriteStream): void {
    stream.cork();
    setTimeout(() => stream.uncork(), COALESCE_MS).unref();
  }

  /** Ends a stream once its pending lines are written; close() waits for it. */
  private retire(stream: WriteStream): void {
    const done = new Promise<void>((resolve) => stream.end(() => resolve()));
    this.retiring.add(done);
    void done.then(() => this.retiring.delete(done));
  }

  private open(): void {
    let existing: { size: number; mtime: Date } | undefined;
    try {
      existing = statSync(this.path);
    } catch {
      existing = undefined;
    }
    this.size = existing?.size ?? 0;
    this.day = localDay(existing && existing.size > 0 ? existing.mtime : this.now());
    // Opened at once (not when the stream gets round to it), so the file exists for a rotation right after.
    this.stream = createWriteStream(this.path, { fd: openSync(this.path, 'a', 0o640) });
    // A full disk or a removed directory must not take the server down; the write is lost.
    this.stream.on('error', (err) => process.stderr.write(`dfos: cannot write ${this.path}: ${err.message}\n`));
  }

  /** Moves the live file aside with `move`, then opens a fresh one; a failed move keeps writing to the same file. */
  private rotate(move: () => void): void {
    try {
      move();
    } catch (err) {
      process.stderr.write(`dfos: cannot rotate ${this.path}: ${(err as Error).message}; still writing to it\n`);
      this.size = 0;
      this.day = localDay(this.now());
      return;
    }
    const old = this.stream;
    this.open();
    this.retire(old);
  }

  private sibling(name: string): string {
    return join(dirname(this.path), name);
  }

  /** NAME.EXT → NAME1.EXT, NAME1.EXT → NAME2.EXT, …; the one past maxFiles is removed. */
  private rotateBySize(): void {
    const numbered = (n: number) => this.sibling(`${this.stem}${n}${this.ext}`);
    let last = this.rotation.maxFiles;
    if (last === 0) for (last = 1; existsSync(numbered(last)); last++);
    else if (existsSync(numbered(last))) unlinkSync(numbered(last));
    for (let n = last - 1; n >= 1; n--) if (existsSync(numbered(n))) renameSync(numbered(n), numbered(n + 1));
    renameSync(this.path, numbered(1));
  }

  /** NAME.EXT → NAME-YYYY-MM-DD.EXT (the day of its lines); the oldest beyond maxFiles are removed. */
  private rotateDaily(): void {
    let target = this.sibling(`${this.stem}-${this.day}${this.ext}`);
    for (let n = 1; existsSync(target); n++) target = this.sibling(`${this.stem}-${this.day}.${n}${this.ext}`);
    renameSync(this.path, target);
    if (this.rotation.maxFiles === 0) return;
    const dated = new RegExp(`^${escape(this.stem)}-\\d{4}-\\d\\d-\\d\\d(\\.\\d+)?${escape(this.ext)}$`);
    const kept = readdirSync(dirname(this.path)).filter((n) => dated.test(n)).sort(byDayThenCounter);
    for (const name of kept.slice(0, Math.max(0, kept.length - this.rotation.maxFiles))) unlinkSync(this.sibling(name));
  }
}

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** Orders dated files oldest first: by day, then NAME-DAY before NAME-DAY.1 before NAME-DAY.2. */
function byDayThenCounter(a: string, b: string): number {
  const key = (n: string) => {
    const m = /(\d{4}-\d\d-\d\d)(?:\.(\d+))?/.exec(n)!;
    return [m[1]!, Number(m[2] ?? 0)] as const;
  };
  const [da, ca] = key(a);
  const [db, cb] = key(b);
  return da === db ? ca - cb : da < db ? -1 : 1;
}
