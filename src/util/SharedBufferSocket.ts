import { Socket, type OnReadOpts, type SocketConstructorOpts, type TcpNetConnectOpts } from 'node:net';

/** The most bytes one read takes (as Node's own socket reads). */
export const READ_BYTES = 64 << 10;

/** The one buffer every adopted socket reads into: each read is handed on before the next one. */
const shared = Buffer.allocUnsafeSlow(READ_BYTES);

/** Takes one read's bytes, valid only during the call; false stops reading until resume(). */
export type ReadConsumer = (bytes: Buffer) => boolean;

/** The parts of a net.Socket Node keeps private that adopting its connection needs. */
interface SocketInternals {
  _handle: { reading?: boolean } | null;
}

/**
 * A TCP connection whose reads land in one buffer shared by every such socket in the
 * process, instead of a fresh 64 KiB buffer per read.
 *
 * Why: each buffer Node allocates for a read is memory the garbage collector must track;
 * with 200 parallel uploads the reads kept outliving young-generation collections, and
 * their 2 GB started a full collection every ~64 MB received (a quarter of the server's
 * CPU). Node offers reads into a buffer of one's own (the `onread` option) only to sockets
 * it creates, not to accepted ones: adopt() moves an accepted connection, before its first
 * read, into such a socket; connect() makes an outgoing one.
 *
 * With a consumer (consume()), every read goes to it and nothing is kept. Without one, the
 * socket is an ordinary stream: each read is copied into a buffer of its own and pushed, so
 * pipes and 'data' listeners work as on any socket.
 */
export class SharedBufferSocket extends Socket {
  private consumer: ReadConsumer | undefined;

  private constructor(handle: unknown) {
    let self: SharedBufferSocket | undefined;
    const onread: OnReadOpts = { buffer: shared, callback: (bytes) => self!.deliver(shared.subarray(0, bytes)) };
    // `handle` is Node's own option for wrapping an accepted connection (not in its types).
    super({ handle, pauseOnCreate: true, onread } as SocketConstructorOpts);
    self = this;
  }

  /**
   * The connection of `socket` (accepted paused, not read from yet) in a SharedBufferSocket,
   * paused; `socket` is destroyed without closing the connection (its server counts it as
   * gone). Returns `socket` itself when it cannot be moved (not a plain net.Socket, already
   * reading or read from).
   */
  static adopt(socket: Socket): Socket {
    if (Object.getPrototypeOf(socket) !== Socket.prototype) return socket; // TLS, or adopted already
    const internals = socket as unknown as SocketInternals;
    const handle = internals._handle;
    if (handle === null || handle === undefined || handle.reading !== false || socket.readableLength > 0 || socket.destroyed) return socket;
    internals._handle = null;
    const adopted = new SharedBufferSocket(handle);
    socket.destroy();
    return adopted;
  }

  /** A new outgoing connection reading into the shared buffer, paused (as adopt() leaves an accepted one). */
  static connect(options: TcpNetConnectOpts): SharedBufferSocket {
    const socket = new SharedBufferSocket(undefined);
    socket.pause(); // so that connecting does not start reading
    socket.connect(options);
    return socket;
  }

  /** Hands every read to `consumer` from now on (undefined: back to an ordinary stream). */
  consume(consumer: ReadConsumer | undefined): void {
    this.consumer = consumer;
  }

  private deliver(bytes: Buffer): boolean {
    if (this.consumer) return this.consumer(bytes);
    return this.push(Buffer.from(bytes));
  }
}
