import type { Socket } from 'node:net';
import { frameProxyHeader, parseProxyHeader, ProxyHeaderError, proxySignature, SIGNATURE_BYTES, type ProxyHeader } from './proxyHeader.js';

/**
 * Reading the first bytes of a new connection for its PROXY header, before anything else
 * reads it: bounded (the header's size limits, then one socket read at most), timed, and
 * leaving every byte after the header in the socket (unshifted), so whatever reads next (the
 * FTP command reader, a TLS handshake, a data transfer) sees the connection as if the header
 * had never been there.
 */

/** What the start of a connection from a trusted proxy held. */
export type HeaderRead =
  | { kind: 'header'; header: ProxyHeader }
  /** The connection does not start with a PROXY header; everything read was put back. */
  | { kind: 'none' }
  /**
   * A header that is malformed, too long, incomplete in time, or a connection that ended
   * first. `quiet`: it closed without sending a byte (a TCP health check, a port scan).
   */
  | { kind: 'refused'; reason: string; quiet?: boolean };

/**
 * Reads from `socket` (paused, nothing read yet) until `decide` returns a verdict on the
 * bytes so far, or `timeoutMs` passes, or the connection ends. `decide` sees at most its
 * own limit plus one read. The socket is left paused with `putBack(bytes)` in front of its
 * input.
 */
function readStart<T>(
  socket: Socket,
  timeoutMs: number,
  decide: (bytes: Buffer) => { verdict: T; putBack: Buffer } | undefined,
  giveUp: (why: 'timeout' | 'closed', bytes: Buffer) => { verdict: T; putBack: Buffer },
): Promise<T> {
  return new Promise((resolve) => {
    let bytes: Buffer = Buffer.alloc(0);
    const finish = (outcome: { verdict: T; putBack: Buffer }) => {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('end', onClosed);
      socket.off('close', onClosed);
      socket.pause();
      if (outcome.putBack.length > 0 && !socket.destroyed) socket.unshift(outcome.putBack);
      resolve(outcome.verdict);
    };
    const onData = (chunk: Buffer) => {
      bytes = bytes.length === 0 ? chunk : Buffer.concat([bytes, chunk]);
      const outcome = decide(bytes);
      if (outcome) finish(outcome);
    };
    const onClosed = () => finish(giveUp('closed', bytes));
    const timer = setTimeout(() => finish(giveUp('timeout', bytes)), timeoutMs);
    // Until someone else owns the socket, a reset must not become an uncaught 'error'.
    socket.on('error', () => undefined);
    socket.on('data', onData);
    socket.once('end', onClosed);
    socket.once('close', onClosed);
    socket.resume();
  });
}

/**
 * Reads the PROXY header a trusted proxy sends first. A connection that starts with
 * anything else is 'none'; a header that is malformed, longer than the limits, or not
 * complete within `timeoutMs` is 'refused' (never buffered beyond the limits).
 */
export function readProxyHeader(socket: Socket, timeoutMs: number): Promise<HeaderRead> {
  const nothing = Buffer.alloc(0);
  return readStart<HeaderRead>(
    socket,
    timeoutMs,
    (bytes) => {
      const framing = frameProxyHeader(bytes);
      switch (framing.kind) {
        case 'more':
          return undefined;
        case 'none':
          return { verdict: { kind: 'none' }, putBack: bytes };
        case 'invalid':
          return { verdict: { kind: 'refused', reason: framing.reason }, putBack: nothing };
        case 'complete':
          try {
            return { verdict: { kind: 'header', header: parseProxyHeader(bytes.subarray(0, framing.length)) }, putBack: bytes.subarray(framing.length) };
          } catch (err) {
            // Anything but a ProxyHeaderError would be a parser bug: still a refusal, never a crash.
            const reason = err instanceof ProxyHeaderError ? err.message : `unreadable PROXY header (${String(err)})`;
            return { verdict: { kind: 'refused', reason }, putBack: nothing };
          }
      }
    },
    (why, bytes) => ({
      verdict:
        why === 'closed' ? { kind: 'refused', reason: 'connection closed before its PROXY header was complete', quiet: bytes.length === 0 }
        : { kind: 'refused', reason: bytes.length === 0 ? `no PROXY header within ${timeoutMs / 1000} s` : `PROXY header incomplete after ${timeoutMs / 1000} s` },
      putBack: nothing,
    }),
  );
}

/**
 * On a port where the client speaks first (implicit TLS: the ClientHello), reads just
 * enough to tell whether the connection starts with a PROXY header, and puts it all back.
 * Silence or a close before that counts as no header (the next reader handles it).
 */
export function startsWithProxyHeader(socket: Socket, timeoutMs: number): Promise<boolean> {
  return readStart<boolean>(
    socket,
    timeoutMs,
    (bytes) => {
      const signature = proxySignature(bytes);
      return signature === 'more' ? undefined : { verdict: signature === 'yes', putBack: bytes };
    },
    (_why, bytes) => ({ verdict: false, putBack: bytes }),
  );
}

/**
 * On a port where the server speaks first (the FTP greeting), a connection cannot be held
 * until it sends something: instead its first bytes are held back from the socket's 'data'
 * listeners until they show whether a PROXY header starts (at most SIGNATURE_BYTES).
 * Without one the held bytes go to the listeners as they were; with one `onHeader` is
 * called and the listeners never see them.
 */
export function watchForProxyHeader(socket: Socket, onHeader: () => void): void {
  const listeners = socket.listeners('data') as ((chunk: Buffer) => void)[];
  socket.removeAllListeners('data');
  let held: Buffer = Buffer.alloc(0);
  const sniff = (chunk: Buffer) => {
    held = held.length === 0 ? chunk : Buffer.concat([held, chunk]);
    const signature = proxySignature(held.subarray(0, SIGNATURE_BYTES));
    if (signature === 'more') return;
    socket.off('data', sniff);
    if (signature === 'yes') {
      onHeader();
      return;
    }
    for (const listener of listeners) socket.on('data', listener);
    for (const listener of listeners) listener.call(socket, held);
  };
  socket.on('data', sniff);
}
