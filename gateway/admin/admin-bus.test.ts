// Admin actions across instances, over a real redis-server: each "instance" has its own upstream
// tables (as separate processes would), its own AdminActions and its own RedisAdminBus.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { startRedis, type RedisServer } from '../../test/support/redis-server.js';
import type { UpstreamSpec } from '../policy/types.js';
import { LoopWatch } from '../upstream/loop-watch.js';
import { waitFor } from '../upstream/target-servers.js';
import { UpstreamRegistry } from '../upstream/upstream-registry.js';
import { AdminActions } from './admin-actions.js';
import { RedisAdminBus } from './admin-bus.js';

const T1 = 'http://127.0.0.1:9001';
const T2 = 'http://127.0.0.1:9002';
const spec: UpstreamSpec = { name: 'api', targets: [T1, T2], timeout_ms: 1000, balance: 'round_robin' };
const watch = new LoopWatch();
let redis: RedisServer;
const clients: Redis[] = [];
const stops: Array<() => Promise<void>> = [];

async function instance(syncMs = 500): Promise<{ reg: UpstreamRegistry; actions: AdminActions; bus: RedisAdminBus }> {
  // Configured like the limit store's client: no offline queue, so nothing waits on a dead Redis.
  const client = new Redis(redis.url, { enableOfflineQueue: false, maxRetriesPerRequest: 0, commandTimeout: 500 });
  await new Promise((r) => client.once('ready', r));
  clients.push(client);
  const reg = new UpstreamRegistry({ loopWatch: watch });
  reg.apply({ upstreams: { api: spec } });
  const bus = new RedisAdminBus(client, 'test:');
  const actions = new AdminActions({ upstreams: () => reg.groups(), bus, syncMs });
  await actions.start();
  await bus.ready();
  stops.push(async () => {
    actions.stop();
    await bus.close();
  });
  return { reg, actions, bus };
}

before(async () => {
  redis = await startRedis();
});
after(async () => {
  for (const s of stops) await s();
  for (const c of clients) c.disconnect();
  await redis.stop();
});

describe('admin actions across instances (Redis)', () => {
  it('a drain on one instance reaches another within 2 s, and an instance started later applies it too', async () => {
    // No overrides poll within the test's time: only the published message can carry it.
    const a = await instance(60_000);
    const b = await instance(60_000);
    const t0 = Date.now();
    const r = await a.actions.target({ name: 'olga', role: 'operator' }, 'api', T1, 'drain');
    assert.equal(r.status, 200);
    assert.ok(await waitFor(() => b.reg.get('api')!.stateOf(T1) === 'draining', 2000));
    const took = Date.now() - t0;
    assert.ok(took < 2000, `reached the other instance after ${took} ms`);
    const c = await instance(60_000);
    assert.equal(c.reg.get('api')!.stateOf(T1), 'draining', 'a new instance applies the overrides at start');
    await b.actions.target({ name: 'olga', role: 'operator' }, 'api', T1, 'undrain');
    assert.ok(await waitFor(() => a.reg.get('api')!.stateOf(T1) === 'healthy' && c.reg.get('api')!.stateOf(T1) === 'healthy', 2000));
    assert.equal(b.reg.get('api')!.stateOf(T2), 'healthy');
    const audit = await c.actions.audit(10);
    assert.deepEqual(audit.map((e) => [e.action, e.who]), [['undrain', 'olga'], ['drain', 'olga']]);
    assert.equal(audit[1]!.instance, a.bus.instanceId);
  });

  it('converges through the overrides poll even when the message was missed', async () => {
    const a = await instance();
    const b = await instance();
    // Written straight into the overrides hash: no message is published.
    await a.bus.setOverride('api', T2, 'maint');
    assert.ok(await waitFor(() => b.reg.get('api')!.stateOf(T2) === 'maint', 2000));
    await a.bus.setOverride('api', T2, undefined);
    assert.ok(await waitFor(() => b.reg.get('api')!.stateOf(T2) === 'healthy', 2000));
  });

  it('still drains locally when Redis is unreachable, and says the action was not shared', async () => {
    const a = await instance();
    await redis.kill();
    try {
      const r = await a.actions.target({ name: 'olga', role: 'operator' }, 'api', T2, 'drain');
      assert.equal(r.status, 200);
      assert.equal(r.body.shared, false);
      assert.equal(a.reg.get('api')!.stateOf(T2), 'draining');
      assert.ok(a.actions.metricValues().some((m) => m.action === 'drain' && m.result === 'local_only'));
    } finally {
      await redis.restart();
    }
  });
});
