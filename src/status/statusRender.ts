import type { StatusSnapshot } from './StatusBoard.js';

/**
 * The status page's HTML fragments, written once and used twice: the server renders the
 * first page with them, and the page's script (statusAssets.ts) carries their source
 * (Function.prototype.toString) to re-render from `/api/status` every few seconds. So they
 * are plain, self-contained functions: no imports, no module state, each calling only the
 * others by name. Everything that comes from a client (user names, paths, addresses,
 * reasons) goes through escapeHtml.
 */

export function escapeHtml(value: unknown): string {
  return String(value ?? '')
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#39;');
}

export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = n;
  let i = 0;
  while (value >= 1024 && i < units.length - 1) {
    value /= 1024;
    i++;
  }
  return `${i === 0 ? value : value.toFixed(value < 10 ? 1 : 0)} ${units[i]}`;
}

export function formatAge(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
  return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
}

export function formatClock(ms: number): string {
  return new Date(ms).toISOString().slice(11, 19);
}

export function sessionRows(snap: StatusSnapshot): string {
  if (snap.sessions.length === 0) return '<tr><td colspan="5" class="empty">No sessions</td></tr>';
  return snap.sessions
    .map(
      (s) =>
        `<tr><td>${s.user === undefined ? '<span class="muted">not logged in</span>' : escapeHtml(s.user)}</td>` +
        `<td>${escapeHtml(s.client)}</td><td title="${escapeHtml(new Date(s.since).toISOString())}">${formatAge(snap.now - s.since)}</td>` +
        `<td>${s.command === undefined ? '<span class="muted">idle</span>' : `<code>${escapeHtml(s.command)}</code>`}</td>` +
        `<td>${s.tls ? '<span class="tag">TLS</span>' : ''}</td></tr>`,
    )
    .join('');
}

export function transferRows(snap: StatusSnapshot): string {
  if (snap.transfers.length === 0) return '<tr><td colspan="5" class="empty">No transfers running</td></tr>';
  return snap.transfers
    .map((t) => {
      const share = t.size ? Math.min(100, Math.round((t.bytes / t.size) * 100)) : undefined;
      const progress =
        share === undefined
          ? `${formatBytes(t.bytes)}`
          : `<progress max="100" value="${share}"></progress> ${share}% of ${formatBytes(t.size ?? 0)}`;
      const arrow = t.direction === 'upload' ? '↑ upload' : t.direction === 'download' ? '↓ download' : '≡ listing';
      return (
        `<tr><td>${escapeHtml(t.user)}</td><td>${arrow}</td><td class="path">${escapeHtml(t.path ?? '')}</td>` +
        `<td>${progress}</td><td>${formatBytes(t.rate)}/s</td></tr>`
      );
    })
    .join('');
}

export function failedLoginRows(snap: StatusSnapshot): string {
  if (snap.failedLogins.length === 0) return '<tr><td colspan="4" class="empty">No failed logins</td></tr>';
  return snap.failedLogins
    .map((f) => `<tr><td>${formatClock(f.at)}</td><td>${escapeHtml(f.user)}</td><td>${escapeHtml(f.client)}</td><td>${escapeHtml(f.reason)}</td></tr>`)
    .join('');
}

export function summary(snap: StatusSnapshot): string {
  const t = snap.totals;
  const cells = [
    ['Sessions', String(snap.sessions.length)],
    ['Transfers running', String(snap.transfers.length)],
    ['Logins ok / failed', `${t.loginsOk} / ${t.loginsFailed}`],
    ['Uploaded', `${formatBytes(t.bytesUp)} (${t.uploads} files)`],
    ['Downloaded', `${formatBytes(t.bytesDown)} (${t.downloads} files)`],
    ['Up for', formatAge(snap.now - snap.startedAt)],
  ];
  return cells.map(([label, value]) => `<div class="stat"><div class="label">${label}</div><div class="value">${escapeHtml(value)}</div></div>`).join('');
}

/**
 * An SVG line chart of the last hour: one polyline per series, the y axis from 0 to the
 * largest value (labelled with `format`), the x axis in minutes ago.
 */
export function lineChart(
  snap: StatusSnapshot,
  series: { key: 'sessions' | 'bytesUp' | 'bytesDown'; label: string; color: string; perSecond: boolean }[],
  unit: 'bytes' | 'count',
): string {
  const width = 560;
  const height = 180;
  const left = 64;
  const bottom = 22;
  const span = snap.history.intervalMs * Math.max(1, Math.round(3_600_000 / snap.history.intervalMs));
  const points = snap.history.points;
  const value = (p: StatusSnapshot['history']['points'][number], s: (typeof series)[number]) =>
    s.perSecond ? p[s.key] / (p.spanMs / 1000) : p[s.key];
  let max = 0;
  for (const p of points) for (const s of series) max = Math.max(max, value(p, s));
  max = unit === 'count' ? Math.max(4, 2 * Math.ceil((max * 1.1) / 2)) : max > 0 ? max * 1.1 : 1024;
  const x = (at: number) => left + ((width - left - 8) * (span - (snap.now - at))) / span;
  const y = (v: number) => 8 + (height - bottom - 8) * (1 - v / max);
  const label = (v: number) => (unit === 'bytes' ? `${formatBytes(v)}/s` : String(Math.round(v)));
  let svg = `<svg viewBox="0 0 ${width} ${height}" role="img" class="chart">`;
  for (const f of [0, 0.5, 1]) {
    const v = max * f;
    svg += `<line x1="${left}" x2="${width - 8}" y1="${y(v)}" y2="${y(v)}" class="grid"/><text x="${left - 6}" y="${y(v) + 4}" class="axis" text-anchor="end">${escapeHtml(label(v))}</text>`;
  }
  for (const m of [60, 45, 30, 15, 0]) {
    const anchor = m === 60 ? 'start' : m === 0 ? 'end' : 'middle';
    svg += `<text x="${x(snap.now - m * 60_000)}" y="${height - 6}" class="axis" text-anchor="${anchor}">${m === 0 ? 'now' : `-${m}m`}</text>`;
  }
  for (const s of series) {
    const coords = points.filter((p) => snap.now - p.at <= span).map((p) => `${x(p.at).toFixed(1)},${y(value(p, s)).toFixed(1)}`);
    if (coords.length === 1) {
      const [cx, cy] = coords[0]!.split(',');
      svg += `<circle cx="${cx}" cy="${cy}" r="3" fill="${s.color}"/>`;
    } else if (coords.length > 1) {
      svg += `<polyline points="${coords.join(' ')}" fill="none" stroke="${s.color}" stroke-width="2"/>`;
    }
  }
  svg += '</svg>';
  const legend = series.map((s) => `<span class="key"><svg class="swatch" viewBox="0 0 10 10"><rect width="10" height="10" rx="2" fill="${s.color}"/></svg>${escapeHtml(s.label)}</span>`).join('');
  return `${svg}<div class="legend">${legend}${points.length === 0 ? '<span class="muted">no samples yet</span>' : ''}</div>`;
}

export function throughputChart(snap: StatusSnapshot): string {
  return lineChart(
    snap,
    [
      { key: 'bytesUp', label: 'upload', color: '#d9480f', perSecond: true },
      { key: 'bytesDown', label: 'download', color: '#1c7ed6', perSecond: true },
    ],
    'bytes',
  );
}

export function sessionsChart(snap: StatusSnapshot): string {
  return lineChart(snap, [{ key: 'sessions', label: 'sessions open', color: '#2b8a3e', perSecond: false }], 'count');
}

/** The fragments by element id: the server fills them in, the script replaces them. */
export function renderParts(snap: StatusSnapshot): Record<string, string> {
  return {
    summary: summary(snap),
    sessions: sessionRows(snap),
    transfers: transferRows(snap),
    'failed-logins': failedLoginRows(snap),
    throughput: throughputChart(snap),
    'sessions-chart': sessionsChart(snap),
    updated: `updated ${formatClock(snap.now)} UTC`,
  };
}

/** Every function above, in the order the script declares them. */
export const RENDER_FUNCTIONS = [escapeHtml, formatBytes, formatAge, formatClock, sessionRows, transferRows, failedLoginRows, summary, lineChart, throughputChart, sessionsChart, renderParts];
