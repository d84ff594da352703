// A ward with WebSocket routes for the ws-* and sip-* tests: a policy directory written here, a
// real `ward serve` process on it, tokens signed with the policy's key, and /metrics readers.

import { WebSocket, WebSocketServer, type ClientOptions } from 'ws';
import { policyDir, startWard, type PolicyFiles } from './ward-process.js';
import { signJwt, standardClaims } from './jwt.js';


export interface WsWard {
  readonly port: number;
  readonly adminPort: number;
  readonly logs: string[];
  readonly files: PolicyFiles;
  /** ws://127.0.0.1:PORT + path */
  url(path: string): string;
  token(tenant: string, extra?: Record<string, unknown>): string;
  /** Sum of a metric's samples whose labels include `labels`. */
  metric(name: string, labels?: Record<string, string>): Promise<number>;
  stop(): Promise<void>;
}

/** Policy pieces the WebSocket tests vary; everything else is a loopback test policy. */
export interface WsPolicy {
  readonly routes: ReadonlyArray<Record<string, unknown>>;
  readonly upstreams: Record<string, Record<string, unknown>>;
  readonly tenants: Record<string, unknown>;
}

export async function startWsWard(p: WsPolicy): Promise<WsWard> {
  const files = policyDir();
  files.write({
    listen: { host: '127.0.0.1', port: 0 },
    admin: { host: '127.0.0.1', port: 0 },
    store: { kind: 'memory' },
    auth: { jwks_file: 'keys/jwks.json', issuer: 'https://id.test', audience: 'ward', algorithms: ['EdDSA'], tenant_claim: 'tenant' },
    upstreams: p.upstreams,
    routes: p.routes,
    tenants: p.tenants,
  });
  const proc = await realWard(files.dir);
  const metric = async (name: string, labels: Record<string, string> = {}): Promise<number> => {
    const text = await (await fetch(`http://127.0.0.1:${proc.adminPort}/metrics`)).text();
    let sum = 0;
    for (const line of text.split('\n')) {
      if (!line.startsWith(name + '{') && !line.startsWith(name + ' ')) continue;
      if (!Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) continue;
      sum += Number(line.slice(line.lastIndexOf(' ') + 1));
    }
    return sum;
  };
  return {
    port: proc.port,
    adminPort: proc.adminPort,
    logs: proc.logs,
    files,
    url: (path) => `ws://127.0.0.1:${proc.port}${path}`,
    token: (tenant, extra) => signJwt(files.key, standardClaims(tenant, extra)),
    metric,
    stop: async () => {
      await proc.stop();
      files.remove();
    },
  };
}

interface Proc {
  port: number;
  adminPort: number;
  logs: string[];
  stop(): Promise<void>;
}

async function realWard(dir: string): Promise<Proc> {
  const w = await startWard(dir, { workers: 1 });
  return { port: w.port, adminPort: w.adminPort, logs: w.logs, stop: async () => void (await w.stop('SIGKILL')) };
}

// ---- upstream WebSocket servers and clients --------------------------------------------------

export interface Upstream {
  readonly server: WebSocketServer;
  readonly port: number;
  readonly url: string;
  /** Connections accepted so far, in order. */
  readonly sockets: WebSocket[];
  /** Handshake request headers of each accepted connection. */
  readonly handshakes: Array<{ url: string; headers: Record<string, string | string[] | undefined> }>;
  nextConnection(): Promise<WebSocket>;
  close(): Promise<void>;
}

/** A `ws` server on a free loopback port; `onConnection` defaults to echoing every message. */
export async function startUpstream(
  opts: { protocols?: (offered: Set<string>) => string | false; onConnection?: (ws: WebSocket) => void; maxPayload?: number } = {},
): Promise<Upstream> {
  const server = new WebSocketServer({
    host: '127.0.0.1',
    port: 0,
    perMessageDeflate: false,
    maxPayload: opts.maxPayload ?? 64 << 20,
    handleProtocols: opts.protocols ?? ((offered) => (offered.size > 0 ? [...offered][0]! : false)),
  });
  await new Promise<void>((r) => server.once('listening', () => r()));
  const port = (server.address() as { port: number }).port;
  const sockets: WebSocket[] = [];
  const handshakes: Upstream['handshakes'] = [];
  const waiting: Array<(ws: WebSocket) => void> = [];
  server.on('connection', (ws, req) => {
    sockets.push(ws);
    handshakes.push({ url: req.url ?? '', headers: req.headers });
    if (opts.onConnection) opts.onConnection(ws);
    else ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
    waiting.shift()?.(ws);
  });
  return {
    server,
    port,
    url: `ws://127.0.0.1:${port}`,
    sockets,
    handshakes,
    nextConnection: () => new Promise((r) => waiting.push(r)),
    close: () =>
      new Promise((r) => {
        for (const ws of server.clients) ws.terminate();
        server.close(() => r());
      }),
  };
}

export interface Opened {
  readonly ws: WebSocket;
  readonly protocol: string;
}

/** Connects a client; resolves once open, rejects with the HTTP status of a refused upgrade. */
export function connect(url: string, protocols: string[] = [], opts: ClientOptions = {}): Promise<Opened> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, protocols, { perMessageDeflate: false, ...opts });
    ws.once('open', () => resolve({ ws, protocol: ws.protocol }));
    ws.once('unexpected-response', (_req, res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => reject(new UpgradeRefused(res.statusCode ?? 0, body, res.headers)));
    });
    ws.once('error', (err) => reject(err));
  });
}

export class UpgradeRefused extends Error {
  constructor(
    readonly status: number,
    readonly body: string,
    readonly headers: Record<string, string | string[] | undefined>,
  ) {
    super(`upgrade refused: ${status} ${body}`);
  }
}

/** Resolves with the close code and reason the socket receives. */
export function closed(ws: WebSocket): Promise<{ code: number; reason: string }> {
  return new Promise((r) => ws.once('close', (code, reason) => r({ code, reason: reason.toString() })));
}

/** Collects the next `n` messages. */
export function messages(ws: WebSocket, n: number): Promise<Array<{ data: Buffer; isBinary: boolean }>> {
  return new Promise((resolve) => {
    const got: Array<{ data: Buffer; isBinary: boolean }> = [];
    const on = (data: Buffer, isBinary: boolean): void => {
      got.push({ data, isBinary });
      if (got.length === n) {
        ws.off('message', on);
        resolve(got);
      }
    };
    ws.on('message', on);
  });
}

/** Polls until `f()` holds (or throws after timeoutMs with the last value). */
export async function eventually<T>(f: () => Promise<T> | T, ok: (v: T) => boolean, timeoutMs = 5000): Promise<T> {
  const end = Date.now() + timeoutMs;
  let v = await f();
  while (!ok(v)) {
    if (Date.now() > end) throw new Error(`condition not met within ${timeoutMs} ms; last value: ${JSON.stringify(v)}`);
    await new Promise((r) => setTimeout(r, 25));
    v = await f();
  }
  return v;
}
