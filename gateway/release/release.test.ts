import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import type { Policy, ReleaseSpec, RouteSpec } from '../policy/types.js';
import { LoopWatch } from '../upstream/loop-watch.js';
import { closeExchangeAgent, exchange, startTarget, type TargetServer } from '../upstream/target-servers.js';
import { UpstreamGroup } from '../upstream/upstream-group.js';
import { ReleaseController } from './release-controller.js';
import { ReleaseRouter } from './release-router.js';
import { FileReleaseStateStore, MemoryReleaseStateStore } from './release-state.js';

const TENANTS = Array.from({ length: 1000 }, (_, i) => `tenant-${i}`);

function route(name: string, upstream = 'api'): RouteSpec {
  return { name, prefix: `/${name}`, websocket: false, public: false, upstream, enforce: true, max_message_bytes: 0, idle_timeout_s: 0, sip: false, max_call_s: 0 };
}

function release(over: Partial<ReleaseSpec> = {}): ReleaseSpec {
  return {
    name: 'api-v2',
    routes: ['api', 'calls'],
    stable: 'api',
    canary: 'api_v2',
    tenant_groups: { beta: ['acme', 'globex'] },
    steps: [{ groups: ['beta'] }, { percent: 10 }, { percent: 25 }, { percent: 100 }],
    step_interval_s: 300,
    ...over,
  };
}

function policy(r: ReleaseSpec = release()): Pick<Policy, 'routes' | 'releases'> {
  return { routes: [route('api'), route('calls'), route('other')], releases: { [r.name]: r } };
}

class Clock {
  t = 1_700_000_000_000;
  now = (): number => this.t;
  advance(s: number): void {
    this.t += s * 1000;
  }
}

function onCanary(c: ReleaseController | ReleaseRouter, r = 'api'): Set<string> {
  const router = c instanceof ReleaseController ? c.router : c;
  return new Set(TENANTS.filter((t) => router.resolve(r, t) === 'api_v2'));
}

describe('gray release assignment', () => {
  it('puts the listed groups on the canary as soon as the release is loaded, and nobody else', async () => {
    const c = new ReleaseController(policy(), { now: new Clock().now });
    await c.start();
    await c.stop();
    assert.equal(c.router.resolve('api', 'acme'), 'api_v2');
    assert.equal(c.router.resolve('calls', 'globex'), 'api_v2');
    assert.equal(c.router.resolve('api', 'initech'), 'api');
    assert.equal(c.router.resolve('other', 'acme'), 'api', 'routes outside the release are untouched');
    assert.equal(onCanary(c).size, 0);
  });

  it('puts 10 ± 2 % of 1,000 tenants on the canary at 10 %, the same on every instance and every request', async () => {
    const clock = new Clock();
    const c = new ReleaseController(policy(), { now: clock.now });
    await c.start();
    clock.advance(300);
    await c.tick();
    await c.stop();
    assert.equal(c.view()[0]!.percent, 10);
    const a = onCanary(c);
    assert.ok(a.size >= 80 && a.size <= 120, `${a.size} tenants on the canary`);
    const other = new ReleaseRouter(policy(), c.snapshot());
    assert.deepEqual(onCanary(other), a, 'another instance agrees');
    assert.deepEqual(onCanary(c), a, 'each tenant is stable across requests');
  });

  it('keeps every earlier canary tenant when going from 10 to 25 %', async () => {
    const clock = new Clock();
    const c = new ReleaseController(policy(), { now: clock.now });
    await c.start();
    clock.advance(300);
    await c.tick();
    const at10 = onCanary(c);
    clock.advance(300);
    await c.tick();
    await c.stop();
    const at25 = onCanary(c);
    for (const t of at10) assert.ok(at25.has(t), `${t} left the canary`);
    assert.ok(at25.size >= 220 && at25.size <= 280, `${at25.size} at 25 %`);
    assert.equal(c.router.resolve('api', 'acme'), 'api_v2', 'the beta group stays on');
  });
});

describe('gray release analysis', () => {
  const servers: TargetServer[] = [];
  const watch = new LoopWatch().start();
  after(async () => {
    watch.stop();
    closeExchangeAgent();
    await Promise.all(servers.map((s) => s.close()));
  });

  it('rolls back a canary failing 10 % of requests within the window, then sends it nothing new', async () => {
    const stableT = await startTarget();
    const canaryT = await startTarget();
    servers.push(stableT, canaryT);
    const up = (name: string, t: TargetServer) => new UpstreamGroup({ name, targets: [t.url], timeout_ms: 2000, balance: 'round_robin' }, { loopWatch: watch });
    const groups: Record<string, UpstreamGroup> = { api: up('api', stableT), api_v2: up('api_v2', canaryT) };
    const clock = new Clock();
    const spec = release({ steps: [{ percent: 50 }, { percent: 100 }], step_interval_s: 60, analysis: { window_s: 30, min_requests: 100, max_error_rate: 0.02 } });
    const c = new ReleaseController(policy(spec), { now: clock.now });
    await c.start();
    let n = 0;
    // Real requests: every 10th request the canary serves fails with 500.
    const send = async (tenant: string): Promise<void> => {
      const upstream = c.router.resolve('api', tenant);
      if (upstream === 'api_v2') canaryT.mode = ++n % 10 === 0 ? '500' : 'ok';
      const r = await exchange(groups[upstream]!);
      c.router.record('api', upstream, r.outcome as 'ok' | '5xx');
    };
    for (let round = 0; round < 10 && c.view()[0]!.status === 'running'; round++) {
      for (const t of TENANTS.slice(round * 60, round * 60 + 60)) await send(t);
      clock.advance(1);
      await c.tick();
    }
    const v = c.view()[0]!;
    assert.equal(v.status, 'rolled_back', JSON.stringify(v));
    assert.ok(v.canary_side.requests >= 100 && v.canary_side.error_rate > 0.02);
    assert.equal(v.decisions.rollback, 1);
    assert.match(v.reason!, /^error_rate/);
    const hits = canaryT.hits;
    for (const t of TENANTS.slice(0, 200)) await send(t);
    assert.equal(canaryT.hits, hits, 'nothing new goes to a rolled-back canary');
    clock.advance(600);
    await c.tick();
    assert.equal(c.view()[0]!.status, 'rolled_back', 'it stays rolled back until told otherwise');
    await c.stop();
  });

  it('pauses itself when the canary gets too little traffic, and goes on once it has enough', async () => {
    const clock = new Clock();
    const spec = release({ steps: [{ percent: 10 }, { percent: 20 }], step_interval_s: 10, analysis: { window_s: 5, min_requests: 20, max_error_rate: 0.05 } });
    const c = new ReleaseController(policy(spec), { now: clock.now });
    await c.start();
    clock.advance(10);
    await c.tick();
    assert.equal(c.view()[0]!.status, 'paused');
    assert.equal(c.view()[0]!.reason, 'insufficient_traffic');
    assert.equal(c.view()[0]!.step, 0);
    c.addCounts({ 'api-v2': [30, 0, 200, 1] });
    await c.tick();
    assert.equal(c.view()[0]!.status, 'running');
    assert.equal(c.view()[0]!.step, 1);
    assert.deepEqual(c.metricValues().decisions['api-v2'], { start: 1, hold: 1, advance: 1 });
    await c.stop();
  });

  it('does not roll back when stable fails as much as the canary', async () => {
    const clock = new Clock();
    const spec = release({ steps: [{ percent: 10 }, { percent: 20 }], analysis: { window_s: 5, min_requests: 20, max_error_rate: 0.05 } });
    const c = new ReleaseController(policy(spec), { now: clock.now });
    await c.start();
    c.addCounts({ 'api-v2': [100, 10, 1000, 200] });
    await c.tick();
    assert.equal(c.view()[0]!.status, 'running');
    await c.stop();
  });
});

describe('gray release actions and state', () => {
  it('pause holds the step, resume goes on, promote moves everyone, abort moves everyone back', async () => {
    const clock = new Clock();
    const c = new ReleaseController(policy(), { now: clock.now });
    await c.start();
    const paused = await c.action('api-v2', 'pause', 'alice');
    assert.equal(paused.ok, true);
    assert.equal(paused.before!.status, 'running');
    assert.equal(paused.after!.status, 'paused');
    assert.equal(paused.after!.by, 'alice');
    clock.advance(3000);
    await c.tick();
    assert.equal(c.view()[0]!.step, 0, 'an operator pause holds');
    await c.action('api-v2', 'resume', 'alice');
    clock.advance(300);
    await c.tick();
    assert.equal(c.view()[0]!.step, 1);
    await c.action('api-v2', 'promote', 'bob');
    assert.equal(onCanary(c).size, TENANTS.length);
    assert.equal(c.metricValues().share['api-v2'], 1);
    await c.action('api-v2', 'abort', 'bob');
    assert.equal(onCanary(c).size, 0);
    assert.equal(c.router.resolve('api', 'acme'), 'api');
    assert.equal(c.metricValues().share['api-v2'], 0);
    assert.deepEqual(await c.action('nope', 'pause', 'bob'), { ok: false, error: 'unknown_release' });
    await c.stop();
  });

  it('survives a reload and a restart (file store), and two instances never both take the same step', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ward-release-'));
    try {
      const clock = new Clock();
      const file = join(dir, 'releases.json');
      const a = new ReleaseController(policy(), { now: clock.now, store: new FileReleaseStateStore(file) });
      await a.start();
      clock.advance(300);
      await a.tick();
      await a.apply(policy());
      assert.equal(a.view()[0]!.step, 1, 'a reload keeps the step');
      await a.stop();
      const b = new ReleaseController(policy(), { now: clock.now, store: new FileReleaseStateStore(file) });
      await b.start();
      assert.equal(b.view()[0]!.step, 1, 'a restart keeps the step');
      assert.equal(b.view()[0]!.step_started_at, a.view()[0]!.step_started_at);
      await b.stop();

      const shared = new MemoryReleaseStateStore();
      const x = new ReleaseController(policy(), { now: clock.now, store: shared });
      const y = new ReleaseController(policy(), { now: clock.now, store: shared });
      await x.start();
      await y.start();
      clock.advance(300);
      await Promise.all([x.tick(), y.tick()]);
      await Promise.all([x.tick(), y.tick()]);
      const advances = (x.metricValues().decisions['api-v2']!.advance ?? 0) + (y.metricValues().decisions['api-v2']!.advance ?? 0);
      assert.equal(advances, 1);
      assert.equal(x.view()[0]!.step, 1);
      assert.equal(y.view()[0]!.step, 1);
      await x.action('api-v2', 'pause', 'ops');
      await y.refresh();
      assert.equal(y.view()[0]!.status, 'paused', 'an action on one instance reaches the other through the store');
      await x.stop();
      await y.stop();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
