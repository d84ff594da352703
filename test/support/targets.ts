// Upstream targets for the health, balancing, release and console tests: each answers with its
// own name (so a test knows which target served a request) and records every request it saw
// (method, X-Request-Id, tenant, body). In-process targets switch behaviour per test; child-process
// targets can be SIGKILLed and report what they saw on stdout. Everything on loopback.

import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { request } from './http.js';

export interface SeenRequest {
  readonly method: string;
  readonly path: string;
  readonly requestId: string;
  readonly tenant: string;
  readonly body: string;
}

/** ok: 200; 500/404: that status; hang: never answers; slow: answers after delayMs. */
export type Mode = 'ok' | '500' | '404' | 'hang' | 'slow';

export interface Target {
  readonly name: string;
  readonly url: string;
  readonly port: number;
  readonly seen: SeenRequest[];
  mode: Mode;
  /** Every `failEvery`-th request answers 500 (0: never), whatever the mode. */
  failEvery: number;
  delayMs: number;
  /** GET /healthz answers 200 while true, 503 otherwise. */
  healthy: boolean;
  probes: number;
  /** Requests being answered now. */
  inFlight: number;
  /** Stops listening and cuts open connections (the port stays known for restart()). */
  close(): Promise<void>;
  /** Listens again on the same port. */
  restart(): Promise<void>;
}

function serve(t: Target, req: IncomingMessage, res: ServerResponse, body: string): void {
  if (req.url === '/healthz') {
    t.probes++;
    res.writeHead(t.healthy ? 200 : 503, { 'content-type': 'text/plain' }).end(t.healthy ? 'ok' : 'unhealthy');
    return;
  }
  const path = req.url ?? '/';
  t.seen.push({ method: req.method!, path, requestId: String(req.headers['x-request-id'] ?? ''), tenant: String(req.headers['x-ward-tenant'] ?? ''), body });
  const n = t.seen.length;
  const hold = /[?&]hold_ms=(\d+)/.exec(path);
  const answer = (): void => {
    t.inFlight--;
    if (res.destroyed) return;
    if (t.failEvery > 0 && n % t.failEvery === 0) return void res.writeHead(500, { 'content-type': 'application/json' }).end(JSON.stringify({ target: t.name, error: 'boom' }));
    const status = t.mode === '500' ? 500 : t.mode === '404' ? 404 : 200;
    res.writeHead(status, { 'content-type': 'application/json', 'x-target': t.name }).end(JSON.stringify({ target: t.name }));
  };
  t.inFlight++;
  if (t.mode === 'hang') return;
  const delay = hold !== null ? Number(hold[1]) : t.mode === 'slow' ? t.delayMs : 0;
  if (delay > 0) setTimeout(answer, delay);
  else answer();
}

/** An in-process target named `name` on a free port (or `port`). */
export async function startTarget(name: string, port = 0): Promise<Target> {
  let server: Server;
  const t: Target = {
    name,
    url: '',
    port,
    seen: [],
    mode: 'ok',
    failEvery: 0,
    delayMs: 200,
    healthy: true,
    probes: 0,
    inFlight: 0,
    close: () =>
      new Promise((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
    restart: () => listen(),
  };
  const listen = (): Promise<void> =>
    new Promise((resolve, reject) => {
      server = createServer((req, res) => {
        const chunks: Buffer[] = [];
        req.on('data', (c: Buffer) => chunks.push(c));
        req.on('end', () => serve(t, req, res, Buffer.concat(chunks).toString()));
      });
      server.keepAliveTimeout = 60_000;
      server.once('error', reject);
      server.listen(t.port, '127.0.0.1', () => {
        (t as { port: number }).port = (server.address() as AddressInfo).port;
        (t as { url: string }).url = `http://127.0.0.1:${t.port}`;
        resolve();
      });
    });
  await listen();
  return t;
}

export async function startTargets(names: readonly string[]): Promise<Target[]> {
  return Promise.all(names.map((n) => startTarget(n)));
}

// A target in its own process: answers {"target": NAME}, prints "SEEN method request-id" per request.
const CHILD = `
const http = require('node:http');
const name = process.argv[1];
const s = http.createServer((req, res) => {
  if (req.url === '/healthz') return void res.writeHead(200).end('ok');
  let n = 0;
  req.on('data', (c) => (n += c.length));
  req.on('end', () => {
    process.stdout.write('SEEN ' + req.method + ' ' + (req.headers['x-request-id'] || '-') + '\\n');
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ target: name, body_bytes: n }));
  });
});
s.keepAliveTimeout = 60000;
s.listen(0, '127.0.0.1', () => process.stdout.write('PORT ' + s.address().port + '\\n'));
`;

export interface ChildTarget {
  readonly name: string;
  readonly url: string;
  readonly child: ChildProcess;
  /** [method, request id] of every request it answered (as printed before it died). */
  readonly seen: Array<[string, string]>;
  kill(signal?: NodeJS.Signals): Promise<void>;
}

export async function startChildTarget(name: string): Promise<ChildTarget> {
  const child = spawn(process.execPath, ['-e', CHILD, name], { stdio: ['ignore', 'pipe', 'inherit'] });
  const seen: Array<[string, string]> = [];
  let buf = '';
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout!.setEncoding('utf8');
    child.stdout!.on('data', (d: string) => {
      buf += d;
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        const [kind, a, b] = line.split(' ');
        if (kind === 'PORT') resolve(Number(a));
        else if (kind === 'SEEN') seen.push([a!, b!]);
      }
    });
    child.once('exit', (code) => reject(new Error(`target ${name} exited with ${code}`)));
  });
  return {
    name,
    url: `http://127.0.0.1:${port}`,
    child,
    seen,
    kill: (signal = 'SIGKILL') =>
      new Promise((r) => {
        if (child.exitCode !== null || child.signalCode !== null) return r();
        child.once('exit', () => r());
        child.kill(signal);
      }),
  };
}

// ---- reading ward's admin API ----

export interface TargetView {
  url: string;
  state: string;
  in_flight: number;
  ejections: number;
  downs: number;
  /** Failures the stall guard voided. */
  voided: number;
  ejected_until?: number;
}
export interface UpstreamView {
  name: string;
  panic: boolean;
  targets: TargetView[];
  events: Array<{ seq: number; at: number; kind: string; target?: string; until?: number; reason?: string }>;
}

export async function upstreamViews(admin: string, token: string): Promise<UpstreamView[]> {
  const r = await request(admin + '/admin/api/upstreams', { headers: { authorization: `Bearer ${token}` } });
  if (r.status !== 200) throw new Error(`GET /admin/api/upstreams: ${r.status} ${r.body}`);
  return r.json().upstreams as UpstreamView[];
}

export async function upstreamView(admin: string, token: string, name: string): Promise<UpstreamView> {
  const u = (await upstreamViews(admin, token)).find((x) => x.name === name);
  if (u === undefined) throw new Error(`no upstream ${name}`);
  return u;
}

/** The state of each target, by URL. */
export async function states(admin: string, token: string, upstream: string): Promise<Record<string, string>> {
  const u = await upstreamView(admin, token, upstream);
  return Object.fromEntries(u.targets.map((t) => [t.url, t.state]));
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Polls `cond` every 20 ms until it holds; throws after `ms`. Returns the ms it took. */
export async function until(what: string, cond: () => boolean | Promise<boolean>, ms = 5000): Promise<number> {
  const start = performance.now();
  while (!(await cond())) {
    if (performance.now() - start > ms) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(20);
  }
  return performance.now() - start;
}

// ---- console tokens for test policies ----

export const OPERATOR_TOKEN = 'test-operator-secret';
export const VIEWER_TOKEN = 'test-viewer-secret';

/** Writes keys/admin-tokens.yaml (an operator "olga" and a viewer "vic"); returns the policy's admin block. */
export function consoleTokens(p: { writeRaw(rel: string, text: string): void }): Record<string, unknown> {
  const sha = (s: string): string => createHash('sha256').update(s).digest('hex');
  p.writeRaw(
    'keys/admin-tokens.yaml',
    `- { name: olga, role: operator, sha256: ${sha(OPERATOR_TOKEN)} }\n- { name: vic, role: viewer, sha256: ${sha(VIEWER_TOKEN)} }\n`,
  );
  return { host: '127.0.0.1', port: 0, console: { tokens_file: 'keys/admin-tokens.yaml' } };
}
