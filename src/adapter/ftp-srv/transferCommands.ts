import { pipeline } from 'node:stream/promises';
import type { Socket } from 'node:net';
import type { AtomicUpload } from '../../storage/AtomicUpload.js';
import { FsError } from '../../storage/FsError.js';
import { sendFile } from '../../storage/sendFile.js';
import { CrlfToLf, LfToCrlf } from '../../protocol/asciiMode.js';
import type { CommandEntry, FtpConnection, FtpCommand } from './internals.js';
import { describeFailure } from './replyError.js';
import { sessionOf } from './Session.js';
import { fsOf } from './connectionFs.js';
import { openDataConnection } from './dataConnection.js';

/** Takes (and clears) the REST offset, so a failed transfer never leaks it to the next one. */
function takeRestOffset(connection: FtpConnection): number | undefined {
  const offset = connection.restByteCount;
  connection.restByteCount = 0;
  return offset && offset > 0 ? offset : undefined;
}

/**
 * Resolves once the data connection has ended with a FIN, rejects if it was reset. When a
 * reset arrives behind bytes not yet read, libuv reports a plain end of stream; a
 * zero-length write then surfaces the pending ECONNRESET without sending anything.
 */
function endedNormally(socket: Socket): () => Promise<void> {
  const ended = new Promise<void>((resolve, reject) => {
    socket.once('end', () => socket.write(Buffer.alloc(0), (err) => (err ? reject(err) : resolve())));
  });
  ended.catch(() => undefined);
  return () => ended;
}

/**
 * Destroys an upload and waits until its temporary is removed, so no reply (and no
 * shutdown) can precede the cleanup.
 */
async function discard(stream: AtomicUpload): Promise<void> {
  stream.destroy();
  if (!stream.closed) await new Promise<void>((resolve) => stream.once('close', () => resolve()));
}

/** Reply code and text for a transfer whose data connection failed mid-way. */
function transferFailure(connection: FtpConnection, err: unknown): { code: number; message: string } {
  const session = sessionOf(connection);
  if (session?.abortReason) return { code: 426, message: `Transfer aborted: ${session.abortReason}` };
  if (err instanceof FsError) return describeFailure(err);
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  if (code === 'ENOSPC' || code === 'EDQUOT') return { code: 452, message: 'Transfer aborted: insufficient storage space' };
  return { code: 426, message: 'Connection closed; transfer aborted' };
}

/**
 * STOR, APPE, STOU: atomic uploads. The data goes to a hidden temporary that replaces the
 * target only when the client closed the data connection normally; a reset, abort,
 * timeout or shutdown discards it. REST n + STOR keeps the first n bytes (ftp-srv
 * zero-filled them). 150 is sent before waiting for the data connection.
 */
async function store(this: FtpConnection, command: FtpCommand, unique: boolean): Promise<void> {
  const session = sessionOf(this);
  const started = Date.now();
  const append = command.directive === 'APPE';
  const resumeAt = takeRestOffset(this);
  const fs = fsOf(this);
  let clientPath = command.arg ?? '';
  try {
    if (unique) {
      if (resumeAt) throw new FsError(503, 'REST cannot be used with STOU');
      const base = command.arg ? `${command.arg}.` : '';
      command = { ...command, arg: `${base}${fs.getUniqueName()}` };
    }
    if (append && resumeAt) throw new FsError(503, 'REST cannot be used with APPE');
    clientPath = fs.resolveClientPath(command.arg);
    const { stream } = await fs.openUpload(command.arg, { append, resumeAt });
    let socket: Socket;
    try {
      const name = clientPath.split('/').pop()!;
      socket = await openDataConnection(this, unique ? `FILE: ${name}` : `Opening data connection for ${clientPath}`);
    } catch (err) {
      await discard(stream);
      throw err;
    }
    stream.beforeCommit = endedNormally(socket);
    try {
      await (this.transferType === 'ascii' ? pipeline(socket, new CrlfToLf(), stream) : pipeline(socket, stream));
    } catch (err) {
      // pipeline() rejects as soon as the socket fails, before the upload's _destroy has
      // removed the temporary: wait for it, so no reply (and no shutdown) precedes cleanup.
      await discard(stream);
      const failure = transferFailure(this, err);
      session?.audit({ action: 'upload', path: clientPath, bytes: stream.bytesReceived, durationMs: Date.now() - started, result: session.abortReason ? 'aborted' : 'failed', code: failure.code, reason: failure.message });
      await this.reply(failure.code, failure.message);
      return;
    }
    this.emit('STOR', null, clientPath);
    session?.audit({ action: 'upload', path: clientPath, bytes: stream.bytesReceived, durationMs: Date.now() - started, result: 'ok', code: 226 });
    await this.reply(226, `Transfer complete: ${clientPath} (${stream.bytesReceived} bytes)`);
  } catch (err) {
    const { code, message } = describeFailure(err, 451);
    session?.audit({ action: 'upload', path: clientPath, durationMs: Date.now() - started, result: 'failed', code, reason: message });
    await this.reply(code, message);
  } finally {
    this.connector.end();
  }
}

/** RETR: sends a file (from the REST offset if one was given). */
async function retrieve(this: FtpConnection, command: FtpCommand): Promise<void> {
  const session = sessionOf(this);
  const started = Date.now();
  const start = takeRestOffset(this);
  let clientPath = command.arg ?? '';
  let sent = 0;
  try {
    const fs = fsOf(this);
    clientPath = fs.resolveClientPath(command.arg);
    const { file, size } = await fs.openForDownload(command.arg, { start });
    let socket: Socket;
    try {
      socket = await openDataConnection(this, `Opening data connection for ${clientPath} (${size} bytes)`);
    } catch (err) {
      await file.close().catch(() => undefined);
      throw err;
    }
    try {
      await (this.transferType === 'ascii'
        ? pipeline(file.createReadStream({ start: start ?? 0, highWaterMark: 1 << 19, autoClose: false }), new LfToCrlf(), socket)
        : sendFile(file, socket, start ?? 0, size)
      ).finally(() => file.close().catch(() => undefined));
      sent = socket.bytesWritten;
    } catch (err) {
      sent = socket.bytesWritten;
      const failure = transferFailure(this, err);
      session?.audit({ action: 'download', path: clientPath, bytes: sent, durationMs: Date.now() - started, result: session.abortReason ? 'aborted' : 'failed', code: failure.code, reason: failure.message });
      await this.reply(failure.code, failure.message);
      return;
    }
    this.emit('RETR', null, clientPath);
    session?.audit({ action: 'download', path: clientPath, bytes: sent, durationMs: Date.now() - started, result: 'ok', code: 226 });
    await this.reply(226, `Transfer complete: ${clientPath} (${sent} bytes)`);
  } catch (err) {
    const { code, message } = describeFailure(err, 451);
    session?.audit({ action: 'download', path: clientPath, bytes: sent, durationMs: Date.now() - started, result: 'failed', code, reason: message });
    await this.reply(code, message);
  } finally {
    this.connector.end();
  }
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
