import type { HistoryPoint, StatusSnapshot } from './StatusBoard.js';

/** Failed logins the merged page lists (the same as one node's board keeps by default). */
const FAILED_LOGINS_SHOWN = 20;

/**
 * One status picture of the whole server from its workers' pictures (`--workers N`: each
 * worker's board sees only its own sessions). Sessions and transfers are listed together;
 * totals are summed; failed logins are merged newest first; the history is summed point by
 * point, aligned on the newest point of each worker (the workers sample at the same
 * interval from about the same start, so their k-th newest points cover the same moment; a
 * worker restarted later simply has fewer points). An empty list gives an empty picture.
 */
export function mergeStatusSnapshots(parts: StatusSnapshot[], now = Date.now()): StatusSnapshot {
  const intervalMs = parts[0]?.history.intervalMs ?? 10_000;
  const longest = Math.max(0, ...parts.map((p) => p.history.points.length));
  const points: HistoryPoint[] = [];
  for (let back = longest; back >= 1; back--) {
    const merged: HistoryPoint = { at: 0, spanMs: 1, sessions: 0, bytesUp: 0, bytesDown: 0 };
    for (const part of parts) {
      const p = part.history.points[part.history.points.length - back];
      if (!p) continue;
      merged.at = Math.max(merged.at, p.at);
      merged.spanMs = Math.max(merged.spanMs, p.spanMs);
      merged.sessions += p.sessions;
      merged.bytesUp += p.bytesUp;
      merged.bytesDown += p.bytesDown;
    }
    points.push(merged);
  }
  const totals = { loginsOk: 0, loginsFailed: 0, uploads: 0, downloads: 0, bytesUp: 0, bytesDown: 0 };
  for (const part of parts) for (const key of Object.keys(totals) as (keyof typeof totals)[]) totals[key] += part.totals[key];
  return {
    now,
    startedAt: parts.length === 0 ? now : Math.min(...parts.map((p) => p.startedAt)),
    sessions: parts.flatMap((p) => p.sessions).sort((a, b) => a.since - b.since),
    transfers: parts.flatMap((p) => p.transfers).sort((a, b) => a.startedAt - b.startedAt),
    history: { intervalMs, points },
    failedLogins: parts
      .flatMap((p) => p.failedLogins)
      .sort((a, b) => b.at - a.at)
      .slice(0, FAILED_LOGINS_SHOWN),
    totals,
  };
}
