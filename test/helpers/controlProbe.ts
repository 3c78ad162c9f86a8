import { connect, type Socket } from 'node:net';
import { REPLY_MS } from './rawFtp.js';

/**
 * Bare control connections from a chosen loopback source address (127.0.0.x), for tests of
 * what the server does per client address: caps and bans.
 */

/**
 * Opens a control connection from `localAddress`, sends `lines` (pipelined) after the
 * greeting, and resolves with every reply line once the server closes the connection.
 */
export function converse(port: number, localAddress: string, lines: string[]): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, localAddress });
    let text = '';
    let sent = false;
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`connection not closed within ${REPLY_MS} ms; got ${JSON.stringify(text)}`));
    }, REPLY_MS);
    socket.on('error', () => undefined);
    socket.on('data', (d: Buffer) => {
      text += d.toString('latin1');
      if (!sent && text.includes('\r\n')) {
        sent = true;
        if (text.startsWith('220')) socket.write(lines.map((l) => `${l}\r\n`).join(''));
      }
    });
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(text.split('\r\n').filter((l) => l !== ''));
    });
  });
}

/** One failed login (then QUIT) from `localAddress`: the reply lines. */
export const failLogin = (port: number, localAddress: string, user = 'alice') => converse(port, localAddress, [`USER ${user}`, 'PASS wrong', 'QUIT']);

/** The first line a new connection from `localAddress` gets (then QUIT). */
export async function greeting(port: number, localAddress: string): Promise<string> {
  return (await converse(port, localAddress, ['QUIT']))[0] ?? '';
}

/** Opens a control connection (from `localAddress`) and returns it with its first reply line; the caller closes it. */
export async function firstLine(port: number, localAddress = '127.0.0.1'): Promise<{ socket: Socket; line: string }> {
  const socket = connect({ host: '127.0.0.1', port, localAddress });
  socket.on('error', () => undefined);
  let text = '';
  const line = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no reply within ${REPLY_MS} ms`)), REPLY_MS);
    socket.on('data', (d: Buffer) => {
      text += d.toString('latin1');
      const end = text.indexOf('\r\n');
      if (end !== -1) {
        clearTimeout(timer);
        resolve(text.slice(0, end));
      }
    });
  });
  return { socket, line };
}
