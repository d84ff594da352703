// Live policy: edits to gateway.yaml and tenants/*.yaml take effect within 2 s with no restart and
// no dropped request or connection; an invalid edit is refused whole (the last good policy keeps
// serving, the error is logged as FILE:LINE:COL and counted); SIGHUP reloads; a request keeps the
// policy version it started with.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Agent, request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import { cpSync, mkdirSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { stringify } from 'yaml';
import { policyDir, basePolicy, startWard, type PolicyFiles, type WardProcess, stopAll } from './support/ward-process.js';
import { startUpstream, request, bearer, type Reply, type TestUpstream } from './support/http.js';
import { signJwt, standardClaims } from './support/jwt.js';
import { metric } from './support/observe.js';

/** The contract's "within 2 s", with room for a loaded machine's scheduling. */
const APPLY_MS = 2500;

async function reloads(w: WardProcess, result: 'success' | 'failure'): Promise<number> {
  return metric((await request(w.admin + '/metrics')).body, 'ward_policy_reloads_total', { result });
}

/** Polls `probe` until it returns true; fails after `ms`. Returns how long it took. */
async function within(ms: number, what: string, probe: () => Promise<boolean>): Promise<number> {
  const t0 = Date.now();
  for (;;) {
    if (await probe()) return Date.now() - t0;
    if (Date.now() - t0 > ms) throw new Error(`${what}: not seen within ${ms} ms`);
    await sleep(50);
  }
}

/** The problems of the first "reload refused" log line logged after index `from`. */
async function refusal(w: WardProcess, from: number, ms = 5000): Promise<string[]> {
  let hit: string | undefined;
  await within(ms, 'a "policy reload refused" log line', async () => (hit = w.logs.slice(from).find((l) => l.includes('policy reload refused'))) !== undefined);
  const problems = (JSON.parse(hit!) as { problems?: unknown }).problems;
  assert.ok(Array.isArray(problems), hit);
  return problems as string[];
}

/** Line and column (1-based) of the first occurrence of `needle` in `text`. */
function position(text: string, needle: string): string {
  const lines = text.split('\n');
  const i = lines.findIndex((l) => l.includes(needle));
  assert.ok(i >= 0, `"${needle}" not in the policy text`);
  return `${i + 1}:${lines[i]!.indexOf(needle) + 1}`;
}

describe('live policy edits', () => {
  let up: TestUpstream;
  let p: PolicyFiles;
  let w: WardProcess;
  let acme: string;
  let beta: string;
  let policy: Record<string, any>;
  const held: ServerResponse[] = [];
  const started: string[] = [];

  const edit = (change: (pol: Record<string, any>) => void) => {
    policy = structuredClone(policy);
    change(policy);
    p.write(policy);
  };

  before(async () => {
    up = await startUpstream();
    up.server.on('request', (req: IncomingMessage) => started.push(req.url!));
    up.handle = (req, res, body) => {
      if (req.url === '/v1/hold' || req.url === '/v1/calls/hold') return void held.push(res);
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ url: req.url, body_bytes: body.length, tenant: req.headers['x-ward-tenant'] ?? null }));
    };
    p = policyDir();
    mkdirSync(join(p.dir, 'tenants'));
    p.writeRaw('tenants/globex.yaml', 'tenants:\n  globex: { concurrency: { calls: 1 } }\n');
    policy = basePolicy(up.url, { flood: { max_body_bytes: 100_000 } });
    p.write(policy);
    w = await startWard(p.dir);
    acme = signJwt(p.key, standardClaims('acme'));
    beta = signJwt(p.key, standardClaims('beta'));
  });
  after(async () => {
    for (const r of held) r.destroy();
    await w?.stop();
    await up?.close();
    p?.remove();
  });

  it('serves an added route within 2 s, with no restart, no dropped request and no dropped connection', async () => {
    const pid = w.proc.pid;
    const okBefore = await reloads(w, 'success');
    // A kept-alive connection and a request in flight, both opened under the old policy.
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    let connections = 0;
    const create = agent.createConnection.bind(agent);
    (agent as unknown as { createConnection: typeof create }).createConnection = (...a: Parameters<typeof create>) => (connections++, create(...a));
    assert.equal((await request(w.base + '/v1/ok', { headers: bearer(acme), agent })).status, 200);
    const n = held.length;
    const inFlight = request(w.base + '/v1/hold', { headers: bearer(acme) });
    await within(3000, 'the upstream to hold the request', async () => held.length > n);
    assert.equal((await request(w.base + '/v2/thing')).status, 404);

    edit((pol) => pol.routes.unshift({ name: 'v2', prefix: '/v2/', public: true, upstream: 'api' }));
    await within(APPLY_MS, 'the new route', async () => (await request(w.base + '/v2/thing')).status === 200);

    held[n]!.writeHead(200, { 'content-type': 'application/json' }).end('{"held":true}');
    const r = await inFlight;
    assert.equal(r.status, 200);
    assert.deepEqual(r.json(), { held: true });
    assert.equal((await request(w.base + '/v2/thing', { agent })).status, 200);
    assert.equal(connections, 1, 'the kept-alive connection was closed by the reload');
    agent.destroy();
    assert.equal(w.proc.pid, pid);
    assert.equal(w.proc.exitCode, null);
    assert.equal(await reloads(w, 'success'), okBefore + 1);
  });

  it('applies a lowered bucket within 2 s, for that tenant only', async () => {
    const delta = signJwt(p.key, standardClaims('delta'));
    edit((pol) => (pol.tenants.delta = { buckets: { api: { rate: 1, per_s: 60, burst: 2 } } }));
    let refused: Reply | undefined;
    await within(APPLY_MS, 'the smaller bucket', async () => {
      for (let i = 0; i < 3; i++) {
        const r = await request(w.base + '/v1/ok', { headers: bearer(delta) });
        if (r.status === 429) refused = r;
      }
      return refused !== undefined;
    });
    assert.equal(refused!.json().error, 'rate_limited');
    assert.equal(refused!.json().bucket, 'api');
    assert.equal((await request(w.base + '/v1/ok', { headers: bearer(acme) })).status, 200);
  });

  it('applies a raised bucket within 2 s', async () => {
    const delta = signJwt(p.key, standardClaims('delta'));
    assert.equal((await request(w.base + '/v1/ok', { headers: bearer(delta) })).status, 429);
    edit((pol) => (pol.tenants.delta = { buckets: { api: { rate: 1000, per_s: 1 } } }));
    await within(APPLY_MS, 'the larger bucket', async () => (await request(w.base + '/v1/ok', { headers: bearer(delta) })).status === 200);
  });

  it('applies a new tenants/*.yaml file within 2 s, for that tenant only', async () => {
    assert.equal((await request(w.base + '/v1/ok', { headers: bearer(beta) })).status, 200);
    p.writeRaw('tenants/beta.yaml', 'tenants:\n  beta:\n    buckets:\n      api: { rate: 1, per_s: 60, burst: 1 }\n');
    await within(APPLY_MS, 'beta’s own bucket', async () => {
      const a = await request(w.base + '/v1/ok', { headers: bearer(beta) });
      const b = await request(w.base + '/v1/ok', { headers: bearer(beta) });
      return a.status === 429 || b.status === 429;
    });
    const other = await request(w.base + '/v1/ok', { headers: bearer(acme) });
    assert.equal(other.status, 200);
    assert.equal(other.json().tenant, 'acme');
  });

  it('finishes an in-flight request under the policy it started with', async () => {
    // A chunked upload starts under max_body_bytes 100000 ...
    const n = started.length;
    let reply!: Promise<Reply>;
    const req = httpRequest(w.base + '/v1/upload', { method: 'POST', agent: false, headers: { ...bearer(acme), 'transfer-encoding': 'chunked' } });
    reply = new Promise((resolve, reject) => {
      req.on('response', (res) => {
        let body = '';
        res.on('data', (d) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body, json: () => JSON.parse(body) }));
      });
      req.on('error', reject);
    });
    req.write(Buffer.alloc(60_000, 97));
    await within(3000, 'the upload to reach the upstream', async () => started.length > n);
    // ... the limit drops to 20000 while it is in flight ...
    edit((pol) => (pol.flood.max_body_bytes = 20_000));
    await within(APPLY_MS, 'the lower body limit', async () => {
      const r = await request(w.base + '/v1/ok', { method: 'POST', headers: bearer(acme), body: Buffer.alloc(30_000) });
      return r.status === 413;
    });
    // ... and the upload still completes whole, under the limit it started with.
    req.end(Buffer.alloc(30_000, 98));
    const r = await reply;
    assert.equal(r.status, 200, r.body);
    assert.equal(r.json().body_bytes, 90_000);
    edit((pol) => (pol.flood.max_body_bytes = 100_000));
    await within(APPLY_MS, 'the body limit restored', async () => {
      const r2 = await request(w.base + '/v1/ok', { method: 'POST', headers: bearer(acme), body: Buffer.alloc(30_000) });
      return r2.status === 200;
    });
  });

  it('keeps a lease taken before a reload on /metrics until its request ends, and releases it once', async () => {
    const inUse = async () => metric((await request(w.admin + '/metrics')).body, 'ward_concurrency_in_use', { tenant: 'acme', pool: 'calls' });
    const n = held.length;
    const call = request(w.base + '/v1/calls/hold', { method: 'POST', headers: bearer(acme), body: '{}' });
    await within(3000, 'the upstream to hold the call', async () => held.length > n);
    assert.equal(await inUse(), 1);
    edit((pol) => pol.routes.unshift({ name: 'v4', prefix: '/v4/', public: true, upstream: 'api' }));
    await within(APPLY_MS, 'the edit', async () => (await request(w.base + '/v4/x')).status === 200);
    assert.equal(await inUse(), 1, 'the lease held across the reload vanished from /metrics');
    held[n]!.writeHead(200).end('done');
    assert.equal((await call).status, 200);
    await within(3000, 'the lease to be released', async () => (await inUse()) === 0);
    assert.equal((await request(w.base + '/v1/calls', { method: 'POST', headers: bearer(acme), body: '{}' })).status, 200);
    assert.equal(await inUse(), 0);
  });

  it('refuses a YAML syntax error whole: the old policy serves on, the error is logged with FILE:LINE:COL and counted', async () => {
    const failed = await reloads(w, 'failure');
    const from = w.logs.length;
    const text = stringify(policy).replace('routes:\n', 'routes: [\n') + 'extra: { unclosed\n';
    p.writeRaw('gateway.yaml', text);
    const problems = await refusal(w, from);
    assert.match(problems.join('\n'), /gateway\.yaml:\d+:\d+: YAML syntax error/);
    await within(APPLY_MS, 'the failure count', async () => (await reloads(w, 'failure')) === failed + 1);
    assert.equal((await request(w.base + '/v2/thing')).status, 200);
    assert.equal((await request(w.base + '/v1/ok', { headers: bearer(acme) })).status, 200);
  });

  it('refuses an edit naming an unknown upstream whole, pointing at it', async () => {
    const failed = await reloads(w, 'failure');
    const from = w.logs.length;
    const broken = structuredClone(policy);
    broken.routes.unshift({ name: 'v3', prefix: '/v3/', public: true, upstream: 'api' });
    broken.routes.unshift({ name: 'bad', prefix: '/bad/', public: true, upstream: 'nowhere' });
    const text = stringify(broken);
    p.writeRaw('gateway.yaml', text);
    const problems = await refusal(w, from);
    assert.equal(problems.length, 1, problems.join('\n'));
    assert.ok(problems[0]!.endsWith(`gateway.yaml:${position(text, 'nowhere')}: unknown upstream "nowhere" (defined: api)`), problems[0]);
    await within(APPLY_MS, 'the failure count', async () => (await reloads(w, 'failure')) === failed + 1);
    // Refused whole: the valid part of the same edit (route v3) is not in force either.
    assert.equal((await request(w.base + '/v3/thing')).status, 404);
    assert.equal((await request(w.base + '/v2/thing')).status, 200);
    // The next good edit applies again.
    edit((pol) => pol.routes.unshift({ name: 'v3', prefix: '/v3/', public: true, upstream: 'api' }));
    await within(APPLY_MS, 'the fixed edit', async () => (await request(w.base + '/v3/thing')).status === 200);
  });

  it('refuses a tenants/*.yaml edit that defines a tenant twice', async () => {
    const failed = await reloads(w, 'failure');
    const from = w.logs.length;
    p.writeRaw('tenants/zz-dup.yaml', 'tenants:\n  beta:\n    buckets:\n      api: { rate: 1000, per_s: 1 }\n');
    const problems = await refusal(w, from);
    assert.equal(problems.length, 1, problems.join('\n'));
    assert.match(problems[0]!, /tenants\/zz-dup\.yaml:2:3: tenant "beta" is already defined at \S*tenants\/beta\.yaml:2:3$/);
    await within(APPLY_MS, 'the failure count', async () => (await reloads(w, 'failure')) === failed + 1);
    // beta still has its own one-token bucket.
    const a = await request(w.base + '/v1/ok', { headers: bearer(beta) });
    const b = await request(w.base + '/v1/ok', { headers: bearer(beta) });
    assert.ok(a.status === 429 || b.status === 429, `${a.status} ${b.status}`);
  });

  it('keeps serving when the policy directory itself disappears, and follows it again once it is back', async () => {
    const failed = await reloads(w, 'failure');
    const away = p.dir + '.away';
    cpSync(p.dir, away, { recursive: true });
    rmSync(p.dir, { recursive: true });
    try {
      await within(APPLY_MS, 'the failed reload', async () => (await reloads(w, 'failure')) === failed + 1);
      await sleep(1200); // no crash, and no reload storm while it is gone
      assert.equal(await reloads(w, 'failure'), failed + 1);
      assert.equal((await request(w.base + '/v1/ok', { headers: bearer(acme) })).status, 200);
    } finally {
      cpSync(away, p.dir, { recursive: true });
      rmSync(away, { recursive: true });
    }
    edit((pol) => pol.routes.unshift({ name: 'v4', prefix: '/v4/', public: true, upstream: 'api' }));
    await within(APPLY_MS, 'an edit after the directory came back', async () => (await request(w.base + '/v4/thing')).status === 200);
  });
});

describe('live policy edits with two listener threads', () => {
  let up: TestUpstream;
  let p: PolicyFiles;
  let w: WardProcess;

  before(async () => {
    up = await startUpstream();
    p = policyDir();
    p.write(basePolicy(up.url));
    w = await startWard(p.dir, { workers: 2 });
  });
  after(() => stopAll(w, up, p));

  it('reaches every thread within 2 s', async () => {
    const pol = basePolicy(up.url);
    (pol.routes as unknown[]).unshift({ name: 'v2', prefix: '/v2/', public: true, upstream: 'api' });
    p.write(pol);
    await within(APPLY_MS, 'the new route', async () => (await request(w.base + '/v2/x')).status === 200);
    // Fresh connections land on either thread (SO_REUSEPORT): all of them know the new route.
    await within(APPLY_MS, 'the new route on every thread', async () => {
      const r = await Promise.all(Array.from({ length: 12 }, () => request(w.base + '/v2/x')));
      return r.every((x) => x.status === 200);
    });
    assert.equal(await reloads(w, 'success'), 1);
  });

  it('drops a newly deny-listed source on every thread within 2 s', async () => {
    const from = (addr: string) =>
      request(w.base + '/v2/x', { localAddress: addr }).then(
        (r) => r.status,
        () => 'dropped',
      );
    assert.equal(await from('127.0.0.2'), 200);
    const pol = basePolicy(up.url, { flood: { deny: ['127.0.0.2/32'] } });
    (pol.routes as unknown[]).unshift({ name: 'v2', prefix: '/v2/', public: true, upstream: 'api' });
    p.write(pol);
    await within(APPLY_MS, 'the deny rule on every thread', async () => {
      const r = await Promise.all(Array.from({ length: 12 }, () => from('127.0.0.2')));
      return r.every((x) => x === 'dropped');
    });
    assert.equal(await from('127.0.0.1'), 200);
  });
});

describe('SIGHUP', () => {
  let up: TestUpstream;
  let p: PolicyFiles;
  let w: WardProcess;

  before(async () => {
    up = await startUpstream();
    p = policyDir();
    // gateway.yaml is a symlink to a file in a directory ward does not watch, so only the signal
    // can make it notice an edit.
    mkdirSync(join(p.dir, 'real'));
    writeFileSync(join(p.dir, 'real', 'gw.yaml'), stringify(basePolicy(up.url)));
    symlinkSync(join('real', 'gw.yaml'), join(p.dir, 'gateway.yaml'));
    w = await startWard(p.dir);
  });
  after(() => stopAll(w, up, p));

  it('reloads the policy', async () => {
    assert.equal((await request(w.base + '/v2/x')).status, 404);
    const pol = basePolicy(up.url);
    (pol.routes as unknown[]).unshift({ name: 'v2', prefix: '/v2/', public: true, upstream: 'api' });
    writeFileSync(join(p.dir, 'real', 'gw.yaml.tmp'), stringify(pol));
    renameSync(join(p.dir, 'real', 'gw.yaml.tmp'), join(p.dir, 'real', 'gw.yaml'));
    const from = w.logs.length;
    w.proc.kill('SIGHUP');
    await within(5000, 'the SIGHUP reload', async () => w.logs.slice(from).some((l) => l.includes('"cause":"SIGHUP"') && l.includes('policy reloaded')));
    assert.equal((await request(w.base + '/v2/x')).status, 200);
    assert.equal(w.proc.exitCode, null);
  });
});
