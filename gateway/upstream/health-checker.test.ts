import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import type { HealthSpec, UpstreamSpec } from '../policy/types.js';
import { HealthChecker } from './health-checker.js';
import { LoopWatch } from './loop-watch.js';
import { clockNow } from './target-table.js';
import { closeExchangeAgent, exchange, sleep, startChildTarget, startTarget, waitFor, type ChildTarget, type TargetServer } from './target-servers.js';
import { UpstreamRegistry } from './upstream-registry.js';

const servers: TargetServer[] = [];
const children: ChildTarget[] = [];
after(async () => {
  closeExchangeAgent();
  await Promise.all([...servers.map((s) => s.close()), ...children.map((c) => c.kill())]);
});

async function targets(n: number): Promise<TargetServer[]> {
  const out = await Promise.all(Array.from({ length: n }, () => startTarget()));
  servers.push(...out);
  return out;
}

function health(active: Partial<NonNullable<HealthSpec['active']>>, over: Partial<HealthSpec> = {}): HealthSpec {
  return {
    active: { path: '/healthz', interval_ms: 200, timeout_ms: 200, rise: 2, fall: 2, ...active },
    max_ejection_percent: 100,
    panic_threshold_percent: 0,
    slow_start_ms: 0,
    ...over,
  };
}

function upstream(name: string, urls: string[], h: HealthSpec, over: Partial<UpstreamSpec> = {}): UpstreamSpec {
  return { name, targets: urls, timeout_ms: 2000, balance: 'round_robin', health: h, ...over };
}

function busy(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end);
}

describe('active health checks', () => {
  it('marks a SIGKILLed target down within fall × interval + timeout, and back only after rise passes', async () => {
    const ts = await targets(2);
    const child = await startChildTarget();
    children.push(child);
    const watch = new LoopWatch().start();
    const reg = new UpstreamRegistry({ loopWatch: watch });
    reg.apply({ upstreams: { api: upstream('api', [ts[0]!.url, ts[1]!.url, child.url], health({ interval_ms: 200, timeout_ms: 200, fall: 2, rise: 3 })) } });
    const checker = new HealthChecker(reg, { loopWatch: watch }).start();
    try {
      const g = () => reg.get('api')!;
      assert.ok(await waitFor(() => ts[0]!.probes >= 2, 2000), 'probes run');
      const killedAt = clockNow();
      await child.kill();
      assert.ok(await waitFor(() => g().stateOf(child.url) === 'down', 2000));
      // From the down event's own time (this test's polling does not count), within fall ×
      // interval + timeout, plus 100 ms for timers on a busy machine.
      const tookDown = g().view().events.find((e) => e.kind === 'down')!.at - killedAt;
      assert.ok(tookDown <= 2 * 200 + 200 + 100, `down after ${Math.round(tookDown)} ms`);
      // No traffic goes to a down target.
      for (let i = 0; i < 10; i++) assert.notEqual((await exchange(g())).target, child.url);

      const revived = await startChildTarget(child.port);
      children.push(revived);
      const revivedAt = clockNow();
      assert.ok(await waitFor(() => g().stateOf(child.url) === 'healthy', 3000));
      const tookUp = g().view().events.find((e) => e.kind === 'up')!.at - revivedAt;
      // Three passing probes in a row: at least two intervals after the first one.
      assert.ok(tookUp >= 2 * 200 - 20 && tookUp <= 3 * 200 + 200 + 100, `up after ${Math.round(tookUp)} ms`);
      const ev = g().view().events.map((e) => e.kind);
      assert.deepEqual(ev, ['down', 'up']);
      assert.equal(checker.readinessReasons().length, 0);
    } finally {
      checker.stop();
      watch.stop();
    }
  });

  it('brings a passively ejected target back only after its ejection ended and a probe passed', async () => {
    const ts = await targets(2);
    const watch = new LoopWatch().start();
    const reg = new UpstreamRegistry({ loopWatch: watch });
    const h = health({ interval_ms: 100, timeout_ms: 100, fall: 2, rise: 1 }, { passive: { consecutive_failures: 2, base_ejection_ms: 150, max_ejection_ms: 150 } });
    reg.apply({ upstreams: { api: upstream('api', ts.map((t) => t.url), h) } });
    const checker = new HealthChecker(reg, { loopWatch: watch }).start();
    try {
      const g = reg.get('api')!;
      ts[0]!.mode = '500';
      ts[0]!.healthy = false; // probes fail once the ejection ends... but only one fall short of down
      await exchange(g);
      await exchange(g);
      await exchange(g);
      assert.equal(g.stateOf(ts[0]!.url), 'ejected');
      await sleep(250);
      // The ejection is over, but no probe passed since: still out (or down by now).
      assert.notEqual(g.stateOf(ts[0]!.url), 'healthy');
      ts[0]!.healthy = true;
      ts[0]!.mode = 'ok';
      assert.ok(await waitFor(() => g.stateOf(ts[0]!.url) === 'healthy', 1000));
    } finally {
      checker.stop();
      watch.stop();
    }
  });
});

describe('the false-detection guard', () => {
  it('voids probes and passive timeouts that overlap an event-loop stall: a frozen ward ejects nothing', async () => {
    const ts = await targets(3);
    for (const t of ts) {
      t.mode = 'slow';
      t.delayMs = 30;
    }
    const watch = new LoopWatch().start();
    const reg = new UpstreamRegistry({ loopWatch: watch });
    const h = health({ interval_ms: 100, timeout_ms: 150, fall: 1, rise: 1 }, { passive: { consecutive_failures: 1, base_ejection_ms: 5000, max_ejection_ms: 5000 } });
    reg.apply({ upstreams: { api: upstream('api', ts.map((t) => t.url), h, { timeout_ms: 150 }) } });
    const checker = new HealthChecker(reg, { loopWatch: watch }).start();
    try {
      const g = reg.get('api')!;
      await sleep(250);
      // Freeze the whole process while a probe round and six requests are in flight.
      let inFlight: Array<ReturnType<typeof exchange>> = [];
      ts[0]!.onProbe = () => {
        ts[0]!.onProbe = undefined;
        inFlight = Array.from({ length: 6 }, () => exchange(g));
        busy(1000);
      };
      assert.ok(await waitFor(() => inFlight.length > 0, 1000));
      const outcomes = await Promise.all(inFlight);
      assert.ok(outcomes.some((o) => o.outcome === 'timeout'), 'the stall made requests time out');
      await sleep(300);
      const v = g.view();
      assert.deepEqual(v.targets.map((t) => t.state), ['healthy', 'healthy', 'healthy']);
      assert.equal(v.targets.reduce((n, t) => n + t.ejections + t.downs, 0), 0);
      assert.ok(v.targets.reduce((n, t) => n + t.voided, 0) >= 1, 'passive timeouts were voided');
      assert.ok(checker.stats.voidedRounds >= 1, 'the probe round was voided');
    } finally {
      checker.stop();
      watch.stop();
    }
  });

  it('freezes when most targets of two upstreams fail in one sweep, and says health_detector_suspect', async () => {
    const ts = await targets(4);
    const watch = new LoopWatch().start();
    const reg = new UpstreamRegistry({ loopWatch: watch });
    const h = health({ interval_ms: 100, timeout_ms: 100, fall: 1, rise: 1 }, { passive: { consecutive_failures: 1, base_ejection_ms: 5000, max_ejection_ms: 5000 } });
    reg.apply({
      upstreams: {
        a: upstream('a', [ts[0]!.url, ts[1]!.url], h),
        b: upstream('b', [ts[2]!.url, ts[3]!.url], h),
      },
    });
    const checker = new HealthChecker(reg, { loopWatch: watch }).start();
    try {
      await sleep(250);
      for (const t of ts) t.healthy = false;
      assert.ok(await waitFor(() => checker.suspect, 1000));
      await sleep(300); // several failing sweeps
      assert.deepEqual(checker.readinessReasons(), ['health_detector_suspect']);
      for (const g of reg.groups()) assert.deepEqual(g.view().targets.map((t) => t.state), ['healthy', 'healthy'], `${g.name} froze on the last good set`);
      ts[0]!.mode = '500';
      await exchange(reg.get('a')!);
      await exchange(reg.get('a')!);
      assert.equal(reg.get('a')!.view().targets[0]!.ejections, 0, 'no passive ejection while frozen');
      ts[0]!.mode = 'ok';
      for (const t of ts) t.healthy = true;
      assert.ok(await waitFor(() => !checker.suspect, 1000));
      assert.deepEqual(checker.readinessReasons(), []);
      // A single upstream failing is not ward's network: it goes down as usual.
      ts[2]!.healthy = false;
      ts[3]!.healthy = false;
      assert.ok(await waitFor(() => reg.get('b')!.stateOf(ts[2]!.url) === 'down', 1000));
      assert.equal(checker.suspect, false);
    } finally {
      checker.stop();
      watch.stop();
    }
  });

  it('reports upstream_panic when too few targets are left', async () => {
    const ts = await targets(2);
    const watch = new LoopWatch().start();
    const reg = new UpstreamRegistry({ loopWatch: watch });
    reg.apply({ upstreams: { solo: upstream('solo', ts.map((t) => t.url), health({ interval_ms: 100, timeout_ms: 100, fall: 1 }, { panic_threshold_percent: 60 })) } });
    const checker = new HealthChecker(reg, { loopWatch: watch }).start();
    try {
      ts[0]!.healthy = false;
      assert.ok(await waitFor(() => checker.readinessReasons().includes('upstream_panic:solo'), 1000));
      assert.equal(checker.suspect, false, 'one upstream alone never makes the detector suspect');
    } finally {
      checker.stop();
      watch.stop();
    }
  });
});
