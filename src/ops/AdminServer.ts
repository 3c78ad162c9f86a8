import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { isLoopbackAddress } from '../util/address.js';
import { formatListenAddress, type ListenAddress } from '../util/listenAddress.js';
import { bearerMatches } from './adminToken.js';

/** What a route answers: a status, a body, and its content type. */
export interface AdminResponse {
  status: number;
  body: string;
  /** Default: plain UTF-8 text. */
  contentType?: string;
  /** Extra response headers (e.g. a Content-Security-Policy). */
  headers?: Record<string, string>;
}

/** One path of the admin listener (GET and HEAD). */
export interface AdminRoute {
  /**
   * Served without the bearer token. Only for answers that reveal nothing but up/ready
   * (load balancers' health checks often cannot send headers); default false.
   */
  public?: boolean;
  handle(request: IncomingMessage): AdminResponse | Promise<AdminResponse>;
}

/** What the admin listener needs. */
export interface AdminServerOptions {
  listen: ListenAddress;
  /** Every non-public request must carry `Authorization: Bearer <token>`; required off loopback. */
  token?: string;
  /** Path (exact, without the query) → route. More can be added with route(). */
  routes: Record<string, AdminRoute>;
  log: { error(message: string, fields?: object): unknown };
}

/** Most admin connections at once: a scraper or two and some health checks, never a crowd. */
const MAX_CONNECTIONS = 64;

/**
 * The operator's HTTP listener (plain node:http: a handful of read-only routes needs no
 * framework). Routes are a table, so adding a page is one route() call. Only GET and
 * HEAD; unknown paths get 404. It refuses to listen on an address other than loopback
 * without a token; with a token, every route that is not public answers 401 unless the
 * request carries it. Requests are small and short-lived: headers must arrive within
 * 10 s, and at most 64 connections are served at once.
 */
export class AdminServer {
  private readonly routes = new Map<string, AdminRoute>();
  private readonly server: Server;

  private constructor(private readonly options: AdminServerOptions) {
    for (const [path, route] of Object.entries(options.routes)) this.routes.set(path, route);
    this.server = createServer((request, response) => void this.serve(request, response));
    this.server.headersTimeout = 10_000;
    this.server.requestTimeout = 15_000;
    this.server.maxConnections = MAX_CONNECTIONS;
  }

  /** Starts listening; rejects with the listen error (EADDRINUSE…) or when a token is needed but missing. */
  static async listen(options: AdminServerOptions): Promise<AdminServer> {
    if (options.token === undefined && !isLoopbackAddress(options.listen.host)) {
      throw new Error(`${formatListenAddress(options.listen)} is not a loopback address, so a token is needed; give --admin-token-file, or listen on 127.0.0.1:PORT`);
    }
    const admin = new AdminServer(options);
    const server = admin.server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host: options.listen.host, port: options.listen.port }, () => {
        server.off('error', reject);
        resolve();
      });
    });
    server.on('error', (err) => options.log.error('Admin listener error', { err: err.message }));
    return admin;
  }

  /** The address actually bound (port resolved when 0 was asked). */
  get address(): ListenAddress {
    const bound = this.server.address() as AddressInfo;
    return { host: bound.address, port: bound.port };
  }

  /** The base URL, e.g. `http://127.0.0.1:9121` or `http://[::1]:9121`. */
  get url(): string {
    return `http://${formatListenAddress(this.address)}`;
  }

  /** Adds (or replaces) the route for `path`. */
  route(path: string, route: AdminRoute): void {
    this.routes.set(path, route);
  }

  /** Stops listening and cuts open connections (keep-alive scrapers included). */
  close(): Promise<void> {
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }

  private async serve(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const path = (request.url ?? '/').split('?', 1)[0]!;
    const route = this.routes.get(path);
    let answer: AdminResponse;
    if (!route) {
      answer = { status: 404, body: `no such page; try ${[...this.routes.keys()].sort().join(', ')}\n` };
    } else if (request.method !== 'GET' && request.method !== 'HEAD') {
      answer = { status: 405, body: 'only GET and HEAD\n', headers: { Allow: 'GET, HEAD' } };
    } else if (!route.public && this.options.token !== undefined && !bearerMatches(request.headers.authorization, this.options.token)) {
      answer = { status: 401, body: 'this page needs Authorization: Bearer <token from --admin-token-file>\n', headers: { 'WWW-Authenticate': 'Bearer realm="dfos"' } };
    } else {
      try {
        answer = await route.handle(request);
      } catch (err) {
        this.options.log.error('Admin page failed', { path, err: err instanceof Error ? err.stack ?? err.message : String(err) });
        answer = { status: 500, body: 'internal error; see dfos.log\n' };
      }
    }
    const body = Buffer.from(answer.body, 'utf8');
    response.writeHead(answer.status, {
      'Content-Type': answer.contentType ?? 'text/plain; charset=utf-8',
      'Content-Length': body.length,
      'Cache-Control': 'no-store',
      ...answer.headers,
    });
    response.end(request.method === 'HEAD' ? undefined : body);
  }
}
