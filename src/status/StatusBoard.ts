import type { AuditEvent } from '../logging/AuditLog.js';
import type { EngineSession } from '../core/ProtocolEngine.js';

/** One open connection on the status page. */
export interface SessionRow {
  id: string;
  user: string | undefined;
  client: string | undefined;
  /** When it connected (ms since the epoch). */
  since: number;
  /** The verb being run, if any. */
  command: string | undefined;
  tls: boolean;
}

/** One running transfer on the status page. */
export interface TransferRow {
  session: string;
  user: string | undefined;
  client: string | undefined;
  direction: 'upload' | 'download' | 'listing';
  path: string | undefined;
  bytes: number;
  /** Total bytes of a download (undefined for uploads and listings). */
  size: number | undefined;
  startedAt: number;
  /** Average rate since it started, bytes/s. */
  rate: number;
}

/** One point of the last hour: sessions open and bytes moved in the interval before it. */
export interface HistoryPoint {
  at: number;
  /** How long the interval before this point was (ms): bytes / spanMs is the rate. */
  spanMs: number;
  sessions: number;
  bytesUp: number;
  bytesDown: number;
}

/** A failed login, for the operator (the user name as typed, cut to 64 characters). */
export interface FailedLoginRow {
  at: number;
  user: string | undefined;
  client: string | undefined;
  reason: string | undefined;
}

/** Everything the status page shows, as `/api/status` returns it. */
export interface StatusSnapshot {
  now: number;
  startedAt: number;
  sessions: SessionRow[];
  transfers: TransferRow[];
  history: { intervalMs: number; points: HistoryPoint[] };
  failedLogins: FailedLoginRow[];
  totals: { loginsOk: number; loginsFailed: number; uploads: number; downloads: number; bytesUp: number; bytesDown: number };
}

/** What the board needs from the server. */
export interface StatusBoardOptions {
  sessions(): EngineSession[];
  /** Sampling interval of the history (ms, default 10 000). */
  intervalMs?: number;
  /** How far back the history goes (ms, default one hour). */
  historyMs?: number;
  /** Failed logins kept (default 20). */
  failedLogins?: number;
}

/**
 * The live picture of one node for the status page: open sessions with what they run,
 * transfers with progress and rate, sessions and throughput over the last hour (sampled
 * every interval, in-flight bytes included so a long transfer shows as it runs, not as a
 * spike when it ends), recent failed logins and totals since start. It observes the audit
 * trail (one record per operation) and samples the engine's sessions; memory is bounded
 * (a fixed number of points and failed logins).
 */
export class StatusBoard {
  private readonly startedAt = Date.now();
  private readonly intervalMs: number;
  private readonly maxPoints: number;
  private readonly maxFailed: number;
  private readonly points: HistoryPoint[] = [];
  private readonly failed: FailedLoginRow[] = [];
  private readonly totals = { loginsOk: 0, loginsFailed: 0, uploads: 0, downloads: 0, bytesUp: 0, bytesDown: 0 };
  /** Bytes moved in the current interval (completed transfers' unseen bytes, in-flight deltas). */
  private pending = { up: 0, down: 0 };
  /** In-flight bytes already counted, per session (reset when its transfer changes). */
  private readonly seen = new Map<string, { startedAt: number; bytes: number }>();
  /** When each session's last transfer was recorded as finished (its bytes are all counted). */
  private readonly finishedAt = new Map<string, number>();
  private timer: NodeJS.Timeout | undefined;
  private lastSample = this.startedAt;

  constructor(private readonly options: StatusBoardOptions) {
    this.intervalMs = options.intervalMs ?? 10_000;
    this.maxPoints = Math.max(1, Math.round((options.historyMs ?? 3_600_000) / this.intervalMs));
    this.maxFailed = options.failedLogins ?? 20;
  }

  /** Starts sampling: a first point after a second (so the charts show something soon), then one per interval. */
  start(): void {
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.sample();
      this.timer = setInterval(() => this.sample(), this.intervalMs);
      this.timer.unref();
    }, Math.min(1000, this.intervalMs));
    this.timer.unref();
  }

  stop(): void {
    clearTimeout(this.timer);
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Takes one audit record into account (logins, finished transfers). */
  observe(event: AuditEvent): void {
    if (event.action === 'login') {
      if (event.result === 'ok') this.totals.loginsOk++;
      else {
        this.totals.loginsFailed++;
        this.failed.unshift({ at: Date.now(), user: event.user, client: event.client, reason: event.reason });
        if (this.failed.length > this.maxFailed) this.failed.length = this.maxFailed;
      }
      return;
    }
    if (event.action !== 'upload' && event.action !== 'download') return;
    const bytes = event.bytes ?? 0;
    const counted = event.session === undefined ? 0 : (this.seen.get(event.session)?.bytes ?? 0);
    if (event.session !== undefined) {
      this.seen.delete(event.session);
      this.finishedAt.set(event.session, Date.now());
    }
    const unseen = Math.max(0, bytes - counted);
    if (event.action === 'upload') {
      this.totals.bytesUp += bytes;
      if (event.result === 'ok') this.totals.uploads++;
      this.pending.up += unseen;
    } else {
      this.totals.bytesDown += bytes;
      if (event.result === 'ok') this.totals.downloads++;
      this.pending.down += unseen;
    }
  }

  /** Closes the current interval: one history point. */
  sample(now = Date.now()): void {
    const sessions = this.options.sessions();
    const open = new Set<string>();
    for (const s of sessions) {
      open.add(s.id);
      const transfer = s.activity().transfer;
      const finished = this.finishedAt.get(s.id);
      // Recorded as finished but not yet cleared by the engine: already counted in full.
      if (finished !== undefined && transfer && transfer.startedAt <= finished) continue;
      this.finishedAt.delete(s.id);
      if (!transfer || transfer.direction === 'listing') continue;
      const before = this.seen.get(s.id);
      const counted = before && before.startedAt === transfer.startedAt ? before.bytes : 0;
      const delta = Math.max(0, transfer.bytes - counted);
      if (transfer.direction === 'upload') this.pending.up += delta;
      else this.pending.down += delta;
      this.seen.set(s.id, { startedAt: transfer.startedAt, bytes: transfer.bytes });
    }
    for (const id of this.seen.keys()) if (!open.has(id)) this.seen.delete(id);
    for (const id of this.finishedAt.keys()) if (!open.has(id)) this.finishedAt.delete(id);
    this.points.push({ at: now, spanMs: Math.max(1, now - this.lastSample), sessions: sessions.length, bytesUp: this.pending.up, bytesDown: this.pending.down });
    this.lastSample = now;
    if (this.points.length > this.maxPoints) this.points.splice(0, this.points.length - this.maxPoints);
    this.pending = { up: 0, down: 0 };
  }

  snapshot(now = Date.now()): StatusSnapshot {
    const sessions: SessionRow[] = [];
    const transfers: TransferRow[] = [];
    for (const s of this.options.sessions()) {
      const activity = s.activity();
      sessions.push({ id: s.id, user: s.user, client: s.client, since: s.startedAt, command: activity.command, tls: s.tls !== undefined });
      const t = activity.transfer;
      if (t) {
        const seconds = Math.max(0.001, (now - t.startedAt) / 1000);
        transfers.push({ session: s.id, user: s.user, client: s.client, direction: t.direction, path: t.path, bytes: t.bytes, size: t.size, startedAt: t.startedAt, rate: Math.round(t.bytes / seconds) });
      }
    }
    return {
      now,
      startedAt: this.startedAt,
      sessions,
      transfers,
      history: { intervalMs: this.intervalMs, points: [...this.points] },
      failedLogins: [...this.failed],
      totals: { ...this.totals },
    };
  }
}
