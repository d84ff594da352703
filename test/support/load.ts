// Load and observation helpers for the multi-instance tests: closed-loop load against several
// ward instances at once, an upstream that holds chosen requests until the test lets them go,
// and readers for /metrics and /readyz.

import { Agent } from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { request, startUpstream, type TestUpstream } from './http.js';

export interface TargetResult {
  /** Answers by status code. */
  readonly statuses: Map<number, number>;
  /** Requests that got no HTTP answer (reset, refused...), with the error code. */
  readonly errors: string[];
  ok(): number;
  count(status: number): number;
  total(): number;
}

function targetResult(): TargetResult {
  const statuses = new Map<number, number>();
  return {
    statuses,
    errors: [],
    ok: () => statuses.get(200) ?? 0,
    count: (s) => statuses.get(s) ?? 0,
    total() {
      let n = this.errors.length;
      for (const v of statuses.values()) n += v;
      return n;
    },
  };
}

export interface LoadResult {
  readonly perTarget: TargetResult[];
  /** From the first send to the last answer: every answer came within it (for upper bounds). */
  readonly seconds: number;
  /** From the first send to the last send: requests kept coming all along it (for lower bounds;
   * a machine that stalls at the end lengthens `seconds`, not this). */
  readonly sendSeconds: number;
}

export interface Load {
  /** Stops issuing, waits for the answers in flight. */
  stop(): Promise<LoadResult>;
}

/** Closed-loop load: `concurrency` keep-alive connections per base URL, each sending `path` again
 * as soon as its previous answer arrives. */
export function startLoad(bases: readonly string[], path: string, headers: Record<string, string>, concurrency = 8): Load {
  let running = true;
  const started = performance.now();
  let lastSend = started;
  const perTarget = bases.map(() => targetResult());
  const agents = bases.map(() => new Agent({ keepAlive: true, maxSockets: concurrency }));
  const loops = bases.flatMap((base, i) =>
    Array.from({ length: concurrency }, async () => {
      const r = perTarget[i]!;
      while (running) {
        lastSend = performance.now();
        try {
          const a = await request(base + path, { headers, agent: agents[i] });
          r.statuses.set(a.status, (r.statuses.get(a.status) ?? 0) + 1);
        } catch (err) {
          r.errors.push((err as NodeJS.ErrnoException).code ?? String(err));
        }
      }
    }),
  );
  return {
    async stop() {
      running = false;
      await Promise.all(loops);
      const seconds = (performance.now() - started) / 1000;
      for (const a of agents) a.destroy();
      return { perTarget, seconds, sendSeconds: (lastSend - started) / 1000 };
    },
  };
}

export async function hammer(bases: readonly string[], path: string, headers: Record<string, string>, ms: number, concurrency = 8) {
  const load = startLoad(bases, path, headers, concurrency);
  await sleep(ms);
  return load.stop();
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls until `f()` returns something other than undefined; throws after timeoutMs. */
export async function eventually<T>(what: string, f: () => Promise<T | undefined>, timeoutMs: number, everyMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await f();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms${last ? ` (last error: ${String(last)})` : ''}`);
    await sleep(everyMs);
  }
}

/** One sample of /metrics: `labels` as written in the exposition (`tenant="a",pool="calls"`), or
 * empty for an unlabelled metric; undefined when absent. */
export async function metric(admin: string, name: string, labels = ''): Promise<number | undefined> {
  const text = (await request(`${admin}/metrics`)).body;
  const head = labels ? `${name}{${labels}} ` : `${name} `;
  const line = text.split('\n').find((l) => l.startsWith(head));
  return line === undefined ? undefined : Number(line.slice(head.length));
}

export async function readyz(admin: string): Promise<{ status: number; body: unknown }> {
  const r = await request(`${admin}/readyz`);
  return { status: r.status, body: r.json() };
}

/** An upstream that answers at once, except requests with `?hold=1`, which it holds (per tenant,
 * from X-Ward-Tenant) until `release` — so a test decides how long a lease lives. */
export interface HoldingUpstream {
  readonly up: TestUpstream;
  readonly url: string;
  /** Requests of `tenant` being held now. */
  held(tenant: string): number;
  /** Answers every held request of `tenant` (of every tenant without one). */
  release(tenant?: string): void;
  close(): Promise<void>;
}

export async function startHoldingUpstream(): Promise<HoldingUpstream> {
  const up = await startUpstream();
  const holding = new Map<string, ServerResponse[]>();
  up.handle = (req: IncomingMessage, res: ServerResponse) => {
    const tenant = String(req.headers['x-ward-tenant'] ?? '');
    if (new URL(req.url!, 'http://x').searchParams.get('hold') === '1') {
      const list = holding.get(tenant) ?? [];
      list.push(res);
      holding.set(tenant, list);
      res.on('close', () => list.splice(list.indexOf(res) >>> 0, 1));
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end('{}');
  };
  const release = (tenant?: string) => {
    for (const [t, list] of holding) {
      if (tenant !== undefined && t !== tenant) continue;
      for (const res of list.splice(0)) {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end('{}');
      }
    }
  };
  return {
    up,
    url: up.url,
    held: (t) => holding.get(t)?.length ?? 0,
    release,
    close: async () => {
      release();
      await up.close();
    },
  };
}
