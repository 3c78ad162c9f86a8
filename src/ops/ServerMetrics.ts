import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { EngineStats } from '../core/ProtocolEngine.js';
import type { AuditEvent } from '../logging/AuditLog.js';

/** A user with a quota, as the quota gauges show them. */
export interface QuotaUsage {
  user: string;
  /** The byte quota (undefined: none). */
  limitBytes?: number;
  /** The file-count quota (undefined: none). */
  limitFiles?: number;
  /** What the user stores; undefined until their home has been measured once. */
  used?: { bytes: number; files: number };
}

/** What the metrics read at each scrape (state, as opposed to the events they count). */
export interface MetricsSources {
  /** Open control connections, and how many of them are running a transfer. */
  sessions(): { open: number; transferring: number };
  /** What only the protocol engine knows (passive ports). */
  engine(): EngineStats;
  /** Client addresses banned now. */
  bansActive(): number;
  /** Every user with a byte or file quota (bounded by the users file). */
  quotas(): QuotaUsage[];
}

type Direction = 'upload' | 'download';
type Result = AuditEvent['result'];

const DIRECTIONS: readonly Direction[] = ['upload', 'download'];
const RESULTS: readonly Result[] = ['ok', 'failed', 'aborted'];
const REPLY_CLASSES = ['1xx', '2xx', '3xx', '4xx', '5xx'] as const;
const LINT_FAILING_DEFAULTS = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'];

/** Seconds: a small file on loopback takes milliseconds, a large one over a WAN hours. */
const DURATION_BUCKETS = [0.005, 0.025, 0.1, 0.5, 1, 5, 15, 60, 300, 1800, 7200];
/** Bytes: powers of 4 from 1 KiB to 16 GiB. */
const SIZE_BUCKETS = Array.from({ length: 13 }, (_, i) => 1024 * 4 ** i);

/**
 * The server's Prometheus metrics, in a registry of its own (several servers can run in
 * one process, e.g. in tests). Events come from the audit trail (one record per login,
 * transfer, ban…) and from the engine's reply hook; they only bump plain numbers, which
 * are copied into the exposition when it is scraped, so the hot paths allocate nothing.
 * Transfer durations and sizes go straight into their histograms (one observation per
 * finished transfer). State (sessions, passive ports, bans, quotas) is read from
 * `sources` at each scrape. No label carries a file name or a client address: the only
 * open-ended label is the user of the quota gauges, bounded by the users file.
 *
 * The default process metrics (CPU, resident memory, event-loop lag, GC, heap, handles)
 * keep their usual unprefixed names (`process_*`, `nodejs_*`), so existing Node.js
 * dashboards and alerts work as they are; everything DFOS-specific starts with `dfos_`.
 */
export class ServerMetrics {
  readonly registry = new Registry();
  private readonly logins = { ok: 0, failed: 0 };
  private readonly transfers: Record<Direction, Record<Result, number>> = {
    upload: { ok: 0, failed: 0, aborted: 0 },
    download: { ok: 0, failed: 0, aborted: 0 },
  };
  private readonly bytes: Record<Direction, number> = { upload: 0, download: 0 };
  /** Replies by class; index 1 is 1xx … index 5 is 5xx (0 is unused). */
  private readonly replies = [0, 0, 0, 0, 0, 0];
  private bans = 0;
  private readonly durations: Record<Direction, Histogram.Internal<'direction'>>;
  private readonly sizes: Record<Direction, Histogram.Internal<'direction'>>;

  constructor(sources: MetricsSources) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry });
    // Gauges named like counters, which promtool's lint refuses; their by-type siblings
    // (nodejs_active_handles{type}, …) carry the same numbers.
    for (const name of LINT_FAILING_DEFAULTS) this.registry.removeSingleMetric(name);

    const counted = <L extends string>(name: string, help: string, labelNames: readonly L[], publish: (counter: Counter<L>) => void) =>
      new Counter<L>({
        name,
        help,
        labelNames,
        registers,
        collect() {
          this.reset();
          publish(this);
        },
      });
    counted('dfos_logins_total', 'Login attempts by result (ok, failed).', ['result'], (c) => {
      c.inc({ result: 'ok' }, this.logins.ok);
      c.inc({ result: 'failed' }, this.logins.failed);
    });
    counted('dfos_transfers_total', 'Finished file transfers by direction (upload, download) and result (ok, failed, aborted).', ['direction', 'result'], (c) => {
      for (const direction of DIRECTIONS) for (const result of RESULTS) c.inc({ direction, result }, this.transfers[direction][result]);
    });
    counted('dfos_transfer_bytes_total', 'Bytes moved by file transfers (whatever their result), by direction.', ['direction'], (c) => {
      for (const direction of DIRECTIONS) c.inc({ direction }, this.bytes[direction]);
    });
    counted('dfos_replies_total', 'Replies sent on control connections, by class (1xx to 5xx).', ['class'], (c) => {
      REPLY_CLASSES.forEach((cls, i) => c.inc({ class: cls }, this.replies[i + 1]!));
    });
    counted('dfos_bans_total', 'Client addresses banned after repeated failed logins, since start.', [], (c) => c.inc(this.bans));
    counted('dfos_passive_ports_exhausted_total', 'Passive data requests (PASV, EPSV) refused because every port of the range was in use.', [], (c) =>
      c.inc(sources.engine().passivePortsExhausted),
    );

    // With --workers N the primary sums the workers' metrics; a gauge every worker reports
    // alike (bans, quotas: shared state) takes the highest instead ('max').
    const gauge = <L extends string>(name: string, help: string, labelNames: readonly L[], read: (gauge: Gauge<L>) => void, aggregator: 'sum' | 'max' = 'sum') =>
      new Gauge<L>({
        name,
        help,
        labelNames,
        registers,
        aggregator,
        collect() {
          read(this);
        },
      });
    gauge('dfos_sessions', 'Open control connections (logged in or not).', [], (g) => g.set(sources.sessions().open));
    gauge('dfos_transfers_in_progress', 'Control connections running a data transfer now.', [], (g) => g.set(sources.sessions().transferring));
    gauge('dfos_passive_ports_in_use', 'Passive data ports with a listener open now.', [], (g) => g.set(sources.engine().passivePortsInUse));
    // Not "_total": Prometheus reserves that suffix for counters (promtool check metrics).
    gauge('dfos_passive_ports_range_size', 'Size of the passive port range (0: the system picks any free port).', [], (g) => g.set(sources.engine().passivePortRangeSize));
    gauge('dfos_bans_active', 'Client addresses banned now.', [], (g) => g.set(sources.bansActive()), 'max');
    const quotaGauge = (name: string, help: string, value: (q: QuotaUsage) => number | undefined) =>
      gauge(name, help, ['user'], (g) => {
        g.reset(); // users removed from users.json, or whose quota was removed, disappear
        for (const q of sources.quotas()) {
          const v = value(q);
          if (v !== undefined) g.set({ user: q.user }, v);
        }
      }, 'max');
    quotaGauge('dfos_quota_limit_bytes', "The byte quota of each user who has one.", (q) => q.limitBytes);
    quotaGauge('dfos_quota_used_bytes', 'Bytes stored by each user with a quota (once their home has been measured).', (q) => q.used?.bytes);
    quotaGauge('dfos_quota_limit_files', 'The file-count quota of each user who has one.', (q) => q.limitFiles);
    quotaGauge('dfos_quota_used_files', 'Files stored by each user with a quota (once their home has been measured).', (q) => q.used?.files);

    const histogram = (name: string, help: string, buckets: number[]) => {
      const h = new Histogram<'direction'>({ name, help, labelNames: ['direction'], buckets, registers });
      for (const direction of DIRECTIONS) h.zero({ direction });
      return { upload: h.labels('upload'), download: h.labels('download') };
    };
    this.durations = histogram('dfos_transfer_duration_seconds', 'Duration of successful file transfers, by direction.', DURATION_BUCKETS);
    this.sizes = histogram('dfos_transfer_size_bytes', 'Size of successful file transfers, by direction.', SIZE_BUCKETS);
  }

  /** Counts one audit record (logins, transfers, bans); other actions are not metrics. */
  observe(event: AuditEvent): void {
    switch (event.action) {
      case 'login':
        if (event.result === 'ok') this.logins.ok++;
        else this.logins.failed++;
        return;
      case 'upload':
      case 'download': {
        const direction = event.action;
        this.transfers[direction][event.result]++;
        const bytes = event.bytes ?? 0;
        this.bytes[direction] += bytes;
        if (event.result === 'ok') {
          this.durations[direction].observe((event.durationMs ?? 0) / 1000);
          this.sizes[direction].observe(bytes);
        }
        return;
      }
      case 'ban':
        this.bans++;
        return;
      default:
        return;
    }
  }

  /** Counts one reply sent on a control connection. */
  reply(code: number): void {
    const cls = (code / 100) | 0;
    if (cls >= 1 && cls <= 5) this.replies[cls]!++;
  }

  /** The exposition in Prometheus' text format, and its content type. */
  async exposition(): Promise<{ contentType: string; text: string }> {
    return { contentType: this.registry.contentType, text: await this.registry.metrics() };
  }
}
