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
}

/**
 * Writes audit records (one JSON object per line, with a timestamp) to the audit logger,
 * and hands each to the observers (the metrics count what the trail records).
 */
export class AuditLog {
  private readonly observers: ((event: AuditEvent) => void)[] = [];

  constructor(private readonly logger: winston.Logger) {}

  /** Calls `observer` with every record from now on; it must be cheap and must not throw. */
  observe(observer: (event: AuditEvent) => void): void {
    this.observers.push(observer);
  }

  /** Records one action. */
  record(event: AuditEvent): void {
    this.logger.info(event.action, { ...event });
    for (const observer of this.observers) observer(event);
  }
}
