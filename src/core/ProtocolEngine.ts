import type { DescribeOutcome, FileSession } from './FileSession.js';
import type { SessionIdentity } from './SessionAudit.js';

/**
 * What the server lifecycle (start, drain, stop) needs from a protocol engine, so that it
 * depends on this interface and never on the FTP library behind it. The FTP engine lives
 * in src/adapter/ftp-srv/; another protocol would be another implementation.
 */
export interface ProtocolEngine {
  /** Starts listening; resolves with the bound address (port 0 picks a free port). */
  listen(): Promise<{ address: string; port: number }>;
  /** Stops accepting new connections; existing sessions continue. */
  stopAccepting(): void;
  /** Connections currently open. */
  sessions(): EngineSession[];
  /** Resolves when no session is left, or after `timeoutMs`, with how many remain. */
  waitForSessions(timeoutMs: number): Promise<number>;
  /** Cuts every remaining connection at once (last resort after the drain). */
  destroyAll(): void;
  /** New limits and timeouts (SIGHUP) for connections opened from now on; open ones keep theirs. */
  configure(settings: EngineSettings): void;
  /** What only the engine knows, for monitoring (cheap: read on every metrics scrape). */
  stats(): EngineStats;
}

/** The limits and timeouts an engine applies per connection (0 = none). */
export interface EngineSettings {
  /** Open connections at most; past it a new one is refused before the greeting. */
  maxSessions: number;
  /** Open connections from one client address at most. */
  maxSessionsPerIp: number;
  /** Failed logins on one connection before it is closed. */
  maxLoginAttempts: number;
  /** Close an idle control connection after this long. */
  idleTimeoutMs: number;
  /** Close a connection not logged in this long after it opened. */
  loginTimeoutMs: number;
  /** Cut a data connection with no traffic for this long. */
  dataTimeoutMs: number;
}

/** Engine-level counts that no audit record carries. */
export interface EngineStats {
  /** Passive data ports with a listener open now (waiting for the client's data connection). */
  passivePortsInUse: number;
  /** Size of the configured passive port range; 0 when the system picks any free port. */
  passivePortRangeSize: number;
  /** Passive requests (PASV/EPSV) refused since start because every port of the range was taken. */
  passivePortsExhausted: number;
}

/** One open connection as the lifecycle sees it. */
export interface EngineSession extends SessionIdentity {
  /** When the connection opened (ms since the epoch). */
  readonly startedAt: number;
  /** The logged-in user, if any. */
  readonly user: string | undefined;
  /** The control connection's TLS (protocol and cipher), or undefined when it is clear. */
  readonly tls: string | undefined;
  /** A transfer is running (the drain waits for it). */
  readonly busy: boolean;
  /** How the session ended, for the logout record (set once it has). */
  readonly ending: { code?: number; reason: string } | undefined;
  /** What the session is doing right now (the status page). */
  activity(): SessionActivity;
  /** The server is shutting down: close at once if idle, else after the running transfer. */
  drain(message: string): Promise<void>;
  /** Cuts the running transfer (the client is told why). */
  abortTransfer(reason: string): void;
  /** Closes the connection, telling the client why. */
  close(message: string): Promise<void>;
}

/** What a session is doing, as an operator sees it. */
export interface SessionActivity {
  /** The verb of the command being run (never its arguments: they may carry secrets). */
  command: string | undefined;
  /** The running data transfer, if any. */
  transfer:
    | {
        /** upload, download, or listing (a directory listing over the data connection). */
        direction: 'upload' | 'download' | 'listing';
        verb: string;
        /** The client path, once the storage has opened it. */
        path: string | undefined;
        /** The bytes a download will send (unknown for uploads and listings). */
        size: number | undefined;
        /** Bytes moved on the data connection so far. */
        bytes: number;
        startedAt: number;
      }
    | undefined;
}

/** What an engine asks of the server. */
export interface EngineHooks {
  /**
   * Checks credentials and returns the session's FileSession. Rejects with a StorageError
   * of kind 'denied' for wrong credentials (the same answer whatever the reason) or
   * 'unavailable' when the server cannot serve this login (e.g. its home is unusable).
   * `describe` tells the core how this protocol reports outcomes (for audit records).
   */
  login(session: EngineSession, username: string, password: string, describe: DescribeOutcome): Promise<FileSession>;
  /**
   * Why a connection from `client` must be refused (e.g. the address is banned), or
   * undefined. Asked before the greeting (421 with this text, then close) and after a
   * failed login (530, then 421 with this text and close).
   */
  refusal?(client: string | undefined): string | undefined;
  /**
   * Sessions open from `client` on the other nodes of a cluster (`--redis`), counted with
   * this engine's own against the per-address cap. Must answer from memory: it is asked on
   * every new connection.
   */
  peerSessionsFrom?(client: string | undefined): number;
  /** Called once when a connection has closed. */
  onSessionClosed(session: EngineSession): void;
  /** Called with the code of every reply sent on a control connection (kept cheap: it runs per reply). */
  onReply?(code: number): void;
}
