import type { Socket } from 'node:net';
import type { FTPContext } from 'basic-ftp';

/** Longest control line we wait for; a server sending more without a line end is broken. */
const MAX_PARTIAL_LINE = 1024 * 1024;

interface ContextInternals {
  socket: Socket;
  _onControlSocketData(chunk: string): void;
  closeWithError(err: Error): void;
}

/**
 * Makes basic-ftp 5.0.5 read control replies line by line.
 *
 * FTPContext._onControlSocketData hands each TCP chunk to parseControlResponse, which
 * treats an unterminated last line as complete (`rest = lines.slice(startAt).join(LF) + LF`).
 * So when a multi-line reply is split across TCP segments, the line at the split becomes
 * two lines, and a split right after a code can even close the reply early. SITE VIEW
 * replies are up to ~6 KB, so on real networks this corrupts previews. This wrapper (one
 * per context) passes on only complete lines, up to the last LF, and carries the partial
 * tail over to the next chunk. The tail is dropped when the control socket changes
 * (reconnect, TLS upgrade), as basic-ftp drops its own partial reply then.
 */
export function bufferControlLines(context: FTPContext): void {
  const ctx = context as unknown as ContextInternals;
  const original = ctx._onControlSocketData;
  let tail = '';
  let tailSocket: Socket | undefined;
  ctx._onControlSocketData = (chunk: string) => {
    if (tailSocket !== ctx.socket) {
      tail = '';
      tailSocket = ctx.socket;
    }
    const text = tail + chunk;
    const end = text.lastIndexOf('\n');
    if (end === -1) {
      tail = text;
      if (tail.length > MAX_PARTIAL_LINE) {
        tail = '';
        ctx.closeWithError(new Error(`the server sent a control line longer than ${MAX_PARTIAL_LINE} bytes without a line end`));
      }
      return;
    }
    tail = text.slice(end + 1);
    original.call(ctx, text.slice(0, end + 1));
  };
}
