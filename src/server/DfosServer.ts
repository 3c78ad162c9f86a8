import { constants } from 'node:fs';
import { access } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ServerConfig } from '../config/serverConfig.js';
import { FtpEngine } from '../adapter/ftp-srv/FtpEngine.js';
import { LoginUnavailableError } from '../adapter/ftp-srv/LoginUnavailableError.js';
import type { Session } from '../adapter/ftp-srv/Session.js';
import { AuditLog } from '../logging/AuditLog.js';
import { createLoggers, type Loggers } from '../logging/createLogger.js';
import { removeStaleTemps } from '../storage/hiddenTemp.js';
import { JailedFileSystem } from '../storage/JailedFileSystem.js';
import { PathJail } from '../storage/pathJail.js';
import { UserStore, type ReloadResult } from '../users/UserStore.js';
import { prepareStorageRoot } from './storageRoot.js';

/** How long aborted transfers get to send their final reply before sockets are cut. */
const ABORT_SETTLE_MS = 2000;

/**
 * A running DFOS server: users from users.json, one jail per user under the storage
 * root, audit trail, graceful drain. Create with DfosServer.start(); stop with shutdown().
 */
export class DfosServer {
  private draining: Promise<void> | undefined;
  private stopWatching: () => void = () => undefined;

  private constructor(
    readonly config: ServerConfig,
    readonly loggers: Loggers,
    private readonly users: UserStore,
    private readonly storageRoot: string,
    private readonly engine: FtpEngine,
    /** The address actually bound (port resolved when 0 was asked). */
    readonly address: { host: string; port: number },
  ) {}

  /**
   * Loads users, prepares storage (removing stale upload temporaries), and starts
   * listening. Throws with an operator-facing message when something is wrong.
   */
  static async start(config: ServerConfig, loggers: Loggers = createLoggers({ logDir: config.logDir, level: config.logLevel, console: config.console })): Promise<DfosServer> {
    const { log, auditLog } = loggers;
    const users = await UserStore.load(resolve(config.users));
    const storageRoot = await prepareStorageRoot(config.storage);
    const stale = await removeStaleTemps(storageRoot);
    if (stale.removed > 0) log.info('Removed stale upload temporaries', { count: stale.removed, appendsUndone: stale.undone });
    const audit = new AuditLog(auditLog);
    let server: DfosServer | undefined;
    const engine = new FtpEngine({
      host: config.host,
      port: config.port,
      pasvMin: config.pasvMin,
      pasvMax: config.pasvMax,
      pasvAddress: config.pasvAddress,
      dataTimeoutMs: config.dataTimeout * 1000,
      log,
      session: { idleTimeoutMs: config.idleTimeout * 1000, loginTimeoutMs: config.loginTimeout * 1000, audit, log },
      login: (session, username, password) => server!.login(session, username, password),
      onSessionClosed: (session) => {
        if (!session.user) return;
        const ending = session.ending ?? { code: undefined, reason: 'connection closed by the client' };
        session.audit({ action: 'logout', result: 'ok', durationMs: Date.now() - session.startedAt, code: ending.code, reason: ending.reason });
      },
    });
    let bound;
    try {
      bound = await engine.listen();
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      const hint =
        code === 'EADDRINUSE' ? 'the port is in use; stop the other server or choose another --port'
        : code === 'EACCES' ? 'permission denied; use a port above 1023 or grant the capability'
        : code === 'EADDRNOTAVAIL' ? 'that address is not on this machine; check --host'
        : (err as Error).message;
      throw new Error(`Cannot listen on ${config.host} port ${config.port}: ${hint}`);
    }
    server = new DfosServer(config, loggers, users, storageRoot, engine, { host: bound.address, port: bound.port });
    server.stopWatching = users.watch((result) => server!.logReload(result, 'users.json changed'));
    log.info('DFOS listening', {
      host: bound.address,
      port: bound.port,
      pasv: config.pasvMax > 0 ? `${config.pasvMin}-${config.pasvMax}` : 'any free port',
      storage: storageRoot,
      users: users.size,
    });
    return server;
  }

  /** Re-reads users.json (SIGHUP); an invalid file is logged and the old users stay. */
  async reloadUsers(): Promise<ReloadResult> {
    const result = await this.users.reload();
    this.logReload(result, 'SIGHUP');
    return result;
  }

  /** Number of open control connections. */
  get sessionCount(): number {
    return this.engine.sessions().length;
  }

  /**
   * Graceful shutdown: stop accepting at once; idle sessions get 421 and are closed;
   * running transfers get up to `graceMs` to finish (then 226 and 421); after that they
   * are aborted (uploads discarded) and their sessions get 421. Flushes the logs.
   */
  shutdown(graceMs = this.config.shutdownGrace * 1000): Promise<void> {
    this.draining ??= this.drain(graceMs);
    return this.draining;
  }

  /** Immediate stop (second signal): cut every connection; uploads in flight are discarded. */
  abortNow(): void {
    this.stopWatching();
    for (const session of this.engine.sessions()) session.abortTransfer('server stopped');
    this.engine.destroyAll();
  }

  private async drain(graceMs: number): Promise<void> {
    const { log } = this.loggers;
    this.engine.stopAccepting();
    this.stopWatching();
    const sessions = this.engine.sessions();
    const busy = sessions.filter((s) => s.busy).length;
    log.info('Shutting down: not accepting connections', { sessions: sessions.length, transfers: busy, graceSeconds: graceMs / 1000 });
    await Promise.all(sessions.map((s) => this.drainSession(s)));
    let left = await this.engine.waitForSessions(graceMs);
    if (left > 0) {
      log.warn('Shutdown grace over: aborting transfers', { transfers: left });
      for (const s of this.engine.sessions()) s.abortTransfer('server shutting down');
      left = await this.engine.waitForSessions(ABORT_SETTLE_MS);
      await Promise.all(this.engine.sessions().map((s) => s.close421('Server shutting down, closing control connection')));
      left = await this.engine.waitForSessions(ABORT_SETTLE_MS);
    }
    this.engine.destroyAll();
    log.info('Shutdown complete', { forced: left });
    await this.loggers.close();
  }

  private async drainSession(session: Session): Promise<void> {
    session.draining = true;
    if (!session.busy) await session.close421('Server shutting down, closing control connection');
  }

  private async login(session: Session, username: string, password: string): Promise<JailedFileSystem> {
    const started = Date.now();
    const result = await this.users.authenticate(username, password, session.client);
    if (!result.ok) {
      await sleep(Math.max(0, this.config.authFailDelay * 1000 - (Date.now() - started)));
      this.loggers.log.info('Login failed', { session: session.id, client: session.client, user: username.slice(0, 64), reason: result.reason });
      session.context.audit.record({ session: session.id, user: username.slice(0, 64), client: session.client, action: 'login', result: 'failed', code: 530, reason: result.reason });
      throw new Error('Login incorrect');
    }
    const jail = await this.openHome(session, result.user.name, started);
    session.user = result.user.name;
    session.readOnly = result.user.readOnly;
    session.audit({ action: 'login', result: 'ok', code: 230, durationMs: Date.now() - started });
    return new JailedFileSystem(jail, { readOnly: result.user.readOnly });
  }

  /**
   * Opens a user's home folder (creating it at first login) and checks the server can
   * list it. When it cannot (the path is a file, a parent is not a directory, permissions),
   * the operator gets an error line naming the path and errno, the audit trail a failed
   * login, and the client 421 "home folder unavailable" (never the path): a server-side
   * problem must not look like a wrong password.
   */
  private async openHome(session: Session, user: string, started: number): Promise<PathJail> {
    const home = join(this.storageRoot, user);
    try {
      const jail = await PathJail.open(home);
      await access(jail.root, constants.R_OK | constants.X_OK);
      return jail;
    } catch (err) {
      const errno = (err as NodeJS.ErrnoException).code ?? 'unknown';
      const reason = `home folder unavailable (${errno})`;
      this.loggers.log.error('Home folder unavailable: login refused with 421; make it a directory the server can read and write', {
        session: session.id,
        client: session.client,
        user,
        path: home,
        errno,
        err: (err as Error).message,
      });
      session.context.audit.record({ session: session.id, user, client: session.client, action: 'login', result: 'failed', code: 421, reason, durationMs: Date.now() - started });
      throw new LoginUnavailableError('Home folder unavailable; try again later or tell the administrator');
    }
  }

  private logReload(result: ReloadResult, why: string): void {
    if (result.ok) this.loggers.log.info('Users reloaded', { why, users: result.count });
    else this.loggers.log.error('Users file invalid; keeping the previous users', { why, error: result.error.message });
  }
}
