import { lstat, readdir, readFile, readlink, realpath } from 'node:fs/promises';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ExecutionContext } from 'ava';
import type { Client } from 'basic-ftp';
import { openEpsvData, type RawFtp, type RawReply } from './rawFtp.js';
import type { TestServer } from './testServer.js';

/**
 * Helpers for the jail, read-only, reply and SITE VIEW tests: record every byte a
 * client receives on its control connection, check that none of it names a server
 * path, run raw data-connection commands (RETR, LIST, STOR…) and snapshot a directory
 * tree to prove that nothing on disk changed.
 */

/** Everything the control connections of one test received, as text. */
export class ReplyRecorder {
  readonly chunks: string[] = [];

  /** Records every control-connection byte a RawFtp or a basic-ftp Client receives from now on. */
  watch<T extends RawFtp | Client>(target: T): T {
    const socket: Socket = 'ftp' in target ? target.ftp.socket : target.socket;
    socket.on('data', (d: Buffer | string) => this.chunks.push(typeof d === 'string' ? d : d.toString('utf8')));
    return target;
  }

  /** All received text joined. */
  get text(): string {
    return this.chunks.join('');
  }
}

/** Server-side directories that must never appear in a reply (as given and as real paths). */
export async function serverPaths(srv: TestServer): Promise<string[]> {
  const paths = new Set<string>();
  for (const p of [srv.dir, srv.storage, srv.logDir, tmpdir()]) {
    paths.add(p);
    try {
      paths.add(await realpath(p));
    } catch {
      // not created (yet)
    }
  }
  return [...paths].filter((p) => p.length > 1);
}

/** Fails the test if any recorded reply text contains a server-side path. */
export async function assertNoServerPaths(t: ExecutionContext, srv: TestServer, recorder: ReplyRecorder): Promise<void> {
  const text = recorder.text;
  t.true(text.length > 0, 'no reply was recorded');
  for (const p of await serverPaths(srv)) {
    const at = text.indexOf(p);
    t.is(at, -1, `a reply contains the server path ${p}: ${JSON.stringify(text.slice(Math.max(0, at - 80), at + 120))}`);
  }
}

/** Reads a data connection until the server closes it (bounded). */
function collect(socket: Socket, timeoutMs = 5000): Promise<Buffer> {
  const chunks: Buffer[] = [];
  socket.on('data', (c: Buffer) => chunks.push(c));
  socket.on('error', () => undefined);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`data connection still open after ${timeoutMs} ms`));
    }, timeoutMs);
    socket.once('close', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks));
    });
  });
}

/** Result of a command that uses a data connection. */
export interface DataResult {
  /** Code of the final reply (the refusal, or the reply after 150). */
  code: number;
  /** Every reply of the command (EPSV excluded). */
  replies: RawReply[];
  /** Bytes received on the data connection (downloads and listings). */
  data: Buffer;
}

/** EPSV, connect, send `line`, and read the replies; the data received is returned. */
export async function rawDownload(raw: RawFtp, line: string): Promise<DataResult> {
  const epsv = await raw.command('EPSV');
  if (epsv.code !== 229) throw new Error(`EPSV failed: ${epsv.raw}`);
  const socket = await openEpsvData(epsv);
  const receiving = collect(socket);
  const first = await raw.command(line);
  if (first.code !== 150 && first.code !== 125) {
    socket.destroy();
    await receiving.catch(() => undefined);
    return { code: first.code, replies: [first], data: Buffer.alloc(0) };
  }
  const data = await receiving;
  const final = await raw.read();
  return { code: final.code, replies: [first, final], data };
}

/** RETR through a raw connection. */
export function rawRetr(raw: RawFtp, path: string): Promise<DataResult> {
  return rawDownload(raw, `RETR ${path}`);
}

/** LIST (or NLST) through a raw connection; `names` are the last fields of the lines. */
export async function rawList(raw: RawFtp, path?: string, verb = 'LIST'): Promise<DataResult & { names: string[] }> {
  const result = await rawDownload(raw, path === undefined ? verb : `${verb} ${path}`);
  const lines = result.data.toString('utf8').split(/\r?\n/).filter((l) => l !== '');
  const names = verb === 'NLST' ? lines : lines.map((l) => l.split(/ +/).slice(8).join(' '));
  return { ...result, names };
}

/** An upload verb (STOR, APPE, STOU…) with `content`, through a raw connection. */
export async function rawUpload(raw: RawFtp, line: string, content: string | Buffer): Promise<DataResult> {
  const epsv = await raw.command('EPSV');
  if (epsv.code !== 229) throw new Error(`EPSV failed: ${epsv.raw}`);
  const socket = await openEpsvData(epsv);
  const closed = collect(socket);
  const first = await raw.command(line);
  if (first.code !== 150 && first.code !== 125) {
    socket.destroy();
    await closed.catch(() => undefined);
    return { code: first.code, replies: [first], data: Buffer.alloc(0) };
  }
  socket.end(content);
  await closed.catch(() => undefined);
  const final = await raw.read();
  return { code: final.code, replies: [first, final], data: Buffer.alloc(0) };
}

/**
 * A description of every entry under `dir` (not following symlinks): type, permission
 * bits, and file content or link target. Equal snapshots mean nothing changed.
 */
export async function snapshotTree(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const walk = async (rel: string): Promise<void> => {
    const names = (await readdir(join(dir, rel))).sort();
    for (const name of names) {
      const relPath = rel ? `${rel}/${name}` : name;
      const full = join(dir, relPath);
      const st = await lstat(full);
      const mode = (st.mode & 0o7777).toString(8);
      if (st.isSymbolicLink()) out[relPath] = `link -> ${await readlink(full)}`;
      else if (st.isDirectory()) {
        out[relPath] = `dir ${mode}`;
        await walk(relPath);
      } else out[relPath] = `file ${mode} ${(await readFile(full)).toString('base64')}`;
    }
  };
  await walk('');
  return out;
}

/** True if `path` exists (a dangling symlink counts as existing). */
export async function exists(path: string): Promise<boolean> {
  try {
    await lstat(path);
    return true;
  } catch {
    return false;
  }
}

/** The JSON records of a log file (one object per line); [] if the file is missing. */
export async function readJsonLines(file: string): Promise<Record<string, unknown>[]> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch {
    return [];
  }
  return text
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}
