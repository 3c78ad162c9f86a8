import { randomInt } from 'node:crypto';
import { connect, createServer, type Server, type Socket } from 'node:net';
import type { FtpConnection, FtpConnector } from './internals.js';
import { normaliseAddress } from '../../util/address.js';
import { SharedBufferSocket } from '../../util/SharedBufferSocket.js';
import type { ProxyGate } from '../../proxy/ProxyGate.js';
import { ReplyError } from './replyError.js';
import { serverTls } from './tlsCommands.js';
import type { Session } from './Session.js';
import { sessionOf } from './Session.js';

/** Where passive listeners go and how long data connections may wait or stall. */
export interface DataChannelOptions {
  /** Address passive listeners bind to (the control listener's host). */
  bindHost: string;
  ports: PassivePortAllocator;
  /**
   * How long the client may take to open the announced data connection, and how long a
   * passive listener (or the connection it accepted) waits for a transfer command.
   */
  connectTimeoutMs: number;
  /** A data connection with no bytes either way for this long is cut (0 = never). */
  stallTimeoutMs: number;
  /** The PROXY protocol policy, when proxies are trusted: passive connections from them start with a header. */
  proxies?: ProxyGate;
}

/**
 * Picks passive ports from the whole configured range: a random start, every port tried
 * once (ftp-srv probed 5 sequential ports and then gave up). 0–0 lets the system choose.
 * It also knows how many of its listeners are open and how often the range was full,
 * for the metrics.
 */
export class PassivePortAllocator {
  /** Listeners it opened that have not emitted 'close' yet (some may be closing). */
  private readonly open = new Set<Server>();
  private exhausted = 0;

  constructor(
    private readonly min: number,
    private readonly max: number,
  ) {}

  /** Makes `server` listen on a free port of the range; returns the port. */
  async listen(server: Server, host: string): Promise<number> {
    if (this.min === 0 && this.max === 0) return this.track(server, await listenOn(server, 0, host));
    const size = this.max - this.min + 1;
    const start = randomInt(size);
    for (let i = 0; i < size; i++) {
      const port = this.min + ((start + i) % size);
      try {
        return this.track(server, await listenOn(server, port, host));
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code !== 'EADDRINUSE' && code !== 'EACCES') throw err;
      }
    }
    this.exhausted++;
    throw new Error(`all ${size} passive ports are in use`);
  }

  /** Ports with a listener open now, the range's size (0: any port), and how often it was full. */
  stats(): { inUse: number; total: number; exhausted: number } {
    let inUse = 0;
    // A closed listener stops listening at once but emits 'close' only after its accepted
    // connection ends: count the ones still listening.
    for (const server of this.open) if (server.listening) inUse++;
    return { inUse, total: this.min === 0 && this.max === 0 ? 0 : this.max - this.min + 1, exhausted: this.exhausted };
  }

  private track(server: Server, port: number): number {
    this.open.add(server);
    server.once('close', () => this.open.delete(server));
    return port;
  }
}

function listenOn(server: Server, port: number, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error) => {
      server.off('listening', onListening);
      reject(err);
    };
    const onListening = () => {
      server.off('error', onError);
      const address = server.address();
      resolve(typeof address === 'object' && address ? address.port : port);
    };
    server.once('error', onError);
    server.once('listening', onListening);
    server.listen({ port, host, exclusive: true });
  });
}

/** How long a passive listener no transfer used stays open for a connection already on its way (see DataChannel.end()). */
const QUEUED_CONNECTION_GRACE_MS = 1000;

/**
 * Closes `server` after its next connection (which its 'connection' handlers close, the
 * channel no longer awaiting it) or after `graceMs`, whichever comes first.
 */
function closeAfterQueued(server: Server, graceMs: number): void {
  const close = () => {
    clearTimeout(timer);
    server.close();
  };
  const timer = setTimeout(close, graceMs);
  server.once('connection', close);
}

/**
 * One session's data connection, replacing ftp-srv's connectors. Event-driven (ftp-srv
 * polled every 50 ms and answered 425 after 5 s), and leak-free: a passive listener is
 * closed as soon as its one connection arrives, when PASV/EPSV/PORT is repeated, when a
 * transfer ends or fails, when the session ends, and when no transfer command comes
 * within connectTimeoutMs of PASV/EPSV (so idle sessions cannot hold the passive range:
 * the listener, or the connection it accepted, is closed and the next transfer command
 * gets 425). Connections from an address other than the control connection's client
 * are refused and the port stays open for the right one; through a trusted proxy both
 * addresses are the ones the PROXY headers name. Active connections go only to the
 * client's own address on an unprivileged port (checked by the PORT/EPRT handlers).
 */
export class DataChannel implements FtpConnector {
  type: 'passive' | 'active' | false = false;
  dataSocket: Socket | null = null;
  dataServer: Server | null = null;
  private active: { host: string; port: number; family: 4 | 6 } | undefined;
  private waiters: { resolve: (s: Socket) => void; reject: (e: Error) => void }[] = [];
  private unusedTimer: NodeJS.Timeout | undefined;
  #timedOut = false;
  /** The data connection is usable (after its TLS handshake and session check, with PROT P). */
  private ready: Socket | null = null;
  /** Why the accepted data connection cannot be used (a failed TLS handshake or session check). */
  private failure: Error | undefined;

  constructor(
    private readonly connection: FtpConnection,
    private readonly options: DataChannelOptions,
  ) {}

  get socket(): Socket | null {
    return this.dataSocket;
  }

  /** PASV/EPSV: opens a fresh listener; returns its port. */
  async listenPassive(): Promise<number> {
    this.reset(false);
    const server = createServer({ pauseOnConnect: true });
    server.on('connection', (socket) => this.accept(server, socket));
    server.on('error', () => undefined);
    const port = await this.options.ports.listen(server, this.options.bindHost);
    this.dataServer = server;
    this.type = 'passive';
    this.armUnusedTimer();
    return port;
  }

  /**
   * True when the last passive listener was closed because no transfer command came in
   * time; cleared by the next end() (PASV/EPSV/PORT/EPRT or the end of a transfer).
   */
  get timedOut(): boolean {
    return this.#timedOut;
  }

  /** PORT/EPRT: the next transfer connects to this address. */
  setActive(host: string, port: number, family: 4 | 6): void {
    this.reset(false);
    this.active = { host, port, family };
    this.type = 'active';
  }

  /** Resolves with the data connection, connecting (active) or waiting for it (passive). */
  waitForConnection(): Promise<Socket> {
    this.clearUnusedTimer(); // a transfer command claims the channel
    if (this.ready) return Promise.resolve(this.ready);
    if (this.failure) return Promise.reject(this.failure);
    if (this.type === 'active' && this.active && !this.dataSocket) return this.connectActive(this.active);
    if (!this.dataSocket && (this.type !== 'passive' || !this.dataServer)) return Promise.reject(new Error('no data connection was set up'));
    return new Promise<Socket>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w.resolve !== resolve);
        reject(new Error('the client did not open the data connection'));
      }, this.options.connectTimeoutMs);
      this.waiters.push({
        resolve: (s) => {
          clearTimeout(timer);
          resolve(s);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
    });
  }

  /**
   * Closes the data connection and any listener; the channel is unset afterwards. Called
   * when a transfer command ends (also one refused before it used the connection, like a
   * RETR or MLSD of a missing path), on ABOR and when the session ends. A passive listener
   * that has not accepted a connection yet is closed only once its first connection came
   * in (and was closed in order), or after a short grace: a client that connected before
   * sending the command may still sit in the kernel's accept queue, and closing the
   * listener then would reset that connection, which a client can see before the reply
   * that says why (basic-ftp reported `read ECONNRESET (data socket)` instead of the 550).
   */
  end(): void {
    this.reset(true);
  }

  /** end(); `graceful`: an unused passive listener gets its grace (see end()) instead of closing at once. */
  private reset(graceful: boolean): void {
    this.clearUnusedTimer();
    this.#timedOut = false;
    const socket = this.dataSocket;
    if (socket && !socket.destroyed) {
      if (socket.writable) {
        socket.end();
        setTimeout(() => socket.destroy(), 2000).unref();
      } else socket.destroy();
    }
    const server = this.dataServer;
    if (server?.listening && graceful) closeAfterQueued(server, Math.min(this.options.connectTimeoutMs, QUEUED_CONNECTION_GRACE_MS));
    else server?.close();
    this.dataSocket = null;
    this.ready = null;
    this.failure = undefined;
    this.dataServer = null;
    this.active = undefined;
    this.type = false;
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w.reject(new Error('data connection closed'));
  }

  /**
   * Closes the passive listener (and any connection it accepted) unless a transfer command
   * claims it within connectTimeoutMs. While a transfer command runs (it may be reading a
   * directory before it waits for the connection) the check is repeated later instead.
   */
  private armUnusedTimer(): void {
    this.clearUnusedTimer();
    this.unusedTimer = setTimeout(() => {
      this.unusedTimer = undefined;
      if (sessionOf(this.connection)?.busy) return this.armUnusedTimer();
      this.reset(false);
      this.#timedOut = true;
    }, this.options.connectTimeoutMs);
    this.unusedTimer.unref();
  }

  private clearUnusedTimer(): void {
    clearTimeout(this.unusedTimer);
    this.unusedTimer = undefined;
  }

  private accept(server: Server, socket: Socket): void {
    const proxies = this.options.proxies;
    if (!proxies) {
      this.claim(server, socket, normaliseAddress(socket.remoteAddress));
      return;
    }
    // Through a trusted proxy the data connection starts with its own PROXY header
    // (HAProxy send-proxy-v2 on the passive range): the client it names must be the control's.
    void proxies.admit(socket).then((admission) => {
      if (!admission.ok) {
        const session = sessionOf(this.connection);
        const fields = { session: session?.id, peer: admission.peer, reason: admission.reason };
        session?.context.log.log(admission.quiet ? 'debug' : 'warn', 'PROXY protocol: data connection refused', fields);
        socket.destroy();
        return;
      }
      if (socket.destroyed) return;
      this.claim(server, socket, admission.origin.client);
    });
  }

  /** Uses `socket` (really from `client`) as the data connection if it is the one awaited, else closes it. */
  private claim(server: Server, socket: Socket, client: string | undefined): void {
    const session = sessionOf(this.connection);
    if (server !== this.dataServer || this.dataSocket || client === undefined || client !== session?.client) {
      if (session && server === this.dataServer && !this.dataSocket) {
        session.context.log.debug('Data connection refused: not from the client\'s address', { session: session.id, client: session.client, from: client });
      }
      socket.destroy();
      return;
    }
    server.close(); // one connection per PASV: free the port at once
    this.adopt(socket);
  }

  private adopt(socket: Socket): void {
    socket.on('error', () => undefined);
    // No Nagle: a listing or a file's last partial segment goes out at once instead of
    // waiting for the client's delayed ACK.
    socket.setNoDelay(true);
    const session = sessionOf(this.connection);
    if (session?.protectData && session.context.tls) {
      this.adoptSecure(socket, session);
      return;
    }
    this.use(socket);
  }

  /**
   * For an upload about to read the data connection: the connection moved into a socket
   * that reads into the buffer shared by all (see SharedBufferSocket and receiveUpload),
   * or the same socket when it cannot move (TLS, or reading already).
   */
  readIntoSharedBuffer(): Socket | null {
    const current = this.ready;
    if (!current) return current;
    const socket = SharedBufferSocket.adopt(current);
    if (socket !== current) this.adopt(socket); // a plain socket: its options, then use()
    return socket;
  }

  /**
   * PROT P: the data connection is TLS, the server side of the handshake (RFC 4217 §9,
   * whichever side connected). With session reuse required (the default), the client must
   * resume the control connection's TLS session: the session's context has its own ticket
   * keys, so only that client can; anyone else racing to the port gets 522 and no data.
   */
  private adoptSecure(socket: Socket, session: Session): void {
    const secure = serverTls(socket, session);
    secure.on('error', () => undefined);
    this.dataSocket = secure;
    const timer = setTimeout(() => secure.destroy(new Error('TLS handshake on the data connection timed out')), this.options.connectTimeoutMs);
    timer.unref();
    const fail = (err: Error) => {
      clearTimeout(timer);
      if (this.dataSocket !== secure || this.ready) return;
      this.failure = err;
      const waiters = this.waiters;
      this.waiters = [];
      for (const w of waiters) w.reject(err);
    };
    secure.once('close', () => fail(new ReplyError(425, 'The data connection closed before its TLS handshake completed')));
    secure.once('secure', () => {
      clearTimeout(timer);
      if (session.context.tls?.sessionReuse === 'required' && !secure.isSessionReused()) {
        fail(new ReplyError(522, "Data connection refused: it must reuse the control connection's TLS session"));
        secure.destroy();
        return;
      }
      this.use(secure);
    });
  }

  private use(socket: Socket): void {
    if (this.options.stallTimeoutMs > 0) {
      socket.setTimeout(this.options.stallTimeoutMs, () => socket.destroy(new Error('data connection stalled')));
    }
    this.dataSocket = socket;
    this.ready = socket;
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w.resolve(socket);
  }

  private connectActive(target: { host: string; port: number; family: 4 | 6 }): Promise<Socket> {
    return new Promise((resolve, reject) => {
      const options = { host: target.host, port: target.port, family: target.family };
      // A plain connection reads into the shared buffer from the start (an accepted one is
      // moved there when an upload begins: readIntoSharedBuffer).
      const socket = sessionOf(this.connection)?.protectData ? connect(options) : SharedBufferSocket.connect(options);
      const timer = setTimeout(() => socket.destroy(new Error('active data connection timed out')), this.options.connectTimeoutMs);
      socket.once('connect', () => {
        clearTimeout(timer);
        // A plain connection waits paused for the transfer; a TLS one must keep reading for
        // its handshake (a paused outgoing socket never delivers the ClientHello).
        if (!sessionOf(this.connection)?.protectData) socket.pause();
        this.waiters.push({ resolve, reject });
        this.adopt(socket);
      });
      socket.once('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
    });
  }
}
