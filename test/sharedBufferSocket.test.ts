import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import type { Socket } from 'node:net';
import test from 'ava';
import { SharedBufferSocket } from '../src/util/SharedBufferSocket.js';
import { listenLoopback, sendAndEnd } from './helpers/loopbackSocket.js';

/** SharedBufferSocket: an accepted connection moved into a socket that reads into one shared buffer. */

test('with a consumer every read goes to it, in the one shared buffer, and the bytes arrive exact; the old socket is gone for its server', async (t) => {
  const data = randomBytes(4 * 1024 * 1024 + 7);
  const received: Buffer[] = [];
  const arrays = new Set<ArrayBufferLike>();
  let serverClosed = false;
  const done = new Promise<Socket>((resolve) => {
    void listenLoopback((accepted, server) => {
      const socket = SharedBufferSocket.adopt(accepted);
      t.true(socket instanceof SharedBufferSocket);
      t.true(accepted.destroyed, 'the accepted socket is destroyed');
      server.close(() => (serverClosed = true)); // like a passive listener after its one connection
      (socket as SharedBufferSocket).consume((bytes) => {
        arrays.add(bytes.buffer);
        received.push(Buffer.from(bytes));
        return true;
      });
      socket.on('end', () => resolve(socket));
      socket.resume();
    }).then(({ port }) => sendAndEnd(port, data));
  });
  const socket = await done;
  t.true(Buffer.concat(received).equals(data));
  t.is(arrays.size, 1, 'every read landed in the same buffer');
  t.true(serverClosed, 'the listener closed: it no longer counts the moved connection');
  socket.destroy();
});

test('without a consumer it is an ordinary stream (reads copied out), and false from a consumer stops reading until resume()', async (t) => {
  const data = randomBytes(2 * 1024 * 1024);
  const { server, port } = await listenLoopback((accepted) => {
    const socket = SharedBufferSocket.adopt(accepted) as SharedBufferSocket;
    let calls = 0;
    let shared: ArrayBufferLike | undefined;
    socket.consume((bytes) => {
      calls++;
      shared = bytes.buffer;
      return false; // takes the first read's bytes, then stops
    });
    socket.resume();
    setTimeout(() => {
      t.is(calls, 1, 'no read after the consumer said stop');
      socket.consume(undefined);
      const chunks: Buffer[] = [];
      socket.on('data', (chunk: Buffer) => chunks.push(chunk));
      socket.on('end', () => {
        const rest = Buffer.concat(chunks);
        t.true(rest.equals(data.subarray(data.length - rest.length)), 'the stream delivers the rest, exact');
        t.false(chunks.some((c) => c.buffer === shared), 'stream chunks are copies, not the shared buffer');
        socket.destroy();
        server.emit('done');
      });
      socket.resume();
    }, 200);
  });
  sendAndEnd(port, data);
  await once(server, 'done');
  server.close();
});

test('a socket already reading is not moved', async (t) => {
  const { server, port } = await listenLoopback((accepted) => {
    const socket = SharedBufferSocket.adopt(accepted);
    t.is(socket, accepted);
    socket.destroy();
    server.emit('done');
  }, false);
  sendAndEnd(port, Buffer.from('x'));
  await once(server, 'done');
  server.close();
});
