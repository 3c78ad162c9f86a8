import type { AuditEvent, AuditLog } from '../logging/AuditLog.js';

/** Who a session is, for every record it writes (protocol-independent). */
export interface SessionIdentity {
  /** Unique id of the connection (also in dfos.log lines). */
  readonly id: string;
  /** The client's address (through a trusted proxy: the one its PROXY header named). */
  readonly client: string | undefined;
  /** The trusted proxy (load balancer) the connection came through, if any. */
  readonly proxy?: string | undefined;
}

/**
 * The audit trail of one connection: every record carries the same identity fields
 * (session, user, client, and proxy when it came through one), whether it is a login, a
 * logout, a failure or a transfer.
 */
export class SessionAudit {
  constructor(
    private readonly log: AuditLog,
    readonly identity: SessionIdentity,
  ) {}

  /** Writes one record for `user` (undefined before login). */
  record(user: string | undefined, event: Omit<AuditEvent, 'session' | 'user' | 'client' | 'proxy'>): void {
    const proxy = this.identity.proxy;
    this.log.record({ session: this.identity.id, user, client: this.identity.client, ...(proxy !== undefined ? { proxy } : {}), ...event });
  }
}
