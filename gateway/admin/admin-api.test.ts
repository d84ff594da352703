import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import type { AdminToken, Policy, RouteSpec, UpstreamSpec } from '../policy/types.js';
import { ReleaseController } from '../release/release-controller.js';
import { LoopWatch } from '../upstream/loop-watch.js';
import { UpstreamRegistry } from '../upstream/upstream-registry.js';
import { AdminActions } from './admin-actions.js';
import { authenticate, handleAdmin, type AdminContext } from './admin-api.js';

const sha = (s: string): string => createHash('sha256').update(s).digest('hex');
const TOKENS: AdminToken[] = [
  { name: 'olga', role: 'operator', sha256: sha('operator-secret') },
  { name: 'vic', role: 'viewer', sha256: sha('viewer-secret') },
];
const T1 = 'http://127.0.0.1:9001';
const T2 = 'http://127.0.0.1:9002';

const watch = new LoopWatch();
const registry = new UpstreamRegistry({ loopWatch: watch });
const upstream: UpstreamSpec = { name: 'api', targets: [T1, T2], timeout_ms: 1000, balance: 'least_request' };
registry.apply({ upstreams: { api: upstream, api_v2: { ...upstream, name: 'api_v2', targets: ['http://127.0.0.1:9101'] } } });
const route: RouteSpec = { name: 'api', prefix: '/v1/', websocket: false, public: false, upstream: 'api', enforce: true, max_message_bytes: 0, idle_timeout_s: 0, sip: false, max_call_s: 0 };
const policy: Pick<Policy, 'routes' | 'releases'> = {
  routes: [route],
  releases: { 'api-v2': { name: 'api-v2', routes: ['api'], stable: 'api', canary: 'api_v2', tenant_groups: { beta: ['acme'] }, steps: [{ groups: ['beta'] }, { percent: 50 }], step_interval_s: 300 } },
};
const releases = new ReleaseController(policy);
const actions = new AdminActions({ upstreams: () => registry.groups(), releases: () => releases });
const ctx: AdminContext = {
  tokens: () => TOKENS,
  actions,
  overview: () => ({ policy_version: 'abc123', last_reload: { at: 1, result: 'success' }, readiness: { status: 'ok', reasons: [] }, top_refusals: [{ tenant: 'acme', count: 3 }] }),
};
const server = http.createServer((req, res) => {
  if (req.url?.startsWith('/admin')) void handleAdmin(req, res, ctx);
  else res.writeHead(404).end();
});
let base = '';

before(async () => {
  await releases.start();
  await actions.start();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
after(async () => {
  actions.stop();
  await releases.stop();
  await new Promise((r) => server.close(r));
});

interface Call {
  method?: string;
  token?: string;
  headers?: Record<string, string>;
  body?: unknown;
}

async function call(path: string, c: Call = {}): Promise<{ status: number; body: any; text: string; headers: Headers }> {
  const headers: Record<string, string> = { ...c.headers };
  if (c.token !== undefined) headers.authorization = `Bearer ${c.token}`;
  const res = await fetch(base + path, { method: c.method ?? 'GET', headers, body: c.body === undefined ? undefined : JSON.stringify(c.body) });
  const text = await res.text();
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    body = undefined;
  }
  return { status: res.status, body, text, headers: res.headers };
}

const OP = 'operator-secret';
const VIEW = 'viewer-secret';
const ACT = { 'x-ward-admin': '1' };
const drain = (c: Call) => call('/admin/api/upstreams/api/targets/drain', { method: 'POST', body: { target: T1 }, ...c, headers: { ...ACT, ...c.headers } });

describe('admin API access', () => {
  it('answers 401 without a token or with an unknown one, on every /admin/ path', async () => {
    for (const p of ['/admin/', '/admin/api/upstreams', '/admin/api/audit', '/admin/api/nope']) {
      const r = await call(p);
      assert.equal(r.status, 401, p);
      assert.match(r.headers.get('www-authenticate') ?? '', /^Bearer/);
    }
    assert.equal((await call('/admin/api/upstreams', { token: 'guess' })).status, 401);
    assert.equal((await call('/admin/api/upstreams', { headers: { authorization: `Basic ${OP}` } })).status, 401);
    assert.equal((await drain({})).status, 401);
  });

  it('lets a viewer look but not act (403)', async () => {
    assert.equal((await call('/admin/api/upstreams', { token: VIEW })).status, 200);
    const r = await drain({ token: VIEW });
    assert.equal(r.status, 403);
    assert.equal(r.body.reason, 'role');
    assert.equal(registry.get('api')!.stateOf(T1), 'healthy');
  });

  it('answers 405 to an action that is not a POST', async () => {
    const r = await call('/admin/api/upstreams/api/targets/drain', { token: OP });
    assert.equal(r.status, 405);
    assert.equal(r.headers.get('allow'), 'POST');
    assert.equal((await call('/admin/api/releases/api-v2/pause', { token: OP, method: 'PUT', headers: ACT })).status, 405);
    assert.equal((await call('/admin/api/upstreams', { token: OP, method: 'POST', headers: ACT })).status, 405);
  });

  it('refuses an action without X-Ward-Admin: 1 or from another origin (403)', async () => {
    const noHeader = await call('/admin/api/upstreams/api/targets/drain', { token: OP, method: 'POST', body: { target: T1 } });
    assert.equal(noHeader.status, 403);
    assert.equal(noHeader.body.reason, 'x_ward_admin_required');
    const evil = await drain({ token: OP, headers: { origin: 'https://evil.example' } });
    assert.equal(evil.status, 403);
    assert.equal(evil.body.reason, 'origin');
    assert.equal((await drain({ token: OP, headers: { origin: 'null' } })).status, 403);
    assert.equal(registry.get('api')!.stateOf(T1), 'healthy');
  });

  it('compares tokens by digest and finds the right one', () => {
    assert.deepEqual(authenticate(`Bearer ${OP}`, TOKENS), { name: 'olga', role: 'operator' });
    assert.deepEqual(authenticate(`bearer ${VIEW}`, TOKENS), { name: 'vic', role: 'viewer' });
    assert.equal(authenticate('Bearer ', TOKENS), undefined);
    assert.equal(authenticate(`Bearer ${OP}`, [{ name: 'bad', role: 'operator', sha256: 'zz' }]), undefined);
    assert.equal(authenticate(`Bearer ${OP}`, []), undefined);
  });
});

describe('admin API actions', () => {
  it('drains a target from its own origin, shows it draining, and audits who did what', async () => {
    const r = await drain({ token: OP, headers: { origin: base } });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.body.before, 'healthy');
    assert.equal(r.body.after, 'draining');
    const ups = await call('/admin/api/upstreams', { token: VIEW });
    const api = ups.body.upstreams.find((u: { name: string }) => u.name === 'api');
    assert.deepEqual(Object.keys(api).filter((k) => ['name', 'panic', 'targets'].includes(k)).sort(), ['name', 'panic', 'targets']);
    assert.deepEqual(api.targets.map((t: { url: string; state: string }) => [t.url, t.state]), [[T1, 'draining'], [T2, 'healthy']]);
    for (const k of ['url', 'state', 'in_flight', 'ejections']) assert.ok(k in api.targets[0], k);
    const audit = await call('/admin/api/audit', { token: VIEW });
    const e = audit.body.entries[0];
    assert.equal(e.who, 'olga');
    assert.equal(e.action, 'drain');
    assert.equal(e.subject, `upstream api target ${T1}`);
    assert.equal(e.before, 'healthy');
    assert.equal(e.after, 'draining');
    assert.ok(typeof e.at === 'number');
    const back = await call('/admin/api/upstreams/api/targets/undrain', { token: OP, method: 'POST', headers: ACT, body: { target: T1 } });
    assert.equal(back.body.after, 'healthy');
    const maint = await call('/admin/api/upstreams/api/targets/maint', { token: OP, method: 'POST', headers: ACT, body: { target: T2 } });
    assert.equal(maint.body.after, 'maint');
    await call('/admin/api/upstreams/api/targets/undrain', { token: OP, method: 'POST', headers: ACT, body: { target: T2 } });
  });

  it('answers 400 to a bad body and 404 to unknown upstreams, targets, releases and actions', async () => {
    assert.equal((await call('/admin/api/upstreams/api/targets/drain', { token: OP, method: 'POST', headers: ACT, body: { nope: 1 } })).status, 400);
    const raw = await fetch(`${base}/admin/api/upstreams/api/targets/drain`, { method: 'POST', headers: { authorization: `Bearer ${OP}`, ...ACT }, body: '{oops' });
    assert.equal(raw.status, 400);
    assert.equal((await call('/admin/api/upstreams/zzz/targets/drain', { token: OP, method: 'POST', headers: ACT, body: { target: T1 } })).status, 404);
    assert.equal((await call('/admin/api/upstreams/api/targets/drain', { token: OP, method: 'POST', headers: ACT, body: { target: 'http://x:1' } })).status, 404);
    assert.equal((await call('/admin/api/upstreams/api/targets/explode', { token: OP, method: 'POST', headers: ACT, body: { target: T1 } })).status, 404);
    assert.equal((await call('/admin/api/releases/nope/pause', { token: OP, method: 'POST', headers: ACT })).status, 404);
    assert.equal((await call('/admin/api/whatever', { token: OP })).status, 404);
    const big = await call('/admin/api/upstreams/api/targets/drain', { token: OP, method: 'POST', headers: ACT, body: { target: 'x'.repeat(20_000) } });
    assert.equal(big.status, 413);
  });

  it('pauses, resumes, promotes and aborts a release, each audited', async () => {
    const rel = await call('/admin/api/releases', { token: VIEW });
    assert.equal(rel.body.releases[0].name, 'api-v2');
    assert.equal(rel.body.releases[0].status, 'running');
    for (const [a, status] of [['pause', 'paused'], ['resume', 'running'], ['promote', 'promoted'], ['abort', 'aborted']] as const) {
      const r = await call(`/admin/api/releases/api-v2/${a}`, { token: OP, method: 'POST', headers: ACT });
      assert.equal(r.status, 200, r.text);
      assert.equal(r.body.release.status, status);
    }
    assert.equal(releases.router.resolve('api', 'acme'), 'api', 'aborted: nobody on the canary');
    const audit = await call('/admin/api/audit?limit=4', { token: OP });
    assert.deepEqual(audit.body.entries.map((e: { action: string }) => e.action), ['abort', 'promote', 'resume', 'pause']);
    assert.deepEqual(audit.body.entries[0].after, { status: 'aborted', step: 1 });
  });

  it('counts ward_admin_actions_total by action and result', () => {
    const m = new Map(actions.metricValues().map((v) => [`${v.action} ${v.result}`, v.value]));
    assert.ok((m.get('drain ok') ?? 0) >= 1);
    assert.ok((m.get('drain forbidden') ?? 0) >= 3);
    assert.ok((m.get('drain unauthorized') ?? 0) >= 1);
    assert.ok((m.get('drain method_not_allowed') ?? 0) >= 1);
    assert.equal(m.get('abort ok'), 1);
  });
});

describe('the console page', () => {
  it('serves the console with its script and style inlined to a valid token', async () => {
    const r = await call('/admin/', { token: VIEW, headers: { accept: 'text/html' } });
    assert.equal(r.status, 200);
    assert.match(r.headers.get('content-type') ?? '', /^text\/html/);
    assert.match(r.headers.get('content-security-policy') ?? '', /frame-ancestors 'none'/);
    assert.ok(r.text.includes('X-Ward-Admin'), 'console.js is inlined');
    assert.ok(!r.text.includes('/*CONSOLE_JS*/') && !r.text.includes('/*CONSOLE_CSS*/'));
    assert.ok(!/<script[^>]+src=/.test(r.text), 'no external scripts');
  });

  it('answers a browser without a token with 401 and the sign-in page', async () => {
    const r = await call('/admin/', { headers: { accept: 'text/html' } });
    assert.equal(r.status, 401);
    assert.ok(r.text.includes('Admin token'));
    assert.ok(!r.text.includes('X-Ward-Admin'), 'the console itself is not given away');
  });

  it('serves the overview the gateway supplies, with who is asking', async () => {
    const r = await call('/admin/api/overview', { token: VIEW });
    assert.equal(r.body.policy_version, 'abc123');
    assert.deepEqual(r.body.whoami, { name: 'vic', role: 'viewer' });
    assert.deepEqual(r.body.top_refusals, [{ tenant: 'acme', count: 3 }]);
  });
});
