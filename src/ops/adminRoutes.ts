import type { StatusSnapshot } from '../status/StatusBoard.js';
import { renderStatusPage, STATUS_CSP, STATUS_PATHS, STATUS_SCRIPT, STATUS_STYLE } from '../status/statusPage.js';
import type { AdminRoute } from './AdminServer.js';

/** Where the server is in its life, as /readyz reports it (200 only when ready). */
export type Readiness = 'starting' | 'ready' | 'draining';

/** What the standard admin routes read (one process's, or the primary's sums over its workers). */
export interface AdminRouteSources {
  /** The Prometheus exposition (ServerMetrics.exposition, or the workers' summed). */
  metrics: { exposition(): Promise<{ contentType: string; text: string }> };
  readiness(): Readiness;
  /** The live status page's data (StatusBoard.snapshot, or the workers' merged), and the node's name in its title. */
  status: { snapshot(): StatusSnapshot | Promise<StatusSnapshot>; title: string };
}

/**
 * The admin listener's standard pages: `/metrics` (Prometheus text format), `/healthz`
 * (200 while the process serves HTTP at all: liveness) and `/readyz` (200 only while the
 * FTP listener accepts and the server is not draining, 503 otherwise, so a load balancer
 * stops sending new clients the moment shutdown begins). The two health pages are public
 * (they reveal nothing but up/ready); /metrics needs the token when there is one. The
 * live status page is `/` (HTML), `/status.js`, `/status.css` and `/api/status` (JSON),
 * all behind the token when there is one. A new page is one more entry here (or an
 * AdminServer.route() call).
 */
export function adminRoutes(sources: AdminRouteSources): Record<string, AdminRoute> {
  return {
    '/metrics': {
      async handle() {
        const { contentType, text } = await sources.metrics.exposition();
        return { status: 200, body: text, contentType };
      },
    },
    [STATUS_PATHS.page]: {
      handle: async () => ({
        status: 200,
        body: renderStatusPage(await sources.status.snapshot(), sources.status.title),
        contentType: 'text/html; charset=utf-8',
        headers: PAGE_HEADERS,
      }),
    },
    [STATUS_PATHS.script]: {
      handle: () => ({ status: 200, body: STATUS_SCRIPT, contentType: 'text/javascript; charset=utf-8', headers: PAGE_HEADERS }),
    },
    [STATUS_PATHS.style]: {
      handle: () => ({ status: 200, body: STATUS_STYLE, contentType: 'text/css; charset=utf-8', headers: PAGE_HEADERS }),
    },
    [STATUS_PATHS.json]: {
      handle: async () => ({ status: 200, body: JSON.stringify(await sources.status.snapshot()), contentType: 'application/json; charset=utf-8', headers: PAGE_HEADERS }),
    },
    '/healthz': {
      public: true,
      handle: () => ({ status: 200, body: 'ok\n' }),
    },
    '/readyz': {
      public: true,
      handle: () => {
        const state = sources.readiness();
        return { status: state === 'ready' ? 200 : 503, body: `${state}\n` };
      },
    },
  };
}

/** Headers of the status page's parts: nothing inline runs, nothing is framed or sniffed. */
const PAGE_HEADERS = { 'Content-Security-Policy': STATUS_CSP, 'X-Content-Type-Options': 'nosniff', 'Referrer-Policy': 'no-referrer' };
