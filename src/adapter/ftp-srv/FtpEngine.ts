import { EventEmitter } from 'node:events';
import type { AddressInfo } from 'node:net';
import type winston from 'winston';
import type { EngineHooks, ProtocolEngine } from '../../core/ProtocolEngine.js';
import type { StorageCapabilities } from '../../storage/StorageBackend.js';
import type { TlsSettings } from '../../tls/TlsSettings.js';
import { bunyanAdapter } from './bunyanLogger.js';
import { DataChannel, PassivePortAllocator } from './DataChannel.js';
import { FtpSrv, type FtpConnection, type FtpServerInternal } from './internals.js';
import { installFtpSrvPatches } from './installPatches.js';
import { formatListLine } from './listFormat.js';
import { describeOutcome } from './replyError.js';
import { Session, sessionOf, type SessionContext } from './Session.js';
import { transferFailure } from './transferCommands.js';

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
  /** What the storage backend can do, so FEAT advertises only what works. */
  capabilities: StorageCapabilities;
  /** What the engine asks of the server: logins and session ends. */
  hooks: EngineHooks;
  /** FTPS policy and credentials; undefined where TLS is off. */
  tls?: TlsSettings;
}

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
    this.ftp.on('connect', ({ connection }: { connection: FtpConnection }) => this.attach(connection));
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
    return { address: bound.address, port: bound.port };
  }

  /** Stops accepting new control connections; existing sessions continue. */
  stopAccepting(): void {
    if (this.ftp.server.listening) this.ftp.server.close();
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

  /** Destroys every remaining socket at once (last resort after the drain). */
  destroyAll(): void {
    for (const session of this.live) {
      session.connection.connector?.dataSocket?.destroy();
      session.connection.commandSocket.destroy();
    }
    this.stopAccepting();
  }

  private attach(connection: FtpConnection): void {
    // Each reply is one complete write, so Nagle's algorithm only adds latency: with it, a
    // reply written while the previous one is unacknowledged waits for the client's
    // delayed ACK (~40 ms), e.g. 331 then 230 for a pipelined USER + PASS.
    connection.commandSocket.setNoDelay(true);
    const session = new Session(connection, this.options.session);
    const dataTimeout = this.options.dataTimeoutMs;
    connection.connector = new DataChannel(connection, {
      bindHost: this.options.host,
      ports: this.ports,
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
