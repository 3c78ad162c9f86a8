import { once } from 'node:events';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';

/**
 * A loopback listener handing each accepted socket to `onSocket` (paused by default, as
 * DFOS's passive listeners accept data connections); resolves once it listens.
 */
export async function listenLoopback(onSocket: (socket: Socket, server: Server) => void, pauseOnConnect = true): Promise<{ server: Server; port: number }> {
  const server = createServer({ pauseOnConnect }, (socket) => onSocket(socket, server));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { server, port: (server.address() as AddressInfo).port };
}

/** Connects to `port`, sends `data` and half-closes (errors ignored: tests check the receiving side). */
export function sendAndEnd(port: number, data: Buffer): Socket {
  const client = connect(port, '127.0.0.1', () => client.end(data));
  client.on('error', () => undefined);
  return client;
}
