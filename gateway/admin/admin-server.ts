// The admin port (loopback by default): /healthz, /readyz, /metrics stay open; everything under
// /admin/ (the ops console and its JSON API) is handed to the console's handler, which checks tokens.

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Readiness {
  /** false → 503 (no valid policy yet, draining). */
  readonly serving: boolean;
  /** Why it is degraded (store_unreachable, upstream_panic:NAME, ...); empty → ok. */
  readonly reasons: readonly string[];
}

export interface AdminDeps {
  readiness(): Readiness | Promise<Readiness>;
  metrics(): Promise<{ contentType: string; text: string }>;
  /** Handles /admin/...; absent → 404. */
  console?(req: IncomingMessage, res: ServerResponse): void;
}

function json(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' });
  res.end(text);
}

export class AdminServer {
  private readonly server: Server;

  constructor(private readonly deps: AdminDeps) {
    this.server = createServer((req, res) => void this.handle(req, res));
    this.server.keepAliveTimeout = 5000;
  }

  listen(host: string, port: number): Promise<number> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => resolve((this.server.address() as AddressInfo).port));
    });
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0]!;
    try {
      if (path === '/healthz') return json(res, 200, { status: 'ok' });
      if (path === '/readyz') {
        const r = await this.deps.readiness();
        if (!r.serving) return json(res, 503, { status: 'unavailable', reasons: r.reasons });
        return json(res, 200, r.reasons.length === 0 ? { status: 'ok' } : { status: 'degraded', reasons: r.reasons });
      }
      if (path === '/metrics') {
        const m = await this.deps.metrics();
        res.writeHead(200, { 'content-type': m.contentType });
        res.end(m.text);
        return;
      }
      if ((path === '/admin' || path.startsWith('/admin/')) && this.deps.console) return this.deps.console(req, res);
      json(res, 404, { error: 'not_found' });
    } catch (err) {
      json(res, 500, { error: 'internal', message: (err as Error).message });
    }
  }
}
