import { EventEmitter } from 'node:events';
import type { AddressInfo } from 'node:net';
import type winston from 'winston';
import type { EngineHooks, EngineSettings, EngineStats, ProtocolEngine } from '../../core/ProtocolEngine.js';
import type { StorageCapabilities } from '../../storage/StorageBackend.js';
import type { TlsSettings } from '../../tls/TlsSettings.js';
import { createServer as createNetServer, type Server as NetServer, type Socket } from 'node:net';
import { TLSSocket, type SecureContext } from 'node:tls';
import { bunyanAdapter } from './bunyanLogger.js';
import { DataChannel, PassivePortAllocator } from './DataChannel.js';
import { ConnectionClass, FtpSrv, type FtpConnection, type FtpServerInternal } from './internals.js';
import { installFtpSrvPatches } from './installPatches.js';
import { formatListLine } from './listFormat.js';
import { normaliseAddress } from '../../util/address.js';
import { watchForProxyHeader } from '../../proxy/connectionStart.js';
import { ProxyGate, UNTRUSTED_HEADER, type ConnectionOrigin } from '../../proxy/ProxyGate.js';
import { describeOutcome } from './replyError.js';
import { Session, sessionOf, type SessionContext } from './Session.js';
import { transferFailure } from './transferCommands.js';
import { describeTls } from './tlsCommands.js';

/** What the engine needs from DFOS. */
export interface FtpEngineOptions {
  host: string;
  port: number;
  pasvMin: number;
  pasvMax: number;
  /** IPv4 address announced in PASV replies; default: the address the client connected to. */
  pasvAddress?: string;
  /** A data connection idle for this long is cut with 426 (0 = never). */
  dataTimeoutMs: number;
  log: winston.Logger;
  session: SessionContext;
  /** FTPS (explicit AUTH TLS, and implicit on tls.implicitPort); undefined: TLS off. */
  tls?: TlsSettings;
  /** What the storage backend can do, so FEAT advertises only what works. */
  capabilities: StorageCapabilities;
  /** What the engine asks of the server: logins and session ends. */
  hooks: EngineHooks;
  /** Connection caps (0 = no limit): past them a new connection gets 421 before the greeting. */
  limits: { maxSessions: number; maxSessionsPerIp: number };
  /**
   * Load balancers whose connections (control, implicit TLS and passive data) must start
   * with a PROXY protocol header naming the real client; empty or absent: PROXY protocol off.
   */
  trustedProxies?: readonly string[];
}

/** A control port, as refusals are logged. */
type ControlPort = 'control' | 'implicit TLS';

/**
 * DFOS's wrapper around one ftp-srv instance: it applies the patches, creates it without
 * the SIGTERM/SIGINT/SIGQUIT handlers ftp-srv installs (they call process.exit, #280),
 * attaches a Session to every connection, and exposes listen / stop-accepting / the live
 * sessions, so the rest of DFOS never touches ftp-srv directly.
 */
export class FtpEngine extends EventEmitter implements ProtocolEngine {
  private readonly ftp: FtpServerInternal;
  private readonly live = new Set<Session>();
  private readonly ports: PassivePortAllocator;
  private implicit: NetServer | undefined;
  /** The PROXY protocol policy; undefined when no proxy is trusted (then no header is ever read). */
  private readonly proxies: ProxyGate | undefined;
  /** Control connections still waiting for their PROXY header (cut when the engine stops accepting). */
  private readonly admitting = new Set<Socket>();
  /** Where each proxied control socket really comes from (a direct one: its peer address). */
  private readonly origins = new WeakMap<Socket, ConnectionOrigin>();

  constructor(private readonly options: FtpEngineOptions) {
    super();
    installFtpSrvPatches();
    this.ports = new PassivePortAllocator(options.pasvMin, options.pasvMax);
    const host = options.host.includes(':') ? `[${options.host}]` : options.host;
    const signals = ['SIGTERM', 'SIGINT', 'SIGQUIT'] as const;
    const before = new Map(signals.map((s) => [s, new Set(process.listeners(s))]));
    this.ftp = new FtpSrv({
      url: `ftp://${host}:${options.port}`,
      pasv_min: options.pasvMin,
      pasv_max: options.pasvMax,
      dfos_pasv_address: options.pasvAddress,
      dfos_capabilities: options.capabilities,
      // Unused (DFOS's PASV handler announces the address) but set, so ftp-srv does not
      // warn at startup that passive mode is unavailable.
      pasv_url: (clientIp: string) => clientIp,
      anonymous: false,
      greeting: null,
      timeout: 0,
      file_format: formatListLine,
      log: bunyanAdapter(options.log),
    });
    for (const signal of signals) {
      for (const listener of process.listeners(signal)) {
        if (!before.get(signal)!.has(listener)) process.removeListener(signal, listener);
      }
    }
    // A client's FIN must not close the connection before the commands it sent are answered.
    (this.ftp.server as { allowHalfOpen?: boolean }).allowHalfOpen = true;
    const handlers = this.ftp.server.listeners('connection') as ((socket: Socket) => void)[];
    if (handlers.length !== 1) throw new Error(`ftp-srv internals changed: expected one connection handler, found ${handlers.length}`);
    this.ftp.server.removeListener('connection', handlers[0]!);
    if (options.trustedProxies && options.trustedProxies.length > 0) {
      const gate = new ProxyGate(options.trustedProxies);
      this.proxies = gate;
      // The PROXY header comes before everything else: the ban and cap checks and the greeting use its address.
      this.ftp.server.on('connection', (socket: Socket) => this.admit(gate, socket, 'control', () => this.greet(socket)));
    } else {
      this.ftp.server.on('connection', (socket: Socket) => this.greet(socket));
    }
    this.ftp.on('login', ({ connection, username, password }: { connection: FtpConnection; username: string; password: string }, resolve: (r: unknown) => void, reject: (e: Error) => void) => {
      const session = sessionOf(connection);
      if (!session) return reject(new Error('no session'));
      const describe = (action: Parameters<typeof describeOutcome>[0], error?: unknown) => describeOutcome(action, error, (err) => transferFailure(connection, err));
      options.hooks.login(session, username, password, describe).then((fs) => {
        session.user = fs.user;
        resolve({ fs });
      }, reject);
    });
    this.ftp.on('client-error', ({ context, error }: { context: string; error: Error }) => {
      options.log.debug('Client connection error', { context, err: error?.message });
    });
    this.ftp.on('server-error', ({ error }: { error: Error }) => {
      options.log.error('FTP listener error', { err: error?.message });
    });
  }

  /**
   * A new control socket (paused): its ftp-srv connection, DFOS's session on it (or a 421
   * refusal), then the greeting, after which the socket reads.
   *
   * Does what ftp-srv's own connection handler did, minus what DFOS never used: that one
   * also kept every connection in a table and counted it (Object.keys, twice per new
   * connection: O(open sessions) on every connect) for 'connect'/'disconnect' events and
   * its own close(), and armed a 1 s timer per closed connection. DFOS keeps its sessions
   * itself (`live`), and ftp-srv's connection already closes its sockets on 'close'.
   */
  private greet(socket: Socket): void {
    const connection = new ConnectionClass(this.ftp, { log: this.ftp.log, socket });
    this.attach(connection);
    // ftp-srv's greeting without a greeting option or anonymous logins.
    void connection.reply(220, 'Ready').then(
      () => socket.resume(),
      () => socket.destroy(),
    );
  }

  /** Starts listening; resolves with the bound address (port 0 picks a free port). */
  async listen(): Promise<{ address: string; port: number }> {
    const server = this.ftp.server;
    const others = server.listeners('error') as ((err: Error) => void)[];
    server.removeAllListeners('error');
    try {
      await this.ftp.listen();
    } finally {
      for (const l of others) server.on('error', l);
    }
    const bound = this.ftp.server.address() as AddressInfo;
    if (this.options.tls?.implicitPort !== undefined) await this.listenImplicit(this.options.tls.implicitPort);
    return { address: bound.address, port: bound.port };
  }

  /**
   * Implicit FTPS (`tls.implicitPort`): TLS from the first byte. Each connection is wrapped
   * with a fresh per-connection context (its own session tickets, for data-connection
   * session reuse) and handed to ftp-srv like a plain one.
   */
  private async listenImplicit(port: number): Promise<void> {
    const tls = this.options.tls!;
    const secureAndGreet = (plain: Socket, origin?: ConnectionOrigin) => {
      const context = tls.sessionContext();
      const secure = new TLSSocket(plain, { isServer: true, secureContext: context, requestCert: false });
      (secure as TLSSocket & { dfosContext?: unknown }).dfosContext = context;
      secure.on('error', () => secure.destroy());
      if (origin) this.origins.set(secure, origin);
      this.greet(secure);
    };
    const gate = this.proxies;
    const server = createNetServer({ pauseOnConnect: true, allowHalfOpen: true }, (plain) => {
      if (gate) this.admit(gate, plain, 'implicit TLS', (origin) => secureAndGreet(plain, origin));
      else secureAndGreet(plain);
    });
    server.on('error', (err) => this.options.log.error('Implicit TLS listener error', { err: err.message }));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ port, host: this.options.host }, () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.implicit = server;
  }

  /** The implicit TLS listener's port, if there is one. */
  get implicitPort(): number | undefined {
    const address = this.implicit?.address();
    return typeof address === 'object' && address ? address.port : undefined;
  }

  /** Stops accepting new control connections; existing sessions continue. */
  stopAccepting(): void {
    if (this.implicit?.listening) this.implicit.close();
    if (this.ftp.server.listening) this.ftp.server.close();
    for (const socket of this.admitting) socket.destroy();
    this.admitting.clear();
  }

  /**
   * A new control connection when proxies are trusted: from a trusted proxy, its PROXY
   * header is read first (the bytes after it stay in the socket); on the implicit TLS port,
   * where the client speaks first, a direct connection's first bytes are checked for a
   * header too. A refusal closes the socket without a reply (nothing FTP has started) and is
   * logged once with the peer and the reason. `next` gets the connection's origin.
   */
  private admit(gate: ProxyGate, socket: Socket, port: ControlPort, next: (origin: ConnectionOrigin) => void): void {
    this.admitting.add(socket);
    void gate.admit(socket, { clientSpeaksFirst: port === 'implicit TLS' }).then((admission) => {
      this.admitting.delete(socket);
      if (!admission.ok) {
        // Cut by stopAccepting, or a health check that connected and closed: no warning.
        const quiet = admission.quiet === true || (socket.destroyed && !this.ftp.server.listening);
        this.options.log.log(quiet ? 'debug' : 'warn', 'PROXY protocol: connection refused', { peer: admission.peer, port, reason: admission.reason });
        socket.destroy();
        return;
      }
      if (socket.destroyed) return;
      if (admission.origin.proxy !== undefined) this.origins.set(socket, admission.origin);
      next(admission.origin);
    });
  }

  /** Sessions whose control connection is open. */
  sessions(): Session[] {
    return [...this.live];
  }

  /** Resolves when no session is left, or after `timeoutMs`; returns how many remain. */
  waitForSessions(timeoutMs: number): Promise<number> {
    if (this.live.size === 0) return Promise.resolve(0);
    return new Promise((resolve) => {
      const done = () => {
        if (this.live.size > 0) return;
        clearTimeout(timer);
        this.off('session-closed', done);
        resolve(0);
      };
      const timer = setTimeout(() => {
        this.off('session-closed', done);
        resolve(this.live.size);
      }, timeoutMs);
      this.on('session-closed', done);
    });
  }

  /** New limits and timeouts (SIGHUP): read by each connection when it opens, so open ones keep theirs. */
  configure(settings: EngineSettings): void {
    const { maxSessions, maxSessionsPerIp, maxLoginAttempts, idleTimeoutMs, loginTimeoutMs, dataTimeoutMs } = settings;
    this.options.limits = { maxSessions, maxSessionsPerIp };
    this.options.session = { ...this.options.session, maxLoginAttempts, idleTimeoutMs, loginTimeoutMs };
    this.options.dataTimeoutMs = dataTimeoutMs;
  }

  /** Destroys every remaining socket at once (last resort after the drain). */
  destroyAll(): void {
    for (const session of this.live) {
      session.connection.connector?.dataSocket?.destroy();
      session.connection.commandSocket.destroy();
    }
    this.stopAccepting();
  }

  /** Passive ports in use and the range's size, for the metrics. */
  stats(): EngineStats {
    const ports = this.ports.stats();
    return { passivePortsInUse: ports.inUse, passivePortRangeSize: ports.total, passivePortsExhausted: ports.exhausted };
  }

  /**
   * The reason a new connection from `client` is refused, or undefined: over the server's
   * cap, or over the cap for one address (a client hammering connections cannot take the
   * whole server). Counted over open connections, logged in or not; the per-address count
   * includes the other nodes' (as the core last heard), the server cap is this node's.
   */
  private overCap(client: string | undefined): string | undefined {
    const { maxSessions, maxSessionsPerIp } = this.options.limits;
    if (maxSessions > 0 && this.live.size >= maxSessions) return `Too many connections (the server allows ${maxSessions}); try again later`;
    if (maxSessionsPerIp > 0) {
      let fromClient = this.options.hooks.peerSessionsFrom?.(client) ?? 0;
      for (const s of this.live) if (s.client === client) fromClient++;
      if (fromClient >= maxSessionsPerIp) return `Too many connections from your address (${maxSessionsPerIp} allowed); close some and try again`;
    }
    return undefined;
  }

  /** Answers 421 before the greeting and closes (ftp-srv's greeting is swallowed). */
  private refuse(connection: FtpConnection, origin: ConnectionOrigin, reason: string): void {
    const socket = connection.commandSocket;
    connection.reply = () => Promise.resolve();
    this.options.log.info('Connection refused', { client: origin.client, proxy: origin.proxy, reason });
    socket.on('error', () => undefined);
    this.options.hooks.onReply?.(421);
    socket.end(`421 ${reason}\r\n`);
    setTimeout(() => socket.destroy(), 2000).unref();
  }

  private attach(connection: FtpConnection): void {
    const socket = connection.commandSocket;
    const origin = this.origins.get(socket) ?? { client: normaliseAddress(socket.remoteAddress) };
    const client = origin.client;
    const refusal = this.options.hooks.refusal?.(client) ?? this.overCap(client);
    if (refusal !== undefined) {
      this.refuse(connection, origin, refusal);
      return;
    }
    // ftp-srv's own log lines name the real client too, and the proxy.
    if (origin.proxy !== undefined) connection.log = connection.log.child({ ip: client, proxy: origin.proxy });
    // Each reply is one complete write, so Nagle's algorithm only adds latency: with it, a
    // reply written while the previous one is unacknowledged waits for the client's
    // delayed ACK (~40 ms), e.g. 331 then 230 for a pipelined USER + PASS.
    connection.commandSocket.setNoDelay(true);
    const session = new Session(
      connection,
      {
        ...this.options.session,
        tls: this.options.tls,
        refusal: (c) => this.options.hooks.refusal?.(c),
        onReply: this.options.hooks.onReply,
      },
      origin,
    );
    if (this.proxies && origin.proxy === undefined && !(socket instanceof TLSSocket)) {
      // A direct client on the plain port, where the server speaks first: its first bytes
      // must not be a PROXY header (the implicit TLS port checked them before the handshake).
      watchForProxyHeader(socket, () => {
        this.options.log.warn('PROXY protocol: connection refused', { peer: client, port: 'control', reason: UNTRUSTED_HEADER });
        void session.close421('PROXY protocol header refused: this address is not a trusted proxy');
      });
    }
    if (connection.commandSocket instanceof TLSSocket) {
      // Implicit FTPS: the control connection is TLS already, data connections always are.
      const secure = connection.commandSocket as TLSSocket & { dfosContext?: SecureContext };
      session.secureContext = secure.dfosContext;
      session.protectData = true;
      session.pbszSent = true;
      session.feed.lines.watchAuthTls = false;
      secure.once('secure', () => {
        session.tls = describeTls(secure);
      });
    }
    const dataTimeout = this.options.dataTimeoutMs;
    connection.connector = new DataChannel(connection, {
      bindHost: this.options.host,
      ports: this.ports,
      ...(this.proxies ? { proxies: this.proxies } : {}),
      connectTimeoutMs: dataTimeout > 0 ? Math.min(dataTimeout, 30_000) : 30_000,
      stallTimeoutMs: dataTimeout,
    });
    this.live.add(session);
    connection.commandSocket.once('close', () => {
      session.dispose();
      this.live.delete(session);
      this.options.hooks.onSessionClosed(session);
      this.emit('session-closed', session);
    });
  }
}
