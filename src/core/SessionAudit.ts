import type { AuditEvent, AuditLog } from '../logging/AuditLog.js';

/** Who a session is, for every record it writes (protocol-independent). */
export interface SessionIdentity {
  /** Unique id of the connection (also in dfos.log lines). */
  readonly id: string;
  /** The client's address. */
  readonly client: string | undefined;
}

/**
 * The audit trail of one connection: every record carries the same identity fields
 * (session, user, client), whether it is a login, a logout, a failure or a transfer.
 */
export class SessionAudit {
  constructor(
    private readonly log: AuditLog,
    readonly identity: SessionIdentity,
  ) {}

  /** Writes one record for `user` (undefined before login). */
  record(user: string | undefined, event: Omit<AuditEvent, 'session' | 'user' | 'client'>): void {
    this.log.record({ session: this.identity.id, user, client: this.identity.client, ...event });
  }
}
