import type winston from 'winston';

/** Actions recorded in the audit trail. */
export type AuditAction =
  | 'login'
  | 'logout'
  | 'upload'
  | 'download'
  | 'delete'
  | 'rmdir'
  | 'mkdir'
  | 'rename'
  | 'view'
  | 'chmod'
  | 'mtime'
  /** The defender banned a client address (client = the address, durationMs = the ban). */
  | 'ban'
  /** A ban ended: lifted with `dfos bans lift`, or expired. */
  | 'unban';

/** One audit record: who did what to which path, with what outcome. */
export interface AuditEvent {
  /** The connection's id; undefined for records about an address (ban, unban). */
  session: string | undefined;
  user: string | undefined;
  client: string | undefined;
  /** The trusted proxy (load balancer) the session came through; absent for direct connections. */
  proxy?: string;
  action: AuditAction;
  path?: string;
  /** Destination, for rename. */
  to?: string;
  bytes?: number;
  durationMs?: number;
  result: 'ok' | 'failed' | 'aborted';
  /** FTP reply code sent to the client. */
  code?: number;
  /** The control connection's TLS (protocol and cipher) on login records; absent when clear. */
  tls?: string;
  /** Short reason for a failure, or how a session ended (client-safe wording). */
  reason?: string;
  /** How an upload's or download's bytes were sent: TYPE A (`ascii`, line endings converted) or TYPE I (`binary`). */
  transferType?: 'ascii' | 'binary';
}

/** Something that wants every audit record as it is written (the xferlog, metrics); it must not throw. */
export type AuditListener = (event: AuditEvent) => void;

/**
 * Writes audit records (one JSON object per line, with a timestamp) to the audit logger,
 * and hands each to the listeners, so other views of the same trail (the xferlog) come
 * from the one record per operation the core writes.
 */
export class AuditLog {
  private readonly listeners: AuditListener[] = [];

  constructor(private readonly logger: winston.Logger) {}

  /** Adds a listener called with every record after it is written. */
  listen(listener: AuditListener): void {
    this.listeners.push(listener);
  }

  /** Records one action. */
  record(event: AuditEvent): void {
    this.logger.info(event.action, { ...event });
    for (const listener of this.listeners) listener(event);
  }
}
