// Upstream health through a real `ward serve`: passive ejection and its doubling, a 4xx-only target
// never ejected, max_ejection_percent when every target fails, active checks (down within
// fall × interval + timeout, back only after rise passes), and panic spreading traffic with
// upstream_panic in /readyz. Targets answer with their own name, so each test sees who served what.

import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { policyDir, basePolicy, startWard, type PolicyFiles, type WardProcess } from './support/ward-process.js';
import { request, bearer } from './support/http.js';
import { signJwt, standardClaims } from './support/jwt.js';
import { consoleTokens, OPERATOR_TOKEN, startTargets, states, until, upstreamView, type Target } from './support/targets.js';

interface Setup {
  p: PolicyFiles;
  w: WardProcess;
  targets: Target[];
  token: string;
}
const running: Setup[] = [];

async function setup(names: string[], upstream: Record<string, unknown>): Promise<Setup> {
  const targets = await startTargets(names);
  const p = policyDir();
  const admin = consoleTokens(p);
  p.write(basePolicy('http://127.0.0.1:1', { admin, upstreams: { api: { targets: targets.map((t) => t.url), timeout_ms: 2000, ...upstream } } }));
  const w = await startWard(p.dir);
  const s = { p, w, targets, token: signJwt(p.key, standardClaims('acme')) };
  running.push(s);
  return s;
}

async function teardown(s: Setup): Promise<void> {
  await s.w.stop();
  await Promise.all(s.targets.map((t) => t.close()));
  s.p.remove();
  running.splice(running.indexOf(s), 1);
}

after(async () => {
  for (const s of [...running]) await teardown(s);
});

/** One GET through ward; the name of the target that answered (or the status when ward answered). */
async function get(s: Setup): Promise<{ status: number; target?: string }> {
  const r = await request(s.w.base + '/v1/work', { headers: bearer(s.token) });
  let target: string | undefined;
  try {
    target = r.json().target;
  } catch {
    // ward's own answer
  }
  return { status: r.status, ...(target !== undefined ? { target } : {}) };
}

async function served(s: Setup, n: number): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (let i = 0; i < n; i++) {
    const r = await get(s);
    const k = r.target ?? `ward:${r.status}`;
    out[k] = (out[k] ?? 0) + 1;
  }
  return out;
}

function metric(text: string, name: string, labels: Record<string, string>): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name + '{')) continue;
    if (Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}

/** Epoch-based monotonic ms, as ward stamps its events. */
const clock = (): number => performance.timeOrigin + performance.now();

async function event(s: Setup, t: Target, kind: string): Promise<{ at: number }> {
  const e = (await upstreamView(s.w.admin, OPERATOR_TOKEN, 'api')).events.find((x) => x.target === t.url && x.kind === kind);
  assert.ok(e !== undefined, `no ${kind} event for ${t.name}`);
  return e;
}

describe('passive outlier detection', () => {
  it('ejects a target after consecutive 5xx, sends it nothing while ejected, and doubles the next ejection', async () => {
    const s = await setup(['a', 'b'], {
      balance: 'round_robin',
      health: { active: false, passive: { consecutive_failures: 3, base_ejection_ms: 500, max_ejection_ms: 10000 }, max_ejection_percent: 50 },
    });
    const [a, b] = s.targets as [Target, Target];
    a.mode = '500';
    // Round robin: a gets every other request; its third 500 in a row ejects it.
    await until('a to be ejected', async () => {
      await get(s);
      return (await states(s.w.admin, OPERATOR_TOKEN, 'api'))[a.url] === 'ejected';
    });
    const aSeen = a.seen.length;
    const while1 = await served(s, 10);
    assert.deepEqual(while1, { b: 10 }, 'an ejected target gets no requests');
    assert.equal(a.seen.length, aSeen);

    // Back after base_ejection_ms (no active checks here), still failing: ejected again, for twice as long.
    await until('a to come back', async () => (await states(s.w.admin, OPERATOR_TOKEN, 'api'))[a.url] === 'healthy', 2000);
    await until('a to be ejected again', async () => {
      await get(s);
      return (await states(s.w.admin, OPERATOR_TOKEN, 'api'))[a.url] === 'ejected';
    });
    const v = await upstreamView(s.w.admin, OPERATOR_TOKEN, 'api');
    const ejections = v.events.filter((e) => e.kind === 'ejected' && e.target === a.url);
    assert.equal(ejections.length, 2);
    const [first, second] = ejections.map((e) => e.until! - e.at) as [number, number];
    assert.ok(first >= 500 && first <= 550, `first ejection lasts base_ejection_ms (+≤10 % jitter): ${first}`);
    assert.ok(second >= 1000 && second <= 1100, `second ejection lasts twice as long: ${second}`);
    assert.equal(ejections[0]!.reason, '5xx');
    assert.equal(v.targets.find((t) => t.url === a.url)!.ejections, 2);
    assert.equal(v.targets.find((t) => t.url === b.url)!.ejections, 0);
    const m = (await request(s.w.admin + '/metrics')).body;
    assert.equal(metric(m, 'ward_upstream_ejections_total', { upstream: 'api', target: a.url, reason: 'consecutive_failures' }), 2);
    assert.equal(metric(m, 'ward_upstream_target_state', { upstream: 'api', target: a.url, state: 'ejected' }), 1);
    assert.equal(metric(m, 'ward_upstream_target_state', { upstream: 'api', target: b.url, state: 'healthy' }), 1);
    await teardown(s);
  });

  it('never ejects a target that answers only 4xx', async () => {
    const s = await setup(['a', 'b'], {
      balance: 'round_robin',
      health: { active: false, passive: { consecutive_failures: 3, base_ejection_ms: 5000, max_ejection_ms: 10000 } },
    });
    const [a] = s.targets as [Target, Target];
    a.mode = '404';
    const got = await served(s, 40);
    assert.equal(got.a, 20, 'the 4xx target keeps getting its share');
    assert.equal(got.b, 20);
    const v = await upstreamView(s.w.admin, OPERATOR_TOKEN, 'api');
    assert.deepEqual(v.targets.map((t) => [t.state, t.ejections]), [['healthy', 0], ['healthy', 0]]);
    await teardown(s);
  });

  it('ejects at most max_ejection_percent of the targets when every target fails', async () => {
    const s = await setup(['a', 'b', 'c', 'd'], {
      balance: 'round_robin',
      health: { active: false, passive: { consecutive_failures: 2, base_ejection_ms: 10000, max_ejection_ms: 20000 }, max_ejection_percent: 50, panic_threshold_percent: 0 },
    });
    for (const t of s.targets) t.mode = '500';
    const got = await served(s, 60);
    const v = await upstreamView(s.w.admin, OPERATOR_TOKEN, 'api');
    const ejected = v.targets.filter((t) => t.state === 'ejected').length;
    assert.equal(ejected, 2, `50 % of 4 targets: ${JSON.stringify(v.targets.map((t) => t.state))}`);
    assert.equal(got['ward:500'] ?? 0, 0, 'the answers are the targets’ own 500s');
    // The two left in keep taking traffic.
    const left = s.targets.filter((t) => v.targets.find((x) => x.url === t.url)!.state === 'healthy');
    const before = left.map((t) => t.seen.length);
    await served(s, 10);
    assert.deepEqual(left.map((t, i) => t.seen.length - before[i]!), [5, 5]);
    await teardown(s);
  });
});

describe('active health checks', () => {
  it('marks a killed target down within fall × interval + timeout, and back only after rise passing probes', async () => {
    const interval = 200;
    const timeout = 100;
    const fall = 3;
    const rise = 3;
    const s = await setup(['a', 'b', 'c'], {
      balance: 'round_robin',
      health: { active: { path: '/healthz', interval_ms: interval, timeout_ms: timeout, rise, fall }, passive: false },
    });
    const c = s.targets[2]!;
    await until('a first probe of c', () => c.probes > 0);
    // Times are read from ward's own event log (epoch-based, like clock() here), so this test's
    // polling does not count; 100 ms of slack for timers on a busy machine.
    const killedAt = clock();
    await c.close();
    await until('c to be down', async () => (await states(s.w.admin, OPERATOR_TOKEN, 'api'))[c.url] === 'down', 3000);
    const downIn = (await event(s, c, 'down')).at - killedAt;
    assert.ok(downIn <= fall * interval + timeout + 100, `down after ${Math.round(downIn)} ms`);
    const got = await served(s, 20);
    assert.deepEqual(got, { a: 10, b: 10 }, 'a down target gets no requests');

    const restartedAt = clock();
    await c.restart();
    await until('c to be back', async () => (await states(s.w.admin, OPERATOR_TOKEN, 'api'))[c.url] === 'healthy', 3000);
    const upIn = (await event(s, c, 'up')).at - restartedAt;
    assert.ok(upIn >= (rise - 1) * interval - 50, `back after ${Math.round(upIn)} ms: not before ${rise} passing probes`);
    assert.ok(upIn <= rise * interval + timeout + 100, `back after ${Math.round(upIn)} ms`);
    const again = await served(s, 30);
    assert.deepEqual(again, { a: 10, b: 10, c: 10 });
    const v = await upstreamView(s.w.admin, OPERATOR_TOKEN, 'api');
    assert.deepEqual(v.events.filter((e) => e.target === c.url).map((e) => e.kind), ['down', 'up']);
    await teardown(s);
  });

  it('in panic (too few healthy targets) spreads traffic over every target and says upstream_panic in /readyz', async () => {
    const s = await setup(['a', 'b', 'c'], {
      balance: 'round_robin',
      health: { active: { interval_ms: 100, timeout_ms: 50, rise: 1, fall: 1 }, passive: false, panic_threshold_percent: 50 },
    });
    const [, b, c] = s.targets as [Target, Target, Target];
    b.healthy = false;
    await until('b to be down', async () => (await states(s.w.admin, OPERATOR_TOKEN, 'api'))[b.url] === 'down');
    assert.deepEqual(await served(s, 20), { a: 10, c: 10 }, 'one of three down: 67 % healthy, no panic');
    assert.deepEqual((await request(s.w.admin + '/readyz')).json(), { status: 'ok' });

    c.healthy = false;
    await until('c to be down', async () => (await states(s.w.admin, OPERATOR_TOKEN, 'api'))[c.url] === 'down');
    assert.deepEqual(await served(s, 30), { a: 10, b: 10, c: 10 }, 'below the threshold, health is ignored');
    const ready = await request(s.w.admin + '/readyz');
    assert.equal(ready.status, 200, 'panic degrades, it does not take ward out of rotation');
    assert.deepEqual(ready.json(), { status: 'degraded', reasons: ['upstream_panic:api'] });
    const v = await upstreamView(s.w.admin, OPERATOR_TOKEN, 'api');
    assert.equal(v.panic, true);
    assert.equal(metric((await request(s.w.admin + '/metrics')).body, 'ward_upstream_panic', { upstream: 'api' }), 1);

    b.healthy = true;
    c.healthy = true;
    await until('readiness to recover', async () => (await request(s.w.admin + '/readyz')).json().status === 'ok');
    await teardown(s);
  });

  it('an upstream without a health block never ejects and never panics', async () => {
    const s = await setup(['a', 'b'], { balance: 'round_robin' });
    const [a] = s.targets as [Target, Target];
    a.mode = '500';
    const got = await served(s, 40);
    assert.deepEqual(got, { a: 20, b: 20 });
    const v = await upstreamView(s.w.admin, OPERATOR_TOKEN, 'api');
    assert.deepEqual(v.targets.map((t) => t.state), ['healthy', 'healthy']);
    assert.equal(v.panic, false);
    assert.deepEqual((await request(s.w.admin + '/readyz')).json(), { status: 'ok' });
    await teardown(s);
  });
});
