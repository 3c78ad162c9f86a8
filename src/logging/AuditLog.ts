import type { LogSink } from './logSink.js';
import { redact } from './redact.js';

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
 * Writes audit records (one JSON object per line, with a timestamp) to audit.log, and hands
 * each to the listeners, so other views of the same trail (the xferlog) come from the one
 * record per operation the core writes.
 *
 * The line is made here, not by a winston logger: the same JSON (keys sorted, `level` and
 * `message` as winston wrote them, secrets redacted) without a logger's stream pipeline,
 * which cost ~30 µs of CPU per record, two records per session (login, logout).
 */
export class AuditLog {
  private readonly listeners: AuditListener[] = [];

  /** `fields` go into every record (a worker's `worker: N`). */
  constructor(
    private readonly sink: Pick<LogSink, 'write'>,
    private readonly fields: Record<string, unknown> = {},
  ) {}

  /** Adds a listener called with every record after it is written. */
  listen(listener: AuditListener): void {
    this.listeners.push(listener);
  }

  /** Records one action. */
  record(event: AuditEvent): void {
    this.sink.write(auditLine(event, this.fields, new Date()));
    for (const listener of this.listeners) listener(event);
  }
}

/** One audit.log line: the record's defined fields, sorted by key, as JSON. */
export function auditLine(event: AuditEvent, fields: Record<string, unknown>, time: Date): string {
  const record = redact({ ...fields, ...event, level: 'info', message: event.action, timestamp: time.toISOString() }) as Record<string, unknown>;
  const sorted: Record<string, unknown> = {};
  for (const key of Object.keys(record).sort()) if (record[key] !== undefined) sorted[key] = record[key];
  return JSON.stringify(sorted);
}
