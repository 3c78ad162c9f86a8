import type { StatusSnapshot } from './StatusBoard.js';
import { escapeHtml, renderParts, RENDER_FUNCTIONS } from './statusRender.js';

/**
 * The live status page: server-rendered HTML (readable without JavaScript), a stylesheet
 * and a small script that re-renders the same fragments from `/api/status` every two
 * seconds. Everything is served by the admin listener itself (no CDN, no build step), and
 * the page needs nothing inline, so it works under a strict Content-Security-Policy.
 */

/** Where the page's parts are served, relative to the page. */
export const STATUS_PATHS = { page: '/', script: '/status.js', style: '/status.css', json: '/api/status' } as const;

/** The Content-Security-Policy the page is served with. */
export const STATUS_CSP = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/** The page for `snap`; `title` names the node (e.g. its FTP address). */
export function renderStatusPage(snap: StatusSnapshot, title: string): string {
  const parts = renderParts(snap);
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>DFOS status — ${escapeHtml(title)}</title>
<link rel="stylesheet" href="status.css">
<script src="status.js" defer></script>
</head>
<body>
<header><h1>DFOS <span class="muted">${escapeHtml(title)}</span></h1><div id="updated" class="muted">${parts.updated}</div></header>
<main>
<section class="stats" id="summary">${parts.summary}</section>
<section class="charts">
<div class="card"><h2>Throughput, last hour</h2><div id="throughput">${parts.throughput}</div></div>
<div class="card"><h2>Sessions, last hour</h2><div id="sessions-chart">${parts['sessions-chart']}</div></div>
</section>
<section class="card"><h2>Running transfers</h2>
<table><thead><tr><th>User</th><th>Direction</th><th>Path</th><th>Progress</th><th>Rate</th></tr></thead><tbody id="transfers">${parts.transfers}</tbody></table>
</section>
<section class="card"><h2>Sessions</h2>
<table><thead><tr><th>User</th><th>Client</th><th>Connected</th><th>Command</th><th></th></tr></thead><tbody id="sessions">${parts.sessions}</tbody></table>
</section>
<section class="card"><h2>Recent failed logins</h2>
<table><thead><tr><th>Time (UTC)</th><th>User</th><th>Client</th><th>Reason</th></tr></thead><tbody id="failed-logins">${parts['failed-logins']}</tbody></table>
</section>
</main>
</body>
</html>
`;
}

/** The page's script: the render functions' own source, then a two-second poll. */
export const STATUS_SCRIPT = `'use strict';
// Source transformers that keep function names (esbuild, under tsx) wrap functions in __name().
function __name(target) { return target; }
${RENDER_FUNCTIONS.map((f) => f.toString()).join('\n\n')}

async function refresh() {
  try {
    const response = await fetch('api/status', { cache: 'no-store' });
    if (!response.ok) throw new Error('HTTP ' + response.status);
    const parts = renderParts(await response.json());
    for (const [id, html] of Object.entries(parts)) {
      const element = document.getElementById(id);
      if (element) element.innerHTML = html;
    }
    document.body.classList.remove('stale');
    document.body.dataset.live = 'yes';
  } catch (err) {
    document.body.classList.add('stale');
    const updated = document.getElementById('updated');
    if (updated) updated.textContent = 'not updating: ' + err.message;
  }
}
setInterval(refresh, 2000);
refresh();
`;

/** The page's stylesheet. */
export const STATUS_STYLE = `
:root { color-scheme: light; --fg: #1f2328; --muted: #6e7781; --line: #d0d7de; --card: #ffffff; --bg: #f6f8fa; --accent: #1c7ed6; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg); background: var(--bg); }
header { display: flex; align-items: baseline; justify-content: space-between; padding: 16px 24px; background: #24292f; color: #fff; }
header h1 { margin: 0; font-size: 20px; }
header .muted { color: #afb8c1; }
main { padding: 16px 24px; max-width: 1200px; margin: 0 auto; }
.stale header { background: #9a6700; }
.muted { color: var(--muted); }
.stats { display: grid; grid-template-columns: repeat(auto-fit, minmax(160px, 1fr)); gap: 12px; margin-bottom: 16px; }
.stat, .card { background: var(--card); border: 1px solid var(--line); border-radius: 8px; }
.stat { padding: 10px 14px; }
.stat .label { color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: .04em; }
.stat .value { font-size: 20px; font-weight: 600; margin-top: 2px; }
.charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(420px, 1fr)); gap: 12px; margin-bottom: 16px; }
.card { padding: 12px 16px; margin-bottom: 16px; }
.charts .card { margin-bottom: 0; }
.card h2 { margin: 0 0 8px; font-size: 15px; }
table { width: 100%; border-collapse: collapse; }
th, td { text-align: left; padding: 6px 8px; border-top: 1px solid var(--line); vertical-align: middle; }
th { color: var(--muted); font-weight: 600; font-size: 12px; border-top: none; }
td.path { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; word-break: break-all; }
td.empty { color: var(--muted); text-align: center; padding: 14px; }
code { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; background: #eff1f3; padding: 1px 5px; border-radius: 4px; }
.tag { display: inline-block; font-size: 11px; padding: 1px 6px; border-radius: 10px; background: #dafbe1; color: #116329; }
progress { width: 120px; height: 8px; vertical-align: middle; accent-color: var(--accent); }
.chart { width: 100%; height: auto; display: block; }
.chart .grid { stroke: var(--line); stroke-width: 1; }
.chart .axis { fill: var(--muted); font-size: 11px; }
.legend { display: flex; gap: 14px; font-size: 12px; color: var(--muted); margin-top: 4px; }
.swatch { display: inline-block; width: 10px; height: 10px; margin-right: 5px; vertical-align: -1px; }
`;
