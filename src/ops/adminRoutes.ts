import type { AdminRoute } from './AdminServer.js';
import type { ServerMetrics } from './ServerMetrics.js';

/** Where the server is in its life, as /readyz reports it. */
export type Readiness = 'ready' | 'draining';

/** What the standard admin routes read. */
export interface AdminRouteSources {
  metrics: ServerMetrics;
  readiness(): Readiness;
}

/**
 * The admin listener's standard pages: `/metrics` (Prometheus text format), `/healthz`
 * (200 while the process serves HTTP at all: liveness) and `/readyz` (200 only while the
 * FTP listener accepts and the server is not draining, 503 otherwise, so a load balancer
 * stops sending new clients the moment shutdown begins). The two health pages are public
 * (they reveal nothing but up/ready); /metrics needs the token when there is one. A new
 * page is one more entry here (or an AdminServer.route() call).
 */
export function adminRoutes(sources: AdminRouteSources): Record<string, AdminRoute> {
  return {
    '/metrics': {
      async handle() {
        const { contentType, text } = await sources.metrics.exposition();
        return { status: 200, body: text, contentType };
      },
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
