import { pipeline } from 'node:stream/promises';
import { Socket } from 'node:net';
import { TLSSocket } from 'node:tls';
import type { Upload } from '../../core/FileSession.js';
import { CrlfToLf, LfToCrlf } from '../../protocol/asciiMode.js';
import type { CommandEntry, FtpConnection, FtpCommand } from './internals.js';
import { describeFailure, ReplyError } from './replyError.js';
import { sessionOf } from './Session.js';
import { fileSessionOf } from './connectionFs.js';
import { DataChannel } from './DataChannel.js';
import { openDataConnection } from './dataConnection.js';
import { receiveUpload } from './receiveUpload.js';

/** Takes (and clears) the REST offset, so a failed transfer never leaks it to the next one. */
function takeRestOffset(connection: FtpConnection): number | undefined {
  const offset = connection.restByteCount;
  connection.restByteCount = 0;
  return offset && offset > 0 ? offset : undefined;
}

/**
 * Resolves once the data connection has ended with a FIN, rejects if it was reset (or
 * closed without an end). When a reset arrives behind bytes not yet read, Node 20's libuv
 * reports a plain end of stream (and the bytes behind it are lost); a zero-length write
 * then surfaces the pending error without sending anything. On TLS (PROT P) that write
 * goes to the TCP connection underneath: a zero-length write to the TLS socket sends no
 * record, never reaches the kernel and succeeds, so a reset upload was taken for complete
 * (a test saw 147,456 of 500,000 bytes arrive, then 'end', then the TLS write succeed
 * while the TCP one failed with EPIPE). Node 24 reports the same reset as an error.
 */
export function endedNormally(socket: Socket): () => Promise<void> {
  // A TLSSocket keeps the connection it wraps as `_parent` (Node's own field).
  const tcp = socket instanceof TLSSocket ? ((socket as TLSSocket & { _parent?: unknown })._parent as Socket | undefined) : undefined;
  const probe = tcp instanceof Socket ? tcp : socket;
  const ended = new Promise<void>((resolve, reject) => {
    let sawEnd = false;
    socket.once('end', () => {
      sawEnd = true;
      probe.write(Buffer.alloc(0), (err) => (err ? reject(err) : resolve()));
    });
    socket.once('error', reject);
    socket.once('close', () => {
      if (!sawEnd) reject(new Error('The data connection closed before the client ended it'));
    });
  });
  ended.catch(() => undefined);
  return () => ended;
}

/** Reply code and text for a transfer whose data connection failed mid-way. */
export function transferFailure(connection: FtpConnection, err: unknown): { code: number; message: string } {
  const session = sessionOf(connection);
  // The client's own ABOR: a 426 whose text does not contain "ABOR" (lftp pairs the
  // following replies with the wrong commands when it does).
  if (session?.abortReason && session.abortedByClient) return { code: 426, message: 'Transfer cancelled at the client\'s request; data connection closed' };
  if (session?.abortReason) return { code: 426, message: `Transfer aborted: ${session.abortReason}` };
  if (err instanceof ReplyError) return describeFailure(err);
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  if (code === 'ENOSPC' || code === 'EDQUOT') return { code: 452, message: 'Transfer aborted: insufficient storage space' };
  const known = describeFailure(err, 0);
  if (known.code !== 0) return known;
  return { code: 426, message: 'Connection closed; transfer aborted' };
}

/**
 * STOR, APPE, STOU: the core opens the upload (atomic or in place, per the backend); it
 * is completed only when the client closed the data connection normally; a reset, abort,
 * timeout or shutdown discards it. 150 is sent before waiting for the data connection.
 */
async function store(this: FtpConnection, command: FtpCommand, unique: boolean): Promise<void> {
  const append = command.directive === 'APPE';
  const resumeAt = takeRestOffset(this);
  const core = fileSessionOf(this);
  let upload: Upload | undefined;
  try {
    let target = command.arg;
    if (unique) {
      if (resumeAt) throw new ReplyError(503, 'REST cannot be used with STOU');
      target = core.uniqueName(command.arg);
    }
    if (append && resumeAt) throw new ReplyError(503, 'REST cannot be used with APPE');
    upload = await core.upload(target, { append, resumeAt, transferType: this.transferType });
  } catch (err) {
    const { code, message } = describeFailure(err, 451);
    await this.reply(code, message);
    this.connector.end();
    return;
  }
  const session = sessionOf(this);
  if (session) session.transferTarget = { path: upload.path };
  try {
    const name = upload.path.split('/').pop()!;
    // The user's upload rate applies to the bytes on the wire (before TYPE A conversion).
    const stages = [...core.bandwidth.up.stages(), ...(this.transferType === 'ascii' ? [new CrlfToLf()] : [])];
    const opened = await openDataConnection(this, unique ? `FILE: ${name}` : `Opening data connection for ${upload.path}`);
    // Straight from the shared read buffer into the sink when nothing stands between them.
    const connector = this.connector;
    const direct = stages.length === 0 && upload.sink.copyIn !== undefined && connector instanceof DataChannel;
    const socket = (direct ? connector.readIntoSharedBuffer() : null) ?? opened;
    const ended = endedNormally(socket);
    await receiveUpload(socket, stages, upload.sink);
    await ended();
  } catch (err) {
    const failure = transferFailure(this, err);
    await upload.fail(err, sessionOf(this)?.abortReason !== undefined);
    await this.reply(failure.code, failure.message);
    this.connector.end();
    return;
  }
  try {
    await upload.complete();
    await this.reply(226, `Transfer complete: ${upload.path} (${upload.sink.bytesWritten} bytes)`);
  } catch (err) {
    const { code, message } = describeFailure(err, 451);
    await this.reply(code, message);
  } finally {
    this.connector.end();
  }
}

/** RETR: sends a file (from the REST offset if one was given). */
async function retrieve(this: FtpConnection, command: FtpCommand): Promise<void> {
  const start = takeRestOffset(this);
  let download;
  try {
    download = await fileSessionOf(this).download(command.arg, start, this.transferType);
  } catch (err) {
    const { code, message } = describeFailure(err, 451);
    await this.reply(code, message);
    this.connector.end();
    return;
  }
  const { handle, path } = download;
  const session = sessionOf(this);
  if (session) session.transferTarget = { path, size: handle.size };
  const down = fileSessionOf(this).bandwidth.down;
  let socket: Socket | undefined;
  try {
    socket = await openDataConnection(this, `Opening data connection for ${path} (${handle.size} bytes)`);
    // A rate applies to the bytes on the wire (after TYPE A conversion); without one, local
    // storage's sendTo keeps its fast path.
    if (this.transferType === 'ascii') await pipeline([handle.stream(), new LfToCrlf(), ...down.stages(), socket]);
    else if (down.limited || !handle.sendTo) await pipeline([handle.stream(), ...down.stages(), socket]);
    else await handle.sendTo(socket);
  } catch (err) {
    const failure = transferFailure(this, err);
    await download.finish({ bytes: socket?.bytesWritten ?? 0, error: err, aborted: sessionOf(this)?.abortReason !== undefined });
    await this.reply(failure.code, failure.message);
    this.connector.end();
    return;
  }
  const sent = socket.bytesWritten;
  await download.finish({ bytes: sent });
  await this.reply(226, `Transfer complete: ${path} (${sent} bytes)`);
  this.connector.end();
}

/** Registry entries for the transfer verbs. */
export const transferCommands: CommandEntry[] = [
  {
    directive: 'STOR',
    handler(this: FtpConnection, { command }) {
      return store.call(this, command, false);
    },
    syntax: '{{cmd}} <path>',
    description: 'Store a file (atomically; REST n first to resume at byte n)',
  },
  {
    directive: 'APPE',
    handler(this: FtpConnection, { command }) {
      return store.call(this, command, false);
    },
    syntax: '{{cmd}} <path>',
    description: 'Append to a file (atomically)',
  },
  {
    directive: 'STOU',
    handler(this: FtpConnection, { command }) {
      return store.call(this, command, true);
    },
    syntax: '{{cmd}} [<name prefix>]',
    description: 'Store a file under a unique name',
  },
  {
    directive: 'RETR',
    handler(this: FtpConnection, { command }) {
      return retrieve.call(this, command);
    },
    syntax: '{{cmd}} <path>',
    description: 'Retrieve a file (REST n first to start at byte n)',
  },
];
