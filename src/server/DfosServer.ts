import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ServerConfig } from '../config/serverConfig.js';
import { FtpEngine } from '../adapter/ftp-srv/FtpEngine.js';
import { Bandwidth } from '../core/Bandwidth.js';
import { FileSession, type DescribeOutcome } from '../core/FileSession.js';
import type { EngineHooks, EngineSession, ProtocolEngine } from '../core/ProtocolEngine.js';
import { SessionAudit } from '../core/SessionAudit.js';
import { Defender } from '../core/Defender.js';
import { StatusBoard } from '../status/StatusBoard.js';
import { QuotaPolicy, type QuotaLimits } from '../core/QuotaPolicy.js';
import { UsageLedger, usageFilePath } from '../core/UsageLedger.js';
import { bansFilePath } from '../core/bansFile.js';
import { emptyLoad, PeerLoad } from '../core/shared/PeerLoad.js';
import type { NodeLoad, SharedState } from '../core/shared/SharedState.js';
import { planReload, settingName } from '../config/configReload.js';
import { maskSecret } from '../config/effectiveConfig.js';
import { AuditLog } from '../logging/AuditLog.js';
import { createLoggers, type Loggers } from '../logging/createLogger.js';
import type { LogRotation } from '../logging/RotatingFile.js';
import { XferLog } from '../logging/XferLog.js';
import { createStorageBackend } from '../storage/createStorageBackend.js';
import { StorageError, type StorageBackend, type UserStorage } from '../storage/StorageBackend.js';
import { TlsCredentials, type TlsReloadResult } from '../tls/TlsCredentials.js';
import { TlsCredentialsError } from '../tls/TlsCredentialsError.js';
import { UserStore, type ReloadResult, type UserRecord } from '../users/UserStore.js';
import { AdminServer } from '../ops/AdminServer.js';
import { adminRoutes, type Readiness } from '../ops/adminRoutes.js';
import { readAdminToken } from '../ops/adminToken.js';
import { ServerMetrics, type QuotaUsage } from '../ops/ServerMetrics.js';
import { formatListenAddress, parseListenAddress } from '../util/listenAddress.js';

/**
 * The FTPS settings for `--tls on|required`: the operator's certificate or the generated
 * one (made on the first start, logged with its fingerprint). Undefined with `--tls off`.
 * Throws an operator-facing one-line error (file and problem).
 */
async function loadTls(config: ServerConfig, loggers: Loggers): Promise<TlsCredentials | undefined> {
  if (config.tls === 'off') return undefined;
  const { log } = loggers;
  let tls: TlsCredentials;
  try {
    tls = await TlsCredentials.load({
      mode: config.tls,
      minVersion: config.tlsMinVersion,
      sessionReuse: config.tlsSessionReuse,
      implicitPort: config.implicitTlsPort,
      certFile: config.tlsCert === undefined ? undefined : resolve(config.tlsCert),
      keyFile: config.tlsKey === undefined ? undefined : resolve(config.tlsKey),
      stateDir: resolve(config.stateDir),
      extraNames: config.tlsCertNames,
    });
  } catch (err) {
    if (err instanceof TlsCredentialsError) throw new Error(err.message);
    throw err;
  }
  const source = tls.source;
  const fields = { fingerprint: tls.fingerprint, cert: tls.certFile, names: tls.subjectAltName, validTo: tls.validTo.toISOString() };
  if (source.kind === 'files') {
    log.info('TLS certificate loaded', { ...fields, key: tls.keyFile, chain: tls.chainLength });
  } else if (source.generated) {
    const how = source.reason === 'expired' ? 'the previous one expired' : source.reason === 'certificate missing' ? 'its certificate file was missing' : 'first start';
    const line = `TLS certificate generated (${how}); clients that pin certificates should trust this fingerprint`;
    if (source.replaced) log.warn(line, { ...fields, replaced: source.replaced });
    else log.info(line, fields);
  } else {
    log.info('TLS certificate reused (generated earlier)', fields);
  }
  warnValidity(tls, log);
  return tls;
}

/** Warns when the certificate is not valid now (clients will refuse it). */
function warnValidity(tls: TlsCredentials, log: Loggers['log']): void {
  const now = Date.now();
  if (tls.validTo.getTime() <= now) {
    log.warn('TLS certificate has expired; clients will refuse it', { cert: tls.certFile, validTo: tls.validTo.toISOString() });
  } else if (tls.validFrom.getTime() > now) {
    log.warn('TLS certificate is not valid yet; clients will refuse it (check the clock)', { cert: tls.certFile, validFrom: tls.validFrom.toISOString() });
  }
}

/** The log rotation a configuration asks for. */
function rotationOf(config: ServerConfig): LogRotation {
  return { mode: config.logRotate, maxSize: config.logMaxSize, maxFiles: config.logMaxFiles };
}

/** The xferlog a configuration asks for (--xferlog FILE), or none. */
function openXferLog(config: ServerConfig): XferLog | undefined {
  return config.xferlog === undefined ? undefined : new XferLog(resolve(config.xferlog), rotationOf(config));
}

/** Every user with a byte or file quota: limits, and usage once measured. */
function quotaUsage(users: UserStore, usage: UsageLedger): QuotaUsage[] {
  const quotas: QuotaUsage[] = [];
  for (const u of users.list()) {
    if (u.quotaBytes === undefined && u.quotaFiles === undefined) continue;
    const used = usage.usageOf(u.name);
    quotas.push({
      user: u.name,
      ...(u.quotaBytes !== undefined ? { limitBytes: u.quotaBytes } : {}),
      ...(u.quotaFiles !== undefined ? { limitFiles: u.quotaFiles } : {}),
      ...(used ? { used } : {}),
    });
  }
  return quotas;
}

/** This node's identity in the shared store and in logs: the host name and a random suffix. */
function nodeIdentity(): string {
  return `${hostname()}-${randomBytes(3).toString('hex')}`;
}

/** This process's place among `--workers N` (absent: a single process). */
export interface WorkerInfo {
  /** 1..count; the same index is given to a worker restarted after a crash. */
  index: number;
  count: number;
}

/**
 * The shared state `--redis` asks for (the Redis client is loaded only then); without it,
 * a worker's is the primary's (over IPC) and a single process has none.
 */
async function openSharedState(config: ServerConfig, log: Loggers['log'], nodeId: string, worker: WorkerInfo | undefined): Promise<SharedState | undefined> {
  if (config.redis === undefined && worker) {
    const { openIpcState } = await import('../core/shared/ipc/IpcState.js');
    return openIpcState(nodeId);
  }
  if (config.redis === undefined) return undefined;
  const { openRedisState } = await import('../core/shared/redis/RedisState.js');
  return openRedisState({ url: config.redis, prefix: config.redisPrefix, label: String(maskSecret('redis', config.redis)), nodeId, log });
}

/** What this node has open, as it tells the other nodes: sessions per address and per user, upload reservations. */
function nodeLoad(sessions: readonly EngineSession[], usage: UsageLedger): NodeLoad {
  const load = emptyLoad();
  for (const s of sessions) {
    if (s.client !== undefined) load.ips[s.client] = (load.ips[s.client] ?? 0) + 1;
    if (s.user !== undefined) load.users[s.user] = (load.users[s.user] ?? 0) + 1;
  }
  load.reserved = usage.localReservations();
  return load;
}

/** How long aborted transfers get to send their final reply before sockets are cut. */
const ABORT_SETTLE_MS = 2000;

/** What to do about a failed listen(), for the one-line startup error. */
function listenHint(err: unknown, portFlag: string, hostFlag: string): string {
  const code = (err as NodeJS.ErrnoException).code;
  return code === 'EADDRINUSE' ? `the port is in use; stop the other server or choose another ${portFlag}`
    : code === 'EACCES' ? 'permission denied; use a port above 1023 or grant the capability'
    : code === 'EADDRNOTAVAIL' ? `that address is not on this machine; check ${hostFlag}`
    : (err as Error).message;
}

/**
 * A running DFOS server: users from users.json, a storage backend (each user's home is
 * `/`), the protocol engine, the audit trail, and the graceful drain. It depends on the
 * ProtocolEngine interface, not on the FTP library. Create with DfosServer.start(); stop
 * with shutdown().
 */
export class DfosServer {
  private draining: Promise<void> | undefined;
  /** shutdown() or abortNow() was called: /readyz answers 503 from then on. */
  private stopping = false;
  private stopWatching: () => void = () => undefined;
  /** Stops the status page's sampling (set when the admin listener runs). */
  private stopBoard: () => void = () => undefined;
  /** The xferlog (--xferlog), fed by the audit trail; undefined when off. */
  private xferLog: XferLog | undefined;
  /** The admin HTTP listener (/metrics, /healthz, /readyz); undefined with `--admin-listen off`. */
  private admin: AdminServer | undefined;
  /** State shared with the other nodes (`--redis`); undefined: this node keeps its own. */
  private shared: SharedState | undefined;
  /** What the other nodes have open (`--redis`). */
  private peers: PeerLoad | undefined;
  /** The Prometheus metrics; undefined with `--admin-listen off`. */
  metrics: ServerMetrics | undefined;
  /** The status page's live picture of this process; undefined with `--admin-listen off`. */
  board: StatusBoard | undefined;

  private constructor(
    /** The running configuration (SIGHUP changes its reloadable keys). */
    private running: ServerConfig,
    readonly loggers: Loggers,
    private readonly users: UserStore,
    private readonly storage: StorageBackend,
    private readonly audit: AuditLog,
    private readonly engine: ProtocolEngine,
    /** The address actually bound (port resolved when 0 was asked). */
    readonly address: { host: string; port: number },
    /** FTPS settings and the current certificate; undefined with `--tls off`. */
    readonly tls: TlsCredentials | undefined,
    /** Bans addresses after repeated failed logins (persisted in <state-dir>/bans.json). */
    readonly defender: Defender,
    /** What users with a quota store (persisted in <state-dir>/usage.json). */
    private readonly usage: UsageLedger,
    /** Per-user rates and the server-wide cap (`--rate-total`). */
    private readonly bandwidth: Bandwidth,
  ) {}

  /**
   * Loads users, prepares storage (removing stale upload temporaries), and starts
   * listening. Throws with an operator-facing message when something is wrong.
   */
  static async start(config: ServerConfig, loggers?: Loggers, worker?: WorkerInfo): Promise<DfosServer> {
    loggers ??= createLoggers({
      logDir: config.logDir,
      level: config.logLevel,
      console: config.console,
      rotation: rotationOf(config),
      ...(worker ? { fields: { worker: worker.index } } : {}),
    });
    const { log, audit } = loggers;
    const adminToken = config.adminTokenFile === undefined ? undefined : await readAdminToken(resolve(config.adminTokenFile));
    const users = await UserStore.load(resolve(config.users));
    const tls = await loadTls(config, loggers);
    const storage = await createStorageBackend(config);
    await storage.start((message, fields, level = 'info') => log[level](message, fields));
    const nodeId = worker ? `${nodeIdentity()}-w${worker.index}` : nodeIdentity();
    const shared = await openSharedState(config, log, nodeId, worker);
    // Among workers, only the first keeps bans.json (and polls it for `dfos bans lift`); the
    // quota usage is persisted by the primary (or, with Redis, the first worker's copy).
    const keepsFiles = !worker || worker.index === 1;
    const peers = shared ? new PeerLoad(shared.load, () => nodeLoad(engine.sessions(), usage)) : undefined;
    const defender = await Defender.start({
      threshold: config.banThreshold,
      windowS: config.banWindow,
      banTimeS: config.banTime,
      banTimeMaxS: config.banTimeMax,
      allow: config.banAllow,
      file: keepsFiles ? bansFilePath(resolve(config.stateDir)) : undefined,
      audit,
      log,
      ...(shared ? { shared } : {}),
    });
    const usage = await UsageLedger.open({
      file: keepsFiles && (!worker || config.redis !== undefined) ? usageFilePath(resolve(config.stateDir)) : undefined,
      log,
      ...(shared && peers ? { shared, peers } : {}),
    });
    // Adopt the cluster's bans and usage (or refill an empty Redis) before accepting.
    await shared?.begin();
    let server: DfosServer | undefined;
    // Read at each scrape, which can only come once everything below exists.
    const metrics = config.adminListen === 'off' ? undefined : new ServerMetrics({
      sessions: () => {
        const sessions = engine.sessions();
        return { open: sessions.length, transferring: sessions.filter((s) => s.busy).length };
      },
      engine: () => engine.stats(),
      bansActive: () => defender.list().length,
      quotas: () => quotaUsage(users, usage),
    });
    if (metrics) audit.listen((event) => metrics.observe(event));
    const hooks: EngineHooks = {
      login: (session, username, password, describe) => server!.login(session, username, password, describe),
      onSessionClosed: (session) => server?.logout(session),
      refusal: (client) => defender.refusal(client),
      ...(peers ? { peerSessionsFrom: (client: string | undefined) => peers.sessionsFrom(client) } : {}),
      ...(metrics ? { onReply: (code: number) => metrics.reply(code) } : {}),
    };
    const engine = new FtpEngine({
      host: config.host,
      port: config.port,
      pasvMin: config.pasvMin,
      pasvMax: config.pasvMax,
      pasvAddress: config.pasvAddress,
      dataTimeoutMs: config.dataTimeout * 1000,
      capabilities: storage.capabilities,
      limits: { maxSessions: config.maxSessions, maxSessionsPerIp: config.maxSessionsPerIp },
      trustedProxies: config.trustedProxies,
      log,
      session: { idleTimeoutMs: config.idleTimeout * 1000, loginTimeoutMs: config.loginTimeout * 1000, maxLoginAttempts: config.maxLoginAttempts, log },
      hooks,
      ...(tls ? { tls } : {}),
    });
    let bound;
    try {
      bound = await engine.listen();
    } catch (err) {
      defender.stop();
      await shared?.stop();
      throw new Error(`Cannot listen on ${config.host} port ${config.port}: ${listenHint(err, '--port', '--host')}`);
    }
    peers?.start();
    const bandwidth = new Bandwidth(config.rateTotal);
    server = new DfosServer(config, loggers, users, storage, audit, engine, { host: bound.address, port: bound.port }, tls, defender, usage, bandwidth);
    server.xferLog = openXferLog(config);
    server.shared = shared;
    server.peers = peers;
    server.metrics = metrics;
    audit.listen((event) => server!.xferLog?.record(event));
    // The status page's board: on a worker too (the primary merges the workers' pictures).
    if (metrics) {
      const board = new StatusBoard({ sessions: () => engine.sessions() });
      audit.listen((event) => board.observe(event));
      board.start();
      server.board = board;
      server.stopBoard = () => board.stop();
    }
    // Workers: the primary serves the admin listener (and asks the workers for their metrics and status).
    const listen = config.adminListen === 'off' || worker ? undefined : parseListenAddress(config.adminListen);
    if (listen && metrics && server.board) {
      const board = server.board;
      try {
        server.admin = await AdminServer.listen({
          listen,
          ...(adminToken !== undefined ? { token: adminToken } : {}),
          routes: adminRoutes({ metrics, readiness: () => server!.readiness(), status: { snapshot: () => board.snapshot(), title: `${hostname()} ftp ${bound.address}:${bound.port}` } }),
          log,
        });
      } catch (err) {
        board.stop();
        engine.destroyAll();
        defender.stop();
        await peers?.stop();
        await shared?.stop();
        const hint = (err as NodeJS.ErrnoException).code ? listenHint(err, '--admin-listen (or off)', '--admin-listen') : (err as Error).message;
        throw new Error(`Cannot listen on ${formatListenAddress(listen)} for the admin listener: ${hint}`);
      }
    }
    server.stopWatching = users.watch((result) => server!.usersReloaded(result, 'users.json changed'));
    log.info(worker ? 'Worker listening' : 'DFOS listening', {
      host: bound.address,
      port: bound.port,
      ...(worker ? { pid: process.pid } : {}),
      pasv: config.pasvMax > 0 ? `${config.pasvMin}-${config.pasvMax}` : 'any free port',
      storage: storage.description,
      users: users.size,
      tls: tls ? tls.mode : 'off',
      admin: server.admin ? server.admin.url : 'off',
      ...(server.admin && adminToken !== undefined ? { adminToken: 'required' } : {}),
      ...(config.rateTotal > 0 ? { rateTotal: config.rateTotal } : {}),
      ...(shared ? { ...(config.redis !== undefined ? { redis: maskSecret('redis', config.redis) } : {}), node: nodeId } : {}),
      ...(config.trustedProxies.length > 0 ? { trustedProxies: config.trustedProxies } : {}),
    });
    return server;
  }

  /** The admin listener's bound address (port resolved when 0 was asked); undefined when it is off. */
  get adminAddress(): { host: string; port: number } | undefined {
    return this.admin?.address;
  }

  /** 'ready' while the FTP listener accepts; 'draining' from the moment shutdown() is called. */
  readiness(): Readiness {
    return this.stopping ? 'draining' : 'ready';
  }

  /**
   * Re-reads the TLS certificate and key (SIGHUP); a broken pair is logged and the current
   * one stays. Undefined with `--tls off`.
   */
  async reloadTls(): Promise<TlsReloadResult | undefined> {
    if (!this.tls) return undefined;
    const result = await this.tls.reload();
    const { log } = this.loggers;
    if (!result.ok) {
      log.error('TLS certificate or key invalid; keeping the previous one', { why: 'SIGHUP', error: result.error.message });
    } else if (result.source.kind === 'generated' && result.source.generated) {
      log.info('TLS certificate generated', { why: 'SIGHUP', fingerprint: result.fingerprint, cert: this.tls.certFile, names: this.tls.subjectAltName });
    } else {
      log.info(result.changed ? 'TLS certificate reloaded' : 'TLS certificate unchanged', { why: 'SIGHUP', fingerprint: result.fingerprint, cert: this.tls.certFile });
    }
    if (result.ok) warnValidity(this.tls, log);
    return result;
  }

  /** The running configuration. */
  get config(): ServerConfig {
    return this.running;
  }

  /**
   * SIGHUP: applies a newly read configuration (when given) as far as it can change
   * safely, reopens the log files (after logrotate moved them), and reloads users.json and
   * the TLS certificate (each outcome logged once).
   */
  async reload(next?: ServerConfig): Promise<{ users: ReloadResult; tls: TlsReloadResult | undefined }> {
    if (next) await this.applyConfig(next);
    this.reopenLogs();
    const [users, tls] = await Promise.all([this.reloadUsers(), this.reloadTls()]);
    return { users, tls };
  }

  /** Writes every log file afresh (dfos.log, audit.log, the xferlog) with the running rotation settings. */
  private reopenLogs(): void {
    const rotation = rotationOf(this.running);
    this.loggers.reopen(rotation);
    this.xferLog?.reopen(rotation);
    this.loggers.log.info('Log files reopened', { why: 'SIGHUP' });
  }

  /**
   * Takes the reloadable settings of `next` (see RELOADABLE_KEYS) and logs, in one warning,
   * the changed settings that need a restart (the running values stay for those).
   */
  private async applyConfig(next: ServerConfig): Promise<void> {
    const { log } = this.loggers;
    const plan = planReload(this.running, next);
    if (plan.needRestart.length > 0) {
      const keys = plan.needRestart.join(', ');
      log.warn(`config key${plan.needRestart.length > 1 ? 's' : ''} ${keys} changed; restart to apply`, { why: 'SIGHUP', keys: plan.needRestart });
    }
    const config = plan.config;
    this.running = config;
    if (plan.applied.length === 0) {
      log.info('Config reloaded: no setting that can change while running changed', { why: 'SIGHUP' });
      return;
    }
    log.level = config.logLevel;
    this.engine.configure({
      maxSessions: config.maxSessions,
      maxSessionsPerIp: config.maxSessionsPerIp,
      maxLoginAttempts: config.maxLoginAttempts,
      idleTimeoutMs: config.idleTimeout * 1000,
      loginTimeoutMs: config.loginTimeout * 1000,
      dataTimeoutMs: config.dataTimeout * 1000,
    });
    this.defender.configure({
      threshold: config.banThreshold,
      windowS: config.banWindow,
      banTimeS: config.banTime,
      banTimeMaxS: config.banTimeMax,
      allow: config.banAllow,
    });
    this.bandwidth.setTotal(config.rateTotal);
    if (plan.applied.includes('xferlog')) {
      const old = this.xferLog;
      this.xferLog = openXferLog(config);
      await old?.close();
    }
    log.info('Config reloaded', { why: 'SIGHUP', applied: plan.applied.map(settingName) });
  }

  /** Re-reads users.json (SIGHUP); an invalid file is logged and the old users stay. */
  async reloadUsers(): Promise<ReloadResult> {
    const result = await this.users.reload();
    this.usersReloaded(result, 'SIGHUP');
    return result;
  }

  /** Number of open control connections. */
  get sessionCount(): number {
    return this.engine.sessions().length;
  }


  /**
   * Graceful shutdown: stop accepting at once; idle sessions get 421 and are closed;
   * running transfers get up to `graceMs` to finish (then 226 and 421); after that they
   * are aborted (uploads discarded) and their sessions get 421. Flushes the logs. /readyz
   * answers 503 before the FTP listener closes; the admin listener closes last.
   */
  shutdown(graceMs = this.config.shutdownGrace * 1000): Promise<void> {
    this.stopping = true;
    this.draining ??= this.drain(graceMs);
    return this.draining;
  }

  /** Immediate stop (second signal): cut every connection; uploads in flight are discarded. */
  abortNow(): void {
    this.stopping = true;
    void this.admin?.close();
    this.stopWatching();
    this.stopBoard();
    this.defender.stop();
    for (const session of this.engine.sessions()) session.abortTransfer('server stopped');
    this.engine.destroyAll();
    void this.peers?.stop().finally(() => this.shared?.stop());
  }

  private async drain(graceMs: number): Promise<void> {
    const { log } = this.loggers;
    this.engine.stopAccepting();
    this.stopWatching();
    this.stopBoard();
    this.defender.stop();
    const sessions = this.engine.sessions();
    const busy = sessions.filter((s) => s.busy).length;
    log.info('Shutting down: not accepting connections', { sessions: sessions.length, transfers: busy, graceSeconds: graceMs / 1000 });
    await Promise.all(sessions.map((s) => this.drainSession(s)));
    let left = await this.engine.waitForSessions(graceMs);
    if (left > 0) {
      log.warn('Shutdown grace over: aborting transfers', { transfers: left });
      for (const s of this.engine.sessions()) s.abortTransfer('server shutting down');
      left = await this.engine.waitForSessions(ABORT_SETTLE_MS);
      await Promise.all(this.engine.sessions().map((s) => s.close('Server shutting down, closing control connection')));
      left = await this.engine.waitForSessions(ABORT_SETTLE_MS);
    }
    this.engine.destroyAll();
    await this.storage.close();
    await this.usage.flush();
    await this.defender.settled();
    await this.peers?.stop();
    await this.shared?.stop();
    await this.admin?.close();
    log.info('Shutdown complete', { forced: left });
    await Promise.all([this.loggers.close(), this.xferLog?.close()]);
  }

  private async drainSession(session: EngineSession): Promise<void> {
    await session.drain('Server shutting down, closing control connection');
  }

  /**
   * Checks credentials, opens the user's home and returns the session's core. A refusal
   * (unknown user, wrong password, not allowed from this address) waits out the
   * configured delay and is the same whatever the reason; a home the storage cannot serve
   * is 'unavailable' (logged for the operator with where and why, never told the client).
   */
  private async login(session: EngineSession, username: string, password: string, describe: DescribeOutcome): Promise<FileSession> {
    const started = Date.now();
    const audit = new SessionAudit(this.audit, session);
    // An address banned while this connection was open gets no more tries.
    const banned = this.defender.refusal(session.client) !== undefined;
    const result = banned ? ({ ok: false, reason: 'address banned' } as const) : await this.users.authenticate(username, password, session.client);
    if (!result.ok) {
      await this.defender.failed(session.client, result.reason);
      await sleep(Math.max(0, this.config.authFailDelay * 1000 - (Date.now() - started)));
      this.loggers.log.info('Login failed', { session: session.id, client: session.client, proxy: session.proxy, user: username.slice(0, 64), reason: result.reason, tls: session.tls });
      const refused = new StorageError('denied', 'Login incorrect');
      audit.record(username.slice(0, 64), { action: 'login', result: 'failed', code: describe('login', refused).code, reason: result.reason });
      throw refused;
    }
    const user = result.user.name;
    if ((result.user as { requireTls?: boolean }).requireTls === true && session.tls === undefined) {
      await sleep(Math.max(0, this.config.authFailDelay * 1000 - (Date.now() - started)));
      const refused = new StorageError('denied', 'TLS required for this account: reconnect and send AUTH TLS first');
      this.loggers.log.info('Login refused: this user requires TLS', { session: session.id, client: session.client, proxy: session.proxy, user });
      audit.record(user, { action: 'login', result: 'failed', code: describe('login', refused).code, reason: 'TLS required for this user' });
      throw refused;
    }
    const limit = result.user.maxSessions;
    // Other nodes' sessions as last heard (about a second old at most): a cluster-wide cap.
    if (limit !== undefined && this.engine.sessions().filter((s) => s.user === user).length + (this.peers?.sessionsOf(user) ?? 0) >= limit) {
      const busy = new StorageError('unavailable', `Too many sessions for this user (${limit} allowed); close one and try again`);
      this.loggers.log.info('Login refused: user session limit', { session: session.id, client: session.client, proxy: session.proxy, user, limit });
      audit.record(user, { action: 'login', result: 'failed', code: describe('login', busy).code, reason: `session limit (${limit})` });
      throw busy;
    }
    let storage;
    try {
      storage = await this.storage.openHome(user);
    } catch (err) {
      const cause = (err as { cause?: unknown }).cause ?? err;
      const errno = (cause as NodeJS.ErrnoException).code ?? (err instanceof StorageError ? err.kind : 'unknown');
      this.loggers.log.error('Home folder unavailable: login refused with 421; make it a directory the server can read and write', {
        session: session.id,
        client: session.client,
        proxy: session.proxy,
        user,
        path: this.storage.homeLocation(user),
        errno,
        err: cause instanceof Error ? cause.message : String(cause),
      });
      const unavailable = new StorageError('unavailable', 'Home folder unavailable; try again later or tell the administrator');
      audit.record(user, { action: 'login', result: 'failed', code: describe('login', unavailable).code, reason: `home folder unavailable (${errno})`, durationMs: Date.now() - started });
      throw unavailable;
    }
    audit.record(user, { action: 'login', result: 'ok', code: describe('login').code, durationMs: Date.now() - started, tls: session.tls });
    const bandwidth = this.bandwidth.forUser(result.user);
    return new FileSession({ user, readOnly: result.user.readOnly, storage, capabilities: this.storage.capabilities, audit, log: this.loggers.log, describe, quota: this.quotaFor(result.user, storage), bandwidth });
  }

  /**
   * The session's quota: the user's limits, and their usage when they have a byte or file
   * quota (measured by walking the home the first time, in the background: uploads and
   * deletions wait for it, other commands do not).
   */
  private quotaFor(user: UserRecord, storage: UserStorage): QuotaPolicy {
    const limits: QuotaLimits = {
      ...(user.quotaBytes !== undefined ? { quotaBytes: user.quotaBytes } : {}),
      ...(user.quotaFiles !== undefined ? { quotaFiles: user.quotaFiles } : {}),
      ...(user.maxFileSize !== undefined ? { maxFileSize: user.maxFileSize } : {}),
    };
    if (limits.quotaBytes === undefined && limits.quotaFiles === undefined) {
      this.usage.forget(user.name);
      return new QuotaPolicy(limits);
    }
    const usage = this.usage.track(user.name, () => storage.measureUsage());
    usage.catch((err: unknown) => {
      this.loggers.log.error('Cannot measure quota usage; uploads and deletions are refused until it succeeds (at the next login)', {
        user: user.name,
        path: this.storage.homeLocation(user.name),
        err: err instanceof Error ? err.message : String(err),
      });
    });
    return new QuotaPolicy(limits, usage);
  }

  /** The logout record of a session that had logged in: how long, and how it ended. */
  private logout(session: EngineSession): void {
    if (!session.user) return;
    const ending = session.ending ?? { code: undefined, reason: 'connection closed by the client' };
    new SessionAudit(this.audit, session).record(session.user, { action: 'logout', result: 'ok', durationMs: Date.now() - session.startedAt, code: ending.code, reason: ending.reason });
  }

  /** Logs a users.json reload; a good one also brings the users' new rates into force. */
  private usersReloaded(result: ReloadResult, why: string): void {
    if (!result.ok) {
      this.loggers.log.error('Users file invalid; keeping the previous users', { why, error: result.error.message });
      return;
    }
    this.bandwidth.update(this.users.list());
    this.loggers.log.info('Users reloaded', { why, users: result.count });
  }
}
