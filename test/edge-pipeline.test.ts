// `pipeline: true` on an upstream, end to end: many clients of two tenants at once through a real
// ward to a real upstream. Every client gets its own answer; the upstream sees each request once,
// requests do arrive pipelined, and never one tenant's behind the other's on one connection (a
// connection goes from one tenant to the other only once idle); leases and in-flight counts come
// back to zero.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { Agent, request as httpRequest } from 'node:http';
import { policyDir, basePolicy, startWard } from './support/ward-process.js';
import { signJwt, standardClaims } from './support/jwt.js';
import { metric, scrape } from './support/observe.js';

interface Seen {
  url: string;
  tenant: string;
  conn: number;
}

async function upstream(): Promise<{ server: Server; url: string; seen: Seen[]; mixed: string[]; maxOutstanding: () => number }> {
  const seen: Seen[] = [];
  const ids = new WeakMap<object, number>();
  const outstanding = new Map<number, string[]>();
  const mixed: string[] = [];
  let most = 0;
  let n = 0;
  const server = createServer((req, res) => {
    if (!ids.has(req.socket)) ids.set(req.socket, ++n);
    const conn = ids.get(req.socket)!;
    seen.push({ url: req.url!, tenant: String(req.headers['x-ward-tenant']), conn });
    // Requests received on a connection before the earlier ones were answered: pipelined.
    const tenant = String(req.headers['x-ward-tenant']);
    const out = outstanding.get(conn) ?? [];
    if (out.some((x) => x !== tenant)) mixed.push(`${tenant} behind ${out.join(',')} on connection ${conn}`);
    out.push(tenant);
    outstanding.set(conn, out);
    most = Math.max(most, out.length);
    res.on('finish', () => out.shift());
    const body = `${req.headers['x-ward-tenant']} ${req.url}`;
    // Some answers wait a little, so pipelines are still out while other requests arrive.
    const delay = req.url!.endsWith('/slow') ? 20 : 0;
    setTimeout(() => res.end(body), delay);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, url: `http://127.0.0.1:${(server.address() as { port: number }).port}`, seen, mixed, maxOutstanding: () => most };
}

function get(port: number, path: string, token: string, agent: Agent): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, path, agent, headers: { authorization: `Bearer ${token}` } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

test("pipeline: true — 600 GETs from two tenants on 48 connections: each answered right, no request waits behind another tenant's, nothing leaks", async (t) => {
  const up = await upstream();
  const pol = policyDir();
  const base = basePolicy(up.url);
  pol.write({
    ...base,
    upstreams: { api: { targets: [up.url], timeout_ms: 2000, pipeline: true } },
    routes: [{ name: 'api', prefix: '/v1/', upstream: 'api', bucket: 'api', concurrency: 'api' }],
    tenants: { '*': { buckets: { api: { rate: 100000, per_s: 1, burst: 100000 } }, concurrency: { api: 1000 } } },
  });
  const ward = await startWard(pol.dir);
  const agent = new Agent({ keepAlive: true, maxSockets: 48 });
  t.after(async () => {
    agent.destroy();
    await ward.stop();
    up.server.closeAllConnections();
    up.server.close();
    pol.remove();
  });
  const tokens = { red: signJwt(pol.key, standardClaims('red')), blue: signJwt(pol.key, standardClaims('blue')) };
  const jobs: Array<Promise<void>> = [];
  for (let i = 0; i < 600; i++) {
    const tenant = i % 3 === 0 ? 'blue' : 'red';
    const path = `/v1/item/${i}${i % 7 === 0 ? '/slow' : ''}`;
    jobs.push(
      get(ward.port, path, tokens[tenant], agent).then((r) => {
        assert.equal(r.status, 200, path);
        assert.equal(r.body, `${tenant} ${path}`, 'each client gets its own answer');
      }),
    );
  }
  await Promise.all(jobs);
  assert.equal(up.seen.length, 600, 'the upstream saw each request once');
  assert.deepEqual(up.mixed, [], "no request waited on a connection behind another tenant's");
  assert.ok(up.maxOutstanding() > 1, `requests were pipelined (at most ${up.maxOutstanding()} at once on one connection)`);
  const text = await scrape(ward);
  assert.equal(metric(text, 'ward_concurrency_in_use', { pool: 'api' }), 0, 'every lease came back');
  assert.equal(metric(text, 'ward_requests_in_flight'), 0);
});
