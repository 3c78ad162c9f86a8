import test from 'ava';
import { readFile } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { TLSSocket, connect as tlsConnect } from 'node:tls';
import { endedNormally } from '../src/adapter/ftp-srv/transferCommands.js';
import { tempDir } from './helpers/clientFixtures.js';
import { listenLoopback } from './helpers/loopbackSocket.js';
import { makeCertificate } from './helpers/tlsFixtures.js';

/**
 * endedNormally: how an upload's data connection is judged complete. A client that resets
 * its connection while the server has not read everything yet makes the kernel drop the
 * unread bytes and report a plain end of stream; that end must not pass for the client's
 * FIN. Real loopback connections, plain and TLS (PROT P); the server side reads only after
 * the reset, so the reset is always behind unread bytes.
 */

/** A server-side socket, paused until `resume`, and the client socket connected to it. */
async function pausedPair(): Promise<{ server: Socket; client: Socket; close(): void }> {
  let accepted!: (s: Socket) => void;
  const got = new Promise<Socket>((r) => (accepted = r));
  const { server: listener, port } = await listenLoopback((s) => accepted(s));
  const client = connect(port, '127.0.0.1');
  client.on('error', () => undefined);
  const server = await got;
  listener.close();
  return { server, client, close: () => (server.destroy(), client.destroy()) };
}

async function outcome(check: () => Promise<void>): Promise<string> {
  return check().then(
    () => 'complete',
    (err: NodeJS.ErrnoException) => `failed (${err.code ?? err.message})`,
  );
}

test('plain: a reset behind unread bytes is not a normal end; a FIN is', async (t) => {
  const reset = await pausedPair();
  t.teardown(() => reset.close());
  reset.server.on('error', () => undefined);
  reset.server.on('data', () => undefined);
  const ended = endedNormally(reset.server);
  reset.client.write(Buffer.alloc(500_000, 1));
  await new Promise((r) => setTimeout(r, 100));
  reset.client.resetAndDestroy();
  await new Promise((r) => setTimeout(r, 100));
  reset.server.resume();
  t.regex(await outcome(ended), /^failed/);

  const fin = await pausedPair();
  t.teardown(() => fin.close());
  fin.server.on('data', () => undefined);
  const finished = endedNormally(fin.server);
  fin.client.end(Buffer.alloc(500_000, 1));
  fin.server.resume();
  t.is(await outcome(finished), 'complete');
});

test('TLS (PROT P): a reset behind unread bytes is not a normal end; a TLS close and FIN is', async (t) => {
  const cert = await makeCertificate(await tempDir(t, 'dfos-ended-'));
  const options = { isServer: true, key: await readFile(cert.key), cert: await readFile(cert.cert) };
  for (const how of ['reset', 'end'] as const) {
    const pair = await pausedPair();
    t.teardown(() => pair.close());
    const server = new TLSSocket(pair.server, options);
    server.on('error', () => undefined);
    server.on('data', () => undefined);
    const ended = endedNormally(server);
    const client = tlsConnect({ socket: pair.client, ca: cert.pem, servername: 'localhost' });
    client.on('error', () => undefined);
    pair.server.resume(); // the handshake
    await new Promise<void>((r) => client.once('secureConnect', () => r()));
    server.pause();
    await new Promise<void>((r) => client.write(Buffer.alloc(500_000, 1), () => r()));
    if (how === 'reset') {
      await new Promise((r) => setTimeout(r, 100));
      pair.client.resetAndDestroy();
      await new Promise((r) => setTimeout(r, 100));
    } else {
      client.end();
    }
    server.resume();
    t.regex(await outcome(ended), how === 'reset' ? /^failed/ : /^complete$/, how);
  }
});
