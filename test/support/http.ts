// A plain node:http client for tests (no keep-alive unless an agent is given), and a recording
// upstream whose behaviour each test picks by path.

import { request as httpRequest, createServer, Agent, type IncomingHttpHeaders, type Server, type IncomingMessage, type ServerResponse } from 'node:http';
import { connect, type AddressInfo } from 'node:net';

export interface Reply {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
  json(): any;
}

/** How long request() waits for a whole answer before failing: a request ward never answers fails
 * its test with the request named, instead of stalling the file until the runner's 180 s timeout. */
export const ANSWER_TIMEOUT_MS = 60_000;

export function request(
  url: string,
  opts: { method?: string; headers?: Record<string, string>; body?: string | Buffer; agent?: Agent; localAddress?: string; maxHeaderSize?: number; timeoutMs?: number } = {},
): Promise<Reply> {
  return new Promise((resolveAnswer, rejectAnswer) => {
    const method = opts.method ?? 'GET';
    const ms = opts.timeoutMs ?? ANSWER_TIMEOUT_MS;
    const timer = setTimeout(() => {
      reject(new Error(`no answer to ${method} ${url} within ${ms} ms`));
      req.destroy();
    }, ms);
    const resolve = (r: Reply): void => {
      clearTimeout(timer);
      resolveAnswer(r);
    };
    const reject = (err: Error): void => {
      clearTimeout(timer);
      rejectAnswer(err);
    };
    const req = httpRequest(url, { method, headers: opts.headers, agent: opts.agent ?? false, localAddress: opts.localAddress, maxHeaderSize: opts.maxHeaderSize }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const body = Buffer.concat(chunks).toString();
        resolve({ status: res.statusCode!, headers: res.headers, body, json: () => JSON.parse(body) });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    if (opts.body !== undefined) req.end(opts.body);
    else req.end();
  });
}

/** Writes `raw` (a request exactly as given, e.g. pipelined or malformed) on a new connection to
 * `base`'s port; resolves with everything that came back once the peer closed it (or after
 * `timeoutMs`, when this side closes it). */
export function sendRaw(base: string, raw: string | Buffer, timeoutMs = 3000): Promise<string> {
  return new Promise((resolve) => {
    const s = connect(Number(new URL(base).port), '127.0.0.1', () => s.write(raw));
    let got = '';
    s.setEncoding('latin1');
    s.on('data', (d: string) => (got += d));
    s.on('error', () => {}); // a reset is a close here: what came back is the answer
    const t = setTimeout(() => s.destroy(), timeoutMs);
    s.on('close', () => {
      clearTimeout(t);
      resolve(got);
    });
  });
}

export function bearer(token: string): Record<string, string> {
  return { authorization: `Bearer ${token}` };
}

export interface Seen {
  readonly method: string;
  readonly url: string;
  readonly headers: IncomingHttpHeaders;
  readonly bodyBytes: number;
}

export interface TestUpstream {
  readonly server: Server;
  readonly port: number;
  readonly url: string;
  readonly seen: Seen[];
  /** Per-path behaviour override; default echoes a JSON summary. */
  handle: ((req: IncomingMessage, res: ServerResponse, body: Buffer) => void) | undefined;
  close(): Promise<void>;
}

export function startUpstream(): Promise<TestUpstream> {
  const up: TestUpstream = {
    server: undefined as unknown as Server,
    port: 0,
    url: '',
    seen: [],
    handle: undefined,
    close: () => new Promise((r) => { up.server.closeAllConnections(); up.server.close(() => r()); }),
  };
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      up.seen.push({ method: req.method!, url: req.url!, headers: req.headers, bodyBytes: body.length });
      if (up.handle) return up.handle(req, res, body);
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ method: req.method, url: req.url, headers: req.headers, body_bytes: body.length }));
    });
  });
  (up as { server: Server }).server = server;
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => {
      const port = (server.address() as AddressInfo).port;
      Object.assign(up, { port, url: `http://127.0.0.1:${port}` });
      resolve(up);
    });
  });
}
