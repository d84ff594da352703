import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Registry } from 'prom-client';
import type { UpstreamSpec } from '../policy/types.js';
import { ReleaseController } from '../release/release-controller.js';
import { LoopWatch } from './loop-watch.js';
import { registerOpsMetrics } from './ops-metrics.js';
import { UpstreamRegistry } from './upstream-registry.js';

describe('ops metrics', () => {
  it('exposes target states, ejections, panic, release share and decisions, and admin actions', async () => {
    const reg = new UpstreamRegistry({ loopWatch: new LoopWatch() });
    const spec: UpstreamSpec = {
      name: 'api',
      targets: ['http://127.0.0.1:1', 'http://127.0.0.1:2'],
      timeout_ms: 1000,
      balance: 'round_robin',
      health: { passive: { consecutive_failures: 1, base_ejection_ms: 10_000, max_ejection_ms: 10_000 }, max_ejection_percent: 50, panic_threshold_percent: 60, slow_start_ms: 0 },
    };
    reg.apply({ upstreams: { api: spec } });
    const g = reg.get('api')!;
    const t = g.pick()!;
    g.report(t, '5xx', 3);
    g.release(t);
    g.drain('http://127.0.0.1:2');
    const rc = new ReleaseController({ routes: [], releases: { r: { name: 'r', routes: [], stable: 'api', canary: 'api', tenant_groups: {}, steps: [{ percent: 5 }], step_interval_s: 60 } } });
    await rc.start();
    await rc.stop();
    const registry = new Registry();
    registerOpsMetrics(registry, { upstreams: () => reg.groups(), releases: () => rc, adminActions: () => ({ metricValues: () => [{ action: 'drain', result: 'ok', value: 2 }] }) });
    const text = await registry.metrics();
    assert.match(text, /ward_upstream_target_state\{upstream="api",target="http:\/\/127.0.0.1:1",state="ejected"\} 1/);
    assert.match(text, /ward_upstream_target_state\{upstream="api",target="http:\/\/127.0.0.1:2",state="draining"\} 1/);
    assert.match(text, /ward_upstream_target_state\{upstream="api",target="http:\/\/127.0.0.1:1",state="healthy"\} 0/);
    assert.match(text, /ward_upstream_ejections_total\{upstream="api",target="http:\/\/127.0.0.1:1",reason="consecutive_failures"\} 1/);
    assert.match(text, /ward_upstream_panic\{upstream="api"\} 1/);
    assert.match(text, /ward_release_share\{release="r"\} 0.05/);
    assert.match(text, /ward_release_decisions_total\{release="r",decision="start"\} 1/);
    assert.match(text, /ward_admin_actions_total\{action="drain",result="ok"\} 2/);
  });
});
