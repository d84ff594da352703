import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import type { HealthSpec, UpstreamSpec } from '../policy/types.js';
import { LoopWatch } from './loop-watch.js';
import { closeExchangeAgent, exchange, sleep, startTarget, type TargetServer } from './target-servers.js';
import { UpstreamGroup } from './upstream-group.js';
import { UpstreamRegistry } from './upstream-registry.js';

const servers: TargetServer[] = [];
const watch = new LoopWatch().start();
after(async () => {
  watch.stop();
  closeExchangeAgent();
  await Promise.all(servers.map((s) => s.close()));
});

async function targets(n: number): Promise<TargetServer[]> {
  const out = await Promise.all(Array.from({ length: n }, () => startTarget()));
  servers.push(...out);
  return out;
}

function health(over: Partial<HealthSpec> = {}): HealthSpec {
  return {
    passive: { consecutive_failures: 3, base_ejection_ms: 300, max_ejection_ms: 5000 },
    max_ejection_percent: 50,
    panic_threshold_percent: 0,
    slow_start_ms: 0,
    ...over,
  };
}

function spec(ts: TargetServer[], over: Partial<UpstreamSpec> = {}): UpstreamSpec {
  return { name: 'api', targets: ts.map((t) => t.url), timeout_ms: 2000, balance: 'least_request', ...over };
}

async function run(g: UpstreamGroup<unknown>, n: number): Promise<void> {
  for (let i = 0; i < n; i++) await exchange(g);
}

describe('balancing', () => {
  it('round_robin sends each target the same share', async () => {
    const ts = await targets(3);
    const g = new UpstreamGroup(spec(ts, { balance: 'round_robin' }), { loopWatch: watch });
    await run(g, 30);
    assert.deepEqual(ts.map((t) => t.hits), [10, 10, 10]);
  });

  it('least_request prefers the target with fewer requests in flight', async () => {
    const ts = await targets(2);
    ts[0]!.mode = 'slow';
    ts[0]!.delayMs = 1000;
    const g = new UpstreamGroup(spec(ts), { loopWatch: watch });
    const slow = [exchange(g), exchange(g)];
    await sleep(20);
    // While the slow target holds its requests, new ones go to the idle one.
    const quick = [];
    for (let i = 0; i < 10; i++) quick.push(await exchange(g));
    await Promise.all(slow);
    assert.equal(quick.filter((q) => q.target === ts[0]!.url).length, 0, 'nothing went to the busy target');
    assert.equal(g.view().targets.reduce((s, t) => s + t.in_flight, 0), 0);
  });
});

describe('passive outlier detection', () => {
  it('ejects a target answering 500 and doubles the ejection on a repeat', async () => {
    const ts = await targets(3);
    ts[1]!.mode = '500';
    const g = new UpstreamGroup(spec(ts, { balance: 'round_robin', health: health() }), { loopWatch: watch });
    await run(g, 12);
    assert.equal(g.stateOf(ts[1]!.url), 'ejected');
    const hitsAtEjection = ts[1]!.hits;
    assert.equal(hitsAtEjection, 3, 'ejected on the 3rd consecutive failure');
    await run(g, 20);
    assert.equal(ts[1]!.hits, hitsAtEjection, 'an ejected target gets no traffic');
    await sleep(400);
    await run(g, 12); // back (no active checks), fails three more times
    assert.equal(g.stateOf(ts[1]!.url), 'ejected');
    const ej = g.view().events.filter((e) => e.kind === 'ejected');
    assert.equal(ej.length, 2);
    const first = ej[0]!.until! - ej[0]!.at;
    const second = ej[1]!.until! - ej[1]!.at;
    assert.ok(first >= 300 && first <= 330, `first ejection ${first} ms`);
    assert.ok(second >= 600 && second <= 660, `second ejection ${second} ms`);
    assert.equal(ej[0]!.reason, '5xx');
    assert.equal(g.view().targets[1]!.ejections, 2);
  });

  it('never ejects a target that only answers 4xx', async () => {
    const ts = await targets(2);
    ts[0]!.mode = '404';
    const g = new UpstreamGroup(spec(ts, { balance: 'round_robin', health: health({ passive: { consecutive_failures: 1, base_ejection_ms: 1000, max_ejection_ms: 1000 } }) }), { loopWatch: watch });
    await run(g, 40);
    assert.equal(g.stateOf(ts[0]!.url), 'healthy');
    assert.equal(ts[0]!.hits, 20);
  });

  it('counts connection failures and timeouts', async () => {
    const ts = await targets(3);
    const dead = ts[0]!;
    await dead.close();
    ts[1]!.mode = 'hang';
    const g = new UpstreamGroup(spec(ts, { balance: 'round_robin', timeout_ms: 100, health: health({ max_ejection_percent: 100, passive: { consecutive_failures: 2, base_ejection_ms: 5000, max_ejection_ms: 5000 } }) }), { loopWatch: watch });
    await Promise.all(Array.from({ length: 6 }, () => exchange(g)));
    const v = g.view();
    assert.equal(v.targets[0]!.state, 'ejected');
    assert.equal(v.targets[0]!.reason, 'connect');
    assert.equal(v.targets[1]!.state, 'ejected');
    assert.equal(v.targets[1]!.reason, 'timeout');
    assert.equal(v.targets[2]!.state, 'healthy');
  });

  it('ejects at most max_ejection_percent of the targets when every target fails', async () => {
    const ts = await targets(4);
    for (const t of ts) t.mode = '500';
    const g = new UpstreamGroup(spec(ts, { balance: 'round_robin', health: health({ max_ejection_percent: 50 }) }), { loopWatch: watch });
    await run(g, 60);
    const states = g.view().targets.map((t) => t.state);
    assert.equal(states.filter((s) => s === 'ejected').length, 2, states.join());
  });

  it('always allows one ejection even when the percentage rounds to zero', async () => {
    const ts = await targets(3);
    ts[0]!.mode = '500';
    ts[1]!.mode = '500';
    const g = new UpstreamGroup(spec(ts, { balance: 'round_robin', health: health({ max_ejection_percent: 10 }) }), { loopWatch: watch });
    await run(g, 30);
    assert.equal(g.view().targets.filter((t) => t.state === 'ejected').length, 1);
  });

  it('spreads traffic over all targets in panic and reports it', async () => {
    const ts = await targets(3);
    ts[0]!.mode = '500';
    ts[1]!.mode = '500';
    const s = spec(ts, { balance: 'round_robin', health: health({ max_ejection_percent: 100, panic_threshold_percent: 50, passive: { consecutive_failures: 3, base_ejection_ms: 5000, max_ejection_ms: 5000 } }) });
    const reg = new UpstreamRegistry({ loopWatch: watch });
    reg.apply({ upstreams: { api: s } });
    const g = reg.get('api')!;
    await run(g, 12);
    assert.ok(g.view().targets.filter((t) => t.state === 'ejected').length >= 2);
    assert.equal(g.panic(), true);
    assert.deepEqual(reg.panicReasons(), ['upstream_panic:api']);
    const before = ts.map((t) => t.hits);
    ts[0]!.mode = 'ok';
    ts[1]!.mode = 'ok';
    await run(g, 30);
    const got = ts.map((t, i) => t.hits - before[i]!);
    assert.deepEqual(got, [10, 10, 10], 'panic ignores health: every target gets traffic');
  });

  it('never ejects and never panics without a health block', async () => {
    const ts = await targets(2);
    for (const t of ts) t.mode = '500';
    const g = new UpstreamGroup(spec(ts), { loopWatch: watch });
    await run(g, 30);
    assert.deepEqual(g.view().targets.map((t) => t.state), ['healthy', 'healthy']);
    assert.equal(g.panic(), false);
  });

  it('brings an ejected target back in slow start with a growing weight', async () => {
    const ts = await targets(2);
    ts[0]!.mode = '500';
    const g = new UpstreamGroup(spec(ts, { balance: 'round_robin', health: health({ slow_start_ms: 3000, passive: { consecutive_failures: 1, base_ejection_ms: 100, max_ejection_ms: 100 } }) }), { loopWatch: watch });
    await run(g, 2);
    assert.equal(g.stateOf(ts[0]!.url), 'ejected');
    ts[0]!.mode = 'ok';
    await sleep(150);
    const v = g.view().targets[0]!;
    assert.equal(v.state, 'slow_start');
    assert.ok(v.weight! >= 0.1 && v.weight! < 0.5, `weight ${v.weight}`);
    const before = ts[0]!.hits;
    await run(g, 100);
    const share = (ts[0]!.hits - before) / 100;
    assert.ok(share < 0.45, `a ramping target got ${share} of the traffic`);
  });
});

describe('operator actions', () => {
  it('drain sends nothing new to a target while its requests in flight finish; undrain restores it', async () => {
    const ts = await targets(2);
    ts[0]!.mode = 'slow';
    ts[0]!.delayMs = 200;
    const g = new UpstreamGroup(spec(ts, { balance: 'round_robin' }), { loopWatch: watch });
    const live = exchange(g);
    await sleep(20);
    assert.equal(g.drain(ts[0]!.url), true);
    assert.equal(g.view().targets[0]!.state, 'draining');
    assert.equal(g.view().targets[0]!.in_flight, 1);
    await run(g, 10);
    assert.equal(ts[0]!.hits, 1);
    assert.equal((await live).outcome, 'ok', 'the request in flight ends normally');
    assert.equal(g.view().targets[0]!.in_flight, 0);
    g.maint(ts[0]!.url);
    assert.equal(g.stateOf(ts[0]!.url), 'maint');
    g.undrain(ts[0]!.url);
    ts[0]!.mode = 'ok';
    await run(g, 10);
    assert.equal(ts[0]!.hits, 6);
    assert.equal(g.drain('http://127.0.0.1:1'), false);
    assert.deepEqual(g.view().events.map((e) => e.kind), ['drain', 'maint', 'undrain']);
  });

  it('returns no target when every target is drained, or only the excluded one is left', async () => {
    const ts = await targets(2);
    const g = new UpstreamGroup(spec(ts), { loopWatch: watch });
    const a = g.pick()!;
    const b = g.pick(undefined, a)!;
    assert.notEqual(a.url, b.url, 'a retry goes to another target');
    g.release(a);
    g.release(b);
    g.drain(ts[0]!.url);
    const only = g.pick()!;
    assert.equal(only.url, ts[1]!.url);
    assert.equal(g.pick(undefined, only), undefined);
    g.release(only);
    g.drain(ts[1]!.url);
    assert.equal(g.pick(), undefined);
  });
});

describe('registry', () => {
  it('keeps ejections and drains across a reload with the same targets, and carries them over a changed list', async () => {
    const ts = await targets(3);
    ts[0]!.mode = '500';
    const reg = new UpstreamRegistry({ loopWatch: watch });
    const s = spec(ts.slice(0, 2), { balance: 'round_robin', health: health({ max_ejection_percent: 100 }) });
    reg.apply({ upstreams: { api: s } });
    await run(reg.get('api')!, 6);
    reg.get('api')!.drain(ts[1]!.url);
    reg.apply({ upstreams: { api: { ...s } } });
    assert.deepEqual(reg.get('api')!.view().targets.map((t) => t.state), ['ejected', 'draining']);
    reg.apply({ upstreams: { api: { ...s, targets: [ts[2]!.url, ts[1]!.url, ts[0]!.url] } } });
    assert.deepEqual(reg.get('api')!.view().targets.map((t) => t.state), ['healthy', 'draining', 'ejected']);
    reg.close();
  });

  it('shares one table with another thread through buffers()', () => {
    const reg = new UpstreamRegistry({ loopWatch: watch });
    const s: UpstreamSpec = { name: 'api', targets: ['http://127.0.0.1:1', 'http://127.0.0.1:2'], timeout_ms: 1000, balance: 'least_request' };
    reg.apply({ upstreams: { api: s } });
    const worker = new UpstreamRegistry({ loopWatch: watch });
    worker.apply({ upstreams: { api: s } }, reg.buffers());
    const t = worker.get('api')!.pick()!;
    reg.get('api')!.drain(t.url);
    assert.equal(worker.get('api')!.stateOf(t.url), 'draining');
    assert.equal(reg.get('api')!.view().targets[t.index]!.in_flight, 1);
  });
});
