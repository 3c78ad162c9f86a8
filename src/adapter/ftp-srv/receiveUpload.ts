import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { finished, pipeline } from 'node:stream/promises';
import type { WriteSink } from '../../storage/StorageBackend.js';
import { SharedBufferSocket } from '../../util/SharedBufferSocket.js';

/**
 * Receives an upload from the data connection into `sink` (through `stages`, e.g. the
 * user's rate or TYPE A conversion) and ends the sink; rejects when the connection fails
 * or the sink does (the sink's stream is then destroyed, which discards the upload).
 *
 * With no stages, a socket reading into the shared buffer (SharedBufferSocket) and a sink
 * that copies bytes in (WriteSink.copyIn), each read goes from the one shared buffer
 * straight into the sink's own memory: nothing is allocated per read. When the sink has no
 * room, reading stops (the client waits on TCP flow control) until it has.
 */
export async function receiveUpload(socket: Socket, stages: Duplex[], sink: WriteSink): Promise<void> {
  const copyIn = sink.copyIn?.bind(sink);
  const room = sink.room?.bind(sink);
  if (stages.length > 0 || !(socket instanceof SharedBufferSocket) || !copyIn || !room) {
    await pipeline([socket, ...stages, sink.stream]);
    return;
  }
  // A failing sink (or one destroyed below) ends the connection; its error is the upload's.
  sink.stream.on('error', (err) => socket.destroy(err));
  socket.consume((bytes) => {
    try {
      if (copyIn(bytes)) return true;
      room().then(
        () => socket.resume(),
        (err: unknown) => socket.destroy(err as Error),
      );
    } catch (err) {
      socket.destroy(err as Error);
    }
    return false;
  });
  socket.resume();
  try {
    await finished(socket, { writable: false });
  } catch (err) {
    sink.stream.destroy(err as Error);
    throw err;
  } finally {
    socket.consume(undefined);
  }
  sink.stream.end();
  await finished(sink.stream);
}
