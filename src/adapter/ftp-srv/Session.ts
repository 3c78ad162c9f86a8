import type { SecureContext } from 'node:tls';
import type { Socket } from 'node:net';
import type winston from 'winston';
import type { TlsSettings } from '../../tls/TlsSettings.js';
import type { EngineSession, SessionActivity } from '../../core/ProtocolEngine.js';
import type { ConnectionOrigin } from '../../proxy/ProxyGate.js';
import { coalescedReply } from './coalescedReply.js';
import { CommandFeed } from './commandFeed.js';
import { runControlItem } from './controlItem.js';
import { MLST_FACTS, type MlstFact } from './mlsxFacts.js';
import type { FtpConnection } from './internals.js';

/** Server-wide settings and sinks every session needs. */
export interface SessionContext {
  /** Close an idle control connection after this many ms (0 = never). */
  idleTimeoutMs: number;
  /**
   * Close a connection that has not logged in this many ms after it opened (0 = never),
   * even if it keeps sending commands: unauthenticated connections cannot be held open.
   */
  loginTimeoutMs: number;
  log: winston.Logger;
  /** FTPS settings, or undefined when TLS is off. */
  tls?: TlsSettings;
  /** Failed logins on one connection before it is closed with 421 (0 = no limit). */
  maxLoginAttempts?: number;
  /** Why this client must now be disconnected (e.g. banned), asked after a failed login. */
  refusal?: (client: string | undefined) => string | undefined;
  /** Told the code of every reply sent on the control connection (reply-class metrics). */
  onReply?: (code: number) => void;
}

const sessions = new WeakMap<FtpConnection, Session>();

/** How long a closing reply (421) may wait for a client that does not read before the connection is cut. */
const CLOSE_WRITE_MS = 2000;

/**
 * DFOS's state for one control connection, kept beside ftp-srv's connection object:
 * who is logged in, whether a data transfer is running (which suspends the idle timeout
 * and makes shutdown wait), the ordered command queue, and the audit identity.
 */
export class Session implements EngineSession {
  readonly id: string;
  /** The client's address (through a trusted proxy: the one its PROXY header named). */
  readonly client: string | undefined;
  /** The trusted proxy (load balancer) the control connection came through, if any. */
  readonly proxy: string | undefined;
  /** The address the client connected to on that proxy (its PROXY header's destination), if known. */
  readonly proxiedTo: string | undefined;
  readonly startedAt = Date.now();
  user: string | undefined;
  /** Facts MLSD/MLST report (OPTS MLST selects them). */
  mlstFacts: readonly MlstFact[] = MLST_FACTS;
  /** A data transfer (LIST, NLST, RETR, STOR, APPE, STOU) is in progress. */
  busy = false;
  /** The server is shutting down: close with 421 as soon as the session is not busy. */
  draining = false;
  /** Why the running transfer was aborted (by the server, or by the client's ABOR). */
  abortReason: string | undefined;
  /** `EPSV ALL` was sent: only EPSV may set up data connections (RFC 2428). */
  epsvAll = false;
  /** The client's ABOR cut a transfer; the ABOR itself is then answered 226. */
  abortedByClient = false;
  /** Total replies sent on the control connection (to guarantee one per command). */
  replyCount = 0;
  /** Sends a reply without counting it as a command's answer. */
  private readonly sendReply: (options: Parameters<FtpConnection['reply']>[0], letters: Parameters<FtpConnection['reply']>[1][]) => Promise<void>;
  /** The control connection's input: commands waiting to run, in arrival order, bounded. */
  readonly feed: CommandFeed;
  closed = false;
  /** How the session ended (QUIT 221, or 421 with the reason), for the logout record. */
  ending: { code?: number; reason: string } | undefined;
  /** The running data command (for STAT during a transfer). */
  transferDirective: string | undefined;
  /** The control connection's TLS (protocol and cipher), once AUTH TLS or the implicit port secured it. */
  tls: string | undefined;
  /** Failed logins on this connection so far. */
  failedLogins = 0;
  /** PROT P: data connections are TLS. */
  protectData = false;
  /** PBSZ was sent after AUTH (RFC 4217 requires it before PROT). */
  pbszSent = false;
  /** The TLS context of this connection (own session tickets, see TlsSettings.sessionContext). */
  secureContext: SecureContext | undefined;
  private idleTimer: NodeJS.Timeout | undefined;
  private loginTimer: NodeJS.Timeout | undefined;

  constructor(
    readonly connection: FtpConnection,
    readonly context: SessionContext,
    origin: ConnectionOrigin,
  ) {
    this.id = connection.id;
    this.client = origin.client;
    this.proxy = origin.proxy;
    this.proxiedTo = origin.proxiedTo;
    sessions.set(connection, this);
    this.feed = new CommandFeed(
      connection.commandSocket,
      (item) => runControlItem(connection, item, context.log, this.id),
      () => this.busy,
    );
    const reply = connection.reply.bind(connection);
    this.sendReply = (options, letters) => coalescedReply(connection, reply, options, letters);
    connection.reply = (options, ...letters) => {
      this.replyCount++;
      // A data command's final reply (2xx–5xx) ends the transfer for the client: a STAT or
      // ABOR it sends next is about no transfer, even if the handler is still tidying up.
      const code = typeof options === 'number' ? options : (options as { code?: number } | undefined)?.code;
      if (code !== undefined && (typeof options === 'number' || !options.socket)) context.onReply?.(code);
      if (this.busy && code !== undefined && code >= 200) {
        this.busy = false;
        this.transferDirective = undefined;
      }
      return this.sendReply(options, letters);
    };
    // With allowHalfOpen (set by FtpEngine), a client's FIN no longer closes the connection
    // at once: every command it sent before is still run and answered, then it closes.
    // A FIN during a transfer is taken as the client going away (the usual case: it closed or
    // crashed), so the transfer is cut and an upload discarded; commands still queued are
    // answered all the same.
    connection.commandSocket.on('end', this.onEnd);
    this.feed.lines.watchAuthTls = context.tls !== undefined;
    this.touch();
    if (context.loginTimeoutMs > 0) {
      this.loginTimer = setTimeout(() => this.onLoginTimeout(), context.loginTimeoutMs);
      this.loginTimer.unref();
    }
  }

  /** A command arrived: restart the idle timer (not while a transfer runs). */
  touch(): void {
    clearTimeout(this.idleTimer);
    this.idleTimer = undefined;
    if (this.busy || this.closed || this.context.idleTimeoutMs <= 0) return;
    this.idleTimer = setTimeout(() => this.onIdle(), this.context.idleTimeoutMs);
    this.idleTimer.unref();
  }

  /** A command is running: it is not idle. */
  suspendIdle(): void {
    clearTimeout(this.idleTimer);
    this.idleTimer = undefined;
  }

  /** The command being run: its verb (never its arguments) and since when. */
  current: { verb: string; since: number } | undefined;
  /** The running transfer's client path and size, once the core has opened it. */
  transferTarget: { path: string; size?: number } | undefined;
  private transferStartedAt = 0;

  activity(): SessionActivity {
    const verb = this.busy ? this.transferDirective : undefined;
    const data = this.connection.connector?.dataSocket;
    return {
      command: this.current?.verb,
      transfer:
        verb === undefined
          ? undefined
          : {
              direction: verb === 'RETR' ? 'download' : verb === 'LIST' || verb === 'NLST' || verb === 'MLSD' ? 'listing' : 'upload',
              verb,
              path: this.transferTarget?.path,
              size: this.transferTarget?.size,
              bytes: data ? data.bytesRead + data.bytesWritten : 0,
              startedAt: this.transferStartedAt,
            },
    };
  }

  /** Marks a data transfer (`directive`) as started: the idle timeout is suspended. */
  beginTransfer(directive: string): void {
    this.busy = true;
    this.transferDirective = directive;
    this.transferStartedAt = Date.now();
    this.transferTarget = undefined;
    this.abortReason = undefined;
    clearTimeout(this.idleTimer);
    this.idleTimer = undefined;
  }

  /** Marks the data transfer as ended: the idle timeout runs again. */
  endTransfer(): void {
    this.busy = false;
    this.transferDirective = undefined;
    this.transferTarget = undefined;
    this.touch();
  }

  /** Aborts the running transfer by destroying its data connection. */
  abortTransfer(reason: string, byClient = false): void {
    if (!this.busy) return;
    this.abortReason = reason;
    this.abortedByClient = byClient;
    const socket = this.connection.connector?.dataSocket;
    if (socket && !socket.destroyed) socket.destroy(new Error(reason));
    else this.connection.connector?.end(); // still waiting for the data connection
  }

  /** Sends 421 with `message` and closes the control connection. */
  async close421(message: string): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.ending ??= { code: 421, reason: message };
    clearTimeout(this.idleTimer);
    const socket = this.connection.commandSocket;
    if (!socket.writable) {
      socket.destroy();
      return;
    }
    // A client that does not read its replies would keep the 421 (and the socket) forever.
    const cut = setTimeout(() => socket.destroy(), CLOSE_WRITE_MS);
    cut.unref();
    await this.connection.close(421, message).catch(() => undefined);
  }

  private readonly onEnd = () => {
    if (this.busy) this.abortTransfer('control connection closed by the client');
    this.feed.end(() => this.closeAfterHalfClose());
  };

  /**
   * The control connection is TLS from now on (AUTH TLS, or the implicit port): replies go
   * out on `secure`, commands are read from it, and its end/drain drive the session.
   */
  adoptSecureSocket(secure: Socket, plain: Socket): void {
    plain.off('end', this.onEnd);
    this.connection.commandSocket = secure;
    secure.on('end', this.onEnd);
    this.feed.setSocket(secure);
    this.feed.lines.watchAuthTls = false;
  }

  /** STAT during a transfer (RFC 959 §4.1.3): the status of the transfer, answered at once. */
  replyTransferStatus(): Promise<void> {
    const data = this.connection.connector?.dataSocket;
    const bytes = data ? data.bytesRead + data.bytesWritten : 0;
    // Sent past the counting wrapper: this 213 belongs to no queued command and must not end the transfer.
    this.context.onReply?.(213);
    return this.sendReply(213, [`Status: ${this.transferDirective ?? 'transfer'} in progress, ${bytes} bytes so far`]);
  }

  /** The client half-closed and every command it sent is answered: close our side too. */
  private closeAfterHalfClose(): void {
    if (this.closed) return;
    this.closed = true;
    this.ending ??= { reason: 'connection closed by the client' };
    clearTimeout(this.idleTimer);
    const socket = this.connection.commandSocket;
    socket.end();
    setTimeout(() => socket.destroy(), CLOSE_WRITE_MS).unref();
  }

  /** EngineSession: the server is shutting down; closes now when no transfer runs. */
  async drain(message: string): Promise<void> {
    this.draining = true;
    if (!this.busy) await this.close421(message);
  }

  /** EngineSession: closes the connection with 421 `message`. */
  close(message: string): Promise<void> {
    return this.close421(message);
  }

  /** The control connection is gone: stop timers. */
  dispose(): void {
    this.closed = true;
    clearTimeout(this.idleTimer);
    clearTimeout(this.loginTimer);
  }

  private onLoginTimeout(): void {
    this.loginTimer = undefined;
    if (this.user || this.closed) return;
    this.context.log.info('Closing connection that did not log in', { session: this.id, client: this.client, proxy: this.proxy });
    void this.close421(`Login timeout (${Math.round(this.context.loginTimeoutMs / 1000)} s), closing control connection`);
  }

  private onIdle(): void {
    if (this.busy || this.closed) return;
    this.context.log.info('Closing idle control connection', { session: this.id, user: this.user, client: this.client, proxy: this.proxy });
    void this.close421(`Idle timeout (${Math.round(this.context.idleTimeoutMs / 1000)} s), closing control connection`);
  }
}

/** The DFOS session of an ftp-srv connection, if DFOS attached one. */
export function sessionOf(connection: FtpConnection): Session | undefined {
  return sessions.get(connection);
}
