import type { FtpConnection, ReplyLetter } from './internals.js';

type ReplyOptions = Parameters<FtpConnection['reply']>[0];

/**
 * Sends a reply as one write on the control connection. ftp-srv writes a multi-line
 * reply line by line, each write waiting for the previous one's callback; without
 * Nagle's algorithm that is one TCP segment and one event-loop turn per line (a 60-line
 * SITE VIEW took ~6 ms, and clients that mishandle replies split across reads saw them
 * split at every line). Even a one-line reply took ftp-srv four bluebird promise hops
 * (each a setImmediate turn of the event loop) and a getsockname call for a trace line;
 * written directly it leaves sooner (see the README's performance section).
 *
 * Only plain control-channel replies are coalesced (every letter a non-empty string, or
 * `{ message, raw? }`); anything else (another socket, `useEmptyMessage`, an empty
 * message that ftp-srv replaces with its default text) goes to ftp-srv's `original`.
 * Like ftp-srv's reply, it never rejects.
 */
export function coalescedReply(
  connection: FtpConnection,
  original: (options: ReplyOptions, ...letters: ReplyLetter[]) => Promise<void>,
  options: ReplyOptions,
  letters: ReplyLetter[],
): Promise<void> {
  const opts = typeof options === 'number' ? { code: options } : options;
  const plain =
    letters.length >= 1 &&
    opts.code !== undefined &&
    !opts.socket &&
    !opts.useEmptyMessage &&
    !('eol' in opts) &&
    letters.every((l) => (typeof l === 'string' ? l !== '' : isPlainLetter(l)));
  const socket = connection.commandSocket;
  if (!plain || !socket.writable) return original(options, ...letters);
  const last = letters.length - 1;
  const text = letters
    .map((letter, i) => {
      const message = typeof letter === 'string' ? letter : letter.message;
      if (typeof letter !== 'string' && letter.raw) return message;
      return `${opts.code}${i === last ? ' ' : '-'}${message}`;
    })
    .join('\r\n');
  connection.log.trace({ message: text }, 'Reply');
  return new Promise((resolve) => {
    socket.write(`${text}\r\n`, connection.encoding, () => resolve());
  });
}

function isPlainLetter(letter: Exclude<ReplyLetter, string>): boolean {
  const keys = Object.keys(letter);
  return typeof letter.message === 'string' && letter.message !== '' && keys.every((k) => k === 'message' || k === 'raw');
}
