// Test support: real upstream targets on loopback that record what they served, one in a child
// process (so a test can SIGKILL it), and a minimal proxy exchange that drives an UpstreamGroup
// the way the proxy stage does (pick, send, report, release).

import { spawn, type ChildProcess } from 'node:child_process';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { clockNow } from './target-table.js';
import type { Outcome, Target, UpstreamGroup } from './upstream-group.js';

export type TargetMode = 'ok' | '500' | '404' | 'slow' | 'hang';

export interface TargetServer {
  readonly url: string;
  readonly port: number;
  /** Requests served (probes excluded). */
  hits: number;
  probes: number;
  mode: TargetMode;
  /** `slow`: answer after this many ms. */
  delayMs: number;
  /** `GET /healthz` answers 200 unless this is false. */
  healthy: boolean;
  /** Runs inside the probe handler (a test can stall the process right there). */
  onProbe?: () => void;
  close(): Promise<void>;
}

export async function startTarget(port = 0): Promise<TargetServer> {
  const state: { hits: number; probes: number; mode: TargetMode; delayMs: number; healthy: boolean; onProbe?: () => void } = { hits: 0, probes: 0, mode: 'ok', delayMs: 100, healthy: true };
  const server = http.createServer((req, res) => {
    if (req.url === '/healthz') {
      state.probes++;
      state.onProbe?.();
      res.writeHead(state.healthy ? 200 : 503).end();
      return;
    }
    state.hits++;
    req.resume();
    const answer = (): void => {
      if (state.mode === '500') res.writeHead(500).end('boom');
      else if (state.mode === '404') res.writeHead(404).end('nope');
      else res.writeHead(200, { 'x-target': String(port) }).end('ok');
    };
    if (state.mode === 'hang') return;
    if (state.mode === 'slow') setTimeout(answer, state.delayMs);
    else answer();
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
  port = (server.address() as AddressInfo).port;
  const t: TargetServer = Object.assign(state, {
    url: `http://127.0.0.1:${port}`,
    port,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  });
  return t;
}

const CHILD = `
const http = require('node:http');
const s = http.createServer((req, res) => { req.resume(); res.writeHead(200).end('ok'); });
s.listen(Number(process.argv[1]), '127.0.0.1', () => process.stdout.write(String(s.address().port) + '\\n'));
`;

export interface ChildTarget {
  readonly url: string;
  readonly port: number;
  readonly child: ChildProcess;
  kill(): Promise<void>;
}

/** A target in its own process (SIGKILL-able); `port` 0 picks a free one. */
export async function startChildTarget(port = 0): Promise<ChildTarget> {
  const child = spawn(process.execPath, ['-e', CHILD, String(port)], { stdio: ['ignore', 'pipe', 'inherit'] });
  const got = await new Promise<number>((resolve, reject) => {
    child.stdout!.once('data', (d: Buffer) => resolve(Number(d.toString().trim())));
    child.once('exit', (code) => reject(new Error(`target child exited with ${code}`)));
  });
  return {
    url: `http://127.0.0.1:${got}`,
    port: got,
    child,
    kill: () =>
      new Promise<void>((r) => {
        if (child.exitCode !== null || child.signalCode !== null) return r();
        child.once('exit', () => r());
        child.kill('SIGKILL');
      }),
  };
}

const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });

export interface Exchange {
  target?: string;
  outcome: Outcome | 'no_target';
}

/** One proxied GET through `group`, reported like the proxy stage reports it. */
export function exchange<P>(group: UpstreamGroup<P>, key?: string, timeoutMs = group.timeoutMs): Promise<Exchange> {
  const t: Target<P> | undefined = group.pick(key);
  if (t === undefined) return Promise.resolve({ outcome: 'no_target' });
  const started = clockNow();
  return new Promise((resolve) => {
    let done = false;
    const finish = (outcome: Outcome): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      group.report(t, outcome, clockNow() - started);
      group.release(t);
      resolve({ target: t.url, outcome });
    };
    const req = http.get(`${t.url}/work`, { agent }, (res) => {
      const s = res.statusCode ?? 0;
      res.resume();
      res.on('end', () => finish(s >= 500 ? '5xx' : s >= 400 ? '4xx' : 'ok'));
    });
    req.on('error', (e: NodeJS.ErrnoException) => finish(e.code === 'ECONNREFUSED' ? 'connect' : 'reset'));
    const timer = setTimeout(() => {
      finish('timeout');
      req.destroy();
    }, timeoutMs);
  });
}

export function closeExchangeAgent(): void {
  agent.destroy();
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Polls `cond` every 10 ms until it holds or `ms` passed; returns whether it held. */
export async function waitFor(cond: () => boolean, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (cond()) return true;
    await sleep(10);
  }
  return cond();
}
