// The ops console's JSON API on a real `ward serve` admin port: an operator drains a target and it
// gets no new requests while the ones in flight finish; the guard matrix (401 without a token, 403
// for a viewer's action, without X-Ward-Admin or from another origin, 405 for a GET on an action);
// the overview (policy version, last reload, readiness, top tenants by refusals).

import assert from 'node:assert/strict';
import { Agent } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { policyDir, basePolicy, startWard, type PolicyFiles, type WardProcess } from './support/ward-process.js';
import { request, bearer } from './support/http.js';
import { signJwt, standardClaims } from './support/jwt.js';
import { consoleTokens, OPERATOR_TOKEN, VIEWER_TOKEN, startTargets, states, until, upstreamView, type Target } from './support/targets.js';

let targets: Target[];
let p: PolicyFiles;
let w: WardProcess;
let token: string;
let policyDoc: Record<string, unknown>;
const agent = new Agent({ keepAlive: true, maxSockets: 8 });

const DRAIN = '/admin/api/upstreams/api/targets/drain';

function post(path: string, headers: Record<string, string>, body: unknown = { target: targets[0]!.url }) {
  return request(w.admin + path, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });
}

before(async () => {
  targets = await startTargets(['a', 'b', 'c']);
  p = policyDir();
  policyDoc = basePolicy('http://127.0.0.1:1', {
    admin: consoleTokens(p),
    upstreams: { api: { targets: targets.map((t) => t.url), timeout_ms: 5000, balance: 'round_robin' } },
    tenants: {
      '*': { buckets: { api: { rate: 100000, per_s: 1 }, calls: { rate: 100000, per_s: 1 } }, concurrency: { calls: 100 } },
      greedy: { buckets: { api: { rate: 1, per_s: 60, burst: 2 } } },
    },
  });
  p.write(policyDoc);
  w = await startWard(p.dir);
  token = signJwt(p.key, standardClaims('acme'));
});

after(async () => {
  agent.destroy();
  await w?.stop();
  await Promise.all(targets.map((t) => t.close()));
  p?.remove();
});

describe('draining a target from the console API', () => {
  it('sends it no new requests while the ones in flight finish', async () => {
    const [a, b, c] = targets as [Target, Target, Target];
    // One long request on each target (round robin).
    const held = [0, 1, 2].map(() => request(w.base + '/v1/slow?hold_ms=1500', { headers: bearer(token) }));
    await until('one request in flight on each target', () => a.inFlight === 1 && b.inFlight === 1 && c.inFlight === 1);
    const r = await post(DRAIN, { ...bearer(OPERATOR_TOKEN), 'x-ward-admin': '1' }, { target: b.url });
    assert.equal(r.status, 200, r.body);
    assert.equal(r.json().before, 'healthy');
    assert.equal(r.json().after, 'draining');
    const view = (await upstreamView(w.admin, OPERATOR_TOKEN, 'api')).targets.find((t) => t.url === b.url)!;
    assert.equal(view.state, 'draining');
    assert.equal(view.in_flight, 1, 'what remains on it');

    const bSeen = b.seen.length;
    const got: Record<string, number> = {};
    for (let i = 0; i < 30; i++) {
      const t = (await request(w.base + '/v1/fast', { headers: bearer(token), agent })).json().target as string;
      got[t] = (got[t] ?? 0) + 1;
    }
    assert.deepEqual(got, { a: 15, c: 15 });
    assert.equal(b.seen.length, bSeen, 'no new request reached the drained target');
    const done = await Promise.all(held);
    assert.deepEqual(done.map((d) => [d.status, d.json().target]).sort(), [[200, 'a'], [200, 'b'], [200, 'c']], 'in-flight requests finished, the drained one too');
    await until('nothing left in flight on b', async () => (await upstreamView(w.admin, OPERATOR_TOKEN, 'api')).targets.find((t) => t.url === b.url)!.in_flight === 0);

    const audit = (await request(w.admin + '/admin/api/audit', { headers: bearer(VIEWER_TOKEN) })).json().entries;
    assert.deepEqual([audit[0].who, audit[0].action, audit[0].before, audit[0].after], ['olga', 'drain', 'healthy', 'draining']);
    assert.equal(audit[0].subject, `upstream api target ${b.url}`);

    const u = await post('/admin/api/upstreams/api/targets/undrain', { ...bearer(OPERATOR_TOKEN), 'x-ward-admin': '1' }, { target: b.url });
    assert.equal(u.status, 200);
    assert.equal((await states(w.admin, OPERATOR_TOKEN, 'api'))[b.url], 'healthy');
    const m = (await request(w.admin + '/metrics')).body;
    assert.match(m, /ward_admin_actions_total\{action="drain",result="ok"\} 1/);
    assert.match(m, /ward_admin_actions_total\{action="undrain",result="ok"\} 1/);
  });
});

describe('console guards', () => {
  it('401 without a token, 403 for a viewer, without X-Ward-Admin or from another origin, 405 for a GET on an action', async () => {
    const own = `http://127.0.0.1:${w.adminPort}`;
    const cases: Array<[string, Promise<{ status: number }>, number]> = [
      ['no token', request(w.admin + '/admin/api/upstreams'), 401],
      ['bad token', request(w.admin + '/admin/api/upstreams', { headers: bearer('nope') }), 401],
      ['page without a token', request(w.admin + '/admin/', { headers: { accept: 'text/html' } }), 401],
      ['viewer looks', request(w.admin + '/admin/api/upstreams', { headers: bearer(VIEWER_TOKEN) }), 200],
      ['viewer acts', post(DRAIN, { ...bearer(VIEWER_TOKEN), 'x-ward-admin': '1' }), 403],
      ['no X-Ward-Admin', post(DRAIN, bearer(OPERATOR_TOKEN)), 403],
      ['another origin', post(DRAIN, { ...bearer(OPERATOR_TOKEN), 'x-ward-admin': '1', origin: 'http://evil.example' }), 403],
      ['GET on an action', request(w.admin + DRAIN, { headers: bearer(OPERATOR_TOKEN) }), 405],
      ['unknown target', post(DRAIN, { ...bearer(OPERATOR_TOKEN), 'x-ward-admin': '1' }, { target: 'http://127.0.0.1:1' }), 404],
      ['healthz stays open', request(w.admin + '/healthz'), 200],
      ['readyz stays open', request(w.admin + '/readyz'), 200],
      ['metrics stay open', request(w.admin + '/metrics'), 200],
    ];
    for (const [what, res, want] of cases) assert.equal((await res).status, want, what);
    assert.deepEqual(Object.values(await states(w.admin, OPERATOR_TOKEN, 'api')), ['healthy', 'healthy', 'healthy'], 'no refused action changed anything');
    // The admin's own origin may act (what the console page sends).
    const ok = await post('/admin/api/upstreams/api/targets/maint', { ...bearer(OPERATOR_TOKEN), 'x-ward-admin': '1', origin: own });
    assert.equal(ok.status, 200, ok.body);
    assert.equal(ok.json().after, 'maint');
    await post('/admin/api/upstreams/api/targets/undrain', { ...bearer(OPERATOR_TOKEN), 'x-ward-admin': '1' });
  });
});

describe('console overview', () => {
  it('shows the policy version, the last reload, readiness and the top tenants by refusals', async () => {
    const greedy = signJwt(p.key, standardClaims('greedy'));
    const statuses: number[] = [];
    for (let i = 0; i < 10; i++) statuses.push((await request(w.base + '/v1/things', { headers: bearer(greedy), agent })).status);
    assert.equal(statuses.filter((s) => s === 429).length, 8);
    const o = (await request(w.admin + '/admin/api/overview', { headers: bearer(VIEWER_TOKEN) })).json();
    const info = /ward_policy_info\{hash="([0-9a-f]+)"/.exec((await request(w.admin + '/metrics')).body)![1]!;
    assert.ok(o.policy_version.startsWith(info));
    assert.equal(o.last_reload.result, 'success');
    assert.deepEqual(o.readiness, { status: 'ok', reasons: [] });
    assert.deepEqual(o.top_refusals[0], { tenant: 'greedy', count: 8, reasons: { rate_limited: 8 } });
    assert.deepEqual(o.whoami, { name: 'vic', role: 'viewer' });

    p.writeRaw('gateway.yaml', 'listen: [not, a, map\n');
    await until('the refused reload to show', async () => (await request(w.admin + '/admin/api/overview', { headers: bearer(VIEWER_TOKEN) })).json().last_reload.result === 'failure', 5000);
    const bad = (await request(w.admin + '/admin/api/overview', { headers: bearer(VIEWER_TOKEN) })).json();
    assert.match(bad.last_reload.error, /gateway\.yaml:\d+:\d+/);
    assert.equal(bad.policy_version, o.policy_version, 'the last good policy stays in force');
    p.write(policyDoc);
  });
});
