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

export interface Pair {
  sender: Socket;
  received: Promise<{ bytes: Buffer; ended: boolean }>;
  receiver: Promise<Socket>;
  close(): void;
}

/** A loopback connection: `sender` is ours; the other end collects until FIN or reset. */
export async function socketPair(): Promise<Pair> {
  let resolveReceiver!: (s: Socket) => void;
  const receiver = new Promise<Socket>((r) => (resolveReceiver = r));
  const server = createServer((s) => resolveReceiver(s));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as { port: number };
  const sender = connect(port, '127.0.0.1');
  sender.on('error', () => undefined);
  await new Promise<void>((r) => sender.once('connect', r));
  const received = receiver.then(
    (s) =>
      new Promise<{ bytes: Buffer; ended: boolean }>((resolve) => {
        const chunks: Buffer[] = [];
        s.on('data', (d: Buffer) => chunks.push(d));
        s.on('end', () => resolve({ bytes: Buffer.concat(chunks), ended: true }));
        s.on('error', () => resolve({ bytes: Buffer.concat(chunks), ended: false }));
        s.on('close', () => resolve({ bytes: Buffer.concat(chunks), ended: false }));
      }),
  );
  return {
    sender,
    received,
    receiver,
    close: () => {
      sender.destroy();
      void receiver.then((s) => s.destroy());
      server.close();
    },
  };
}
