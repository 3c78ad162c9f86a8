import type { Socket } from 'node:net';
import { openEpsvData, REPLY_MS, type RawFtp, type RawReply } from './rawFtp.js';

/**
 * Raw data-connection helpers for tests that drive FTP by hand: read a data socket to its
 * end, write to it, start a transfer command over EPSV, and run whole downloads, listings
 * and uploads whose every reply and byte the test can inspect (including refusals).
 */

/** Reads a data socket until the peer closes it (bounded); resolves with every byte. */
export function readToEnd(socket: Socket, timeoutMs = REPLY_MS): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`data connection not closed within ${timeoutMs} ms`));
    }, timeoutMs);
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', () => undefined);
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks));
    });
  });
}

/** Writes to a socket and waits until the data is handed to the kernel (bounded). */
export function writeData(socket: Socket, data: Buffer, timeoutMs = REPLY_MS): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`write not flushed within ${timeoutMs} ms`)), timeoutMs);
    socket.write(data, (err) => {
      clearTimeout(timer);
      if (err) reject(err);
      else resolve();
    });
  });
}

/** Writes everything and ends the socket, resolving when the data is handed over. */
export function writeAndEnd(socket: Socket, data: Buffer | string): Promise<void> {
  return new Promise((resolve, reject) => {
    socket.once('error', reject);
    socket.end(data, () => resolve());
  });
}

/** Sends EPSV, connects the data socket, sends `line`, and expects a 1xx preliminary reply. */
export async function startDataCommand(raw: RawFtp, line: string): Promise<{ data: Socket; preliminary: RawReply }> {
  const epsv = await raw.command('EPSV', REPLY_MS);
  if (epsv.code !== 229) throw new Error(`EPSV failed: ${epsv.raw}`);
  const data = await openEpsvData(epsv);
  data.on('error', () => undefined);
  const preliminary = await raw.command(line, REPLY_MS);
  if (preliminary.code < 100 || preliminary.code >= 200) {
    data.destroy();
    throw new Error(`${line} was not accepted: ${preliminary.raw}`);
  }
  return { data, preliminary };
}

/** Sends TYPE I, then STOR/RETR `path` as {@link startDataCommand} does: data socket open, 1xx read. */
export async function startRawTransfer(raw: RawFtp, verb: 'STOR' | 'RETR', path: string): Promise<{ data: Socket; preliminary: RawReply }> {
  const type = await raw.command('TYPE I', REPLY_MS);
  if (type.code !== 200) throw new Error(`TYPE I: ${type.raw}`);
  return startDataCommand(raw, `${verb} ${path}`);
}

/** A whole command over a data connection, as {@link rawDownload} and {@link rawUpload} saw it. */
export interface DataTransfer {
  /** The reply to the command itself: the 150/125 preliminary reply, or the refusal. */
  first: RawReply;
  /** The last reply: the one after the transfer, or the refusal (then the same as `first`). */
  final: RawReply;
  /** The code of `final`. */
  code: number;
  /** Every reply of the command (EPSV excluded): `[first]` when refused, else `[first, final]`. */
  replies: RawReply[];
  /** Bytes received on the data connection (empty for uploads and refusals). */
  bytes: Buffer;
}

/** Opens the data connection an EPSV reply announces (default: a direct connection from 127.0.0.1). */
export type DataOpener = (epsv: RawReply) => Promise<Socket>;

/**
 * EPSV, connect (with `open`), send `line`; a refusal is returned (not thrown) with `first`
 * as the final reply. Otherwise `transfer` runs with the open data socket and a promise of
 * everything it receives, then the final reply is read.
 */
async function dataCommand(
  raw: RawFtp,
  line: string,
  transfer: (socket: Socket, received: Promise<Buffer>) => Promise<Buffer>,
  open: DataOpener = (epsv) => openEpsvData(epsv),
): Promise<DataTransfer> {
  const epsv = await raw.command('EPSV', REPLY_MS);
  if (epsv.code !== 229) throw new Error(`EPSV failed: ${epsv.raw}`);
  const socket = await open(epsv);
  const received = readToEnd(socket);
  const first = await raw.command(line, REPLY_MS);
  if (first.code !== 150 && first.code !== 125) {
    socket.destroy();
    await received.catch(() => undefined);
    return { first, final: first, code: first.code, replies: [first], bytes: Buffer.alloc(0) };
  }
  const bytes = await transfer(socket, received);
  const final = await raw.read(REPLY_MS);
  return { first, final, code: final.code, replies: [first, final], bytes };
}

/** A whole download or listing over a raw session (EPSV + `line`): the bytes and every reply. */
export function rawDownload(raw: RawFtp, line: string, open?: DataOpener): Promise<DataTransfer> {
  return dataCommand(raw, line, (_socket, received) => received, open);
}

/** RETR through a raw connection. */
export function rawRetr(raw: RawFtp, path: string, open?: DataOpener): Promise<DataTransfer> {
  return rawDownload(raw, `RETR ${path}`, open);
}

/** LIST (or NLST) through a raw connection; `names` are the last fields of the lines. */
export async function rawList(raw: RawFtp, path?: string, verb = 'LIST'): Promise<DataTransfer & { names: string[] }> {
  const result = await rawDownload(raw, path === undefined ? verb : `${verb} ${path}`);
  const lines = result.bytes.toString('utf8').split(/\r?\n/).filter((l) => l !== '');
  const names = verb === 'NLST' ? lines : lines.map((l) => l.split(/ +/).slice(8).join(' '));
  return { ...result, names };
}

/**
 * A whole upload (STOR, APPE, STOU…) over a raw session: EPSV + `line`, `content`, a proper
 * end of the data connection, then the final reply once the server has closed it.
 */
export function rawUpload(raw: RawFtp, line: string, content: string | Buffer, open?: DataOpener): Promise<DataTransfer> {
  return dataCommand(
    raw,
    line,
    async (socket, received) => {
      socket.end(content);
      await received.catch(() => undefined);
      return Buffer.alloc(0);
    },
    open,
  );
}
