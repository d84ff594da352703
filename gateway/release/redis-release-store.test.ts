// Release state shared by two instances over a real redis-server.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { startRedis, type RedisServer } from '../../test/support/redis-server.js';
import type { Policy, RouteSpec } from '../policy/types.js';
import { ReleaseController } from './release-controller.js';
import { RedisReleaseStateStore } from './redis-release-store.js';

const route: RouteSpec = { name: 'api', prefix: '/v1/', websocket: false, public: false, upstream: 'api', enforce: true, max_message_bytes: 0, idle_timeout_s: 0, sip: false, max_call_s: 0 };
const policy: Pick<Policy, 'routes' | 'releases'> = {
  routes: [route],
  releases: { r1: { name: 'r1', routes: ['api'], stable: 'api', canary: 'v2', tenant_groups: {}, steps: [{ percent: 10 }, { percent: 50 }], step_interval_s: 60 } },
};
let redis: RedisServer;
const clients: Redis[] = [];

before(async () => {
  redis = await startRedis();
});
after(async () => {
  for (const c of clients) c.disconnect();
  await redis.stop();
});

function store(): RedisReleaseStateStore {
  const c = new Redis(redis.url, { maxRetriesPerRequest: 1 });
  clients.push(c);
  return new RedisReleaseStateStore(c, 'test:');
}

describe('RedisReleaseStateStore', () => {
  it('shares steps and actions between instances, one winner per step, and survives a restart', async () => {
    let t = 1_700_000_000_000;
    const now = (): number => t;
    const a = new ReleaseController(policy, { now, store: store() });
    const b = new ReleaseController(policy, { now, store: store() });
    await a.start();
    await b.start();
    t += 60_000;
    await Promise.all([a.tick(), b.tick()]);
    await Promise.all([a.tick(), b.tick()]);
    const adv = (c: ReleaseController) => c.metricValues().decisions.r1!.advance ?? 0;
    assert.equal(adv(a) + adv(b), 1, 'exactly one instance took the step');
    assert.equal(a.view()[0]!.step, 1);
    assert.equal(b.view()[0]!.step, 1);
    assert.equal((await a.action('r1', 'pause', 'olga')).ok, true);
    await b.tick();
    assert.equal(b.view()[0]!.status, 'paused');
    await a.stop();
    await b.stop();
    const c = new ReleaseController(policy, { now, store: store() });
    await c.start();
    assert.equal(c.view()[0]!.status, 'paused', 'a restarted instance reads the state back');
    assert.equal(c.view()[0]!.by, 'olga');
    await c.stop();
  });

  it('keeps routing on the last known state while Redis is down, and refuses actions with store_unavailable', async () => {
    const s = store();
    const errors: unknown[] = [];
    const rc = new ReleaseController({ ...policy, releases: { r2: { ...policy.releases.r1!, name: 'r2' } } }, { store: s, onError: (e) => errors.push(e) });
    await rc.start();
    const before = rc.router.resolve('api', 'tenant-1');
    await redis.kill();
    await rc.tick();
    assert.ok(errors.length >= 1);
    assert.equal(rc.router.resolve('api', 'tenant-1'), before);
    assert.deepEqual(await rc.action('r2', 'pause', 'olga'), { ok: false, error: 'store_unavailable' });
    await rc.stop();
    await redis.restart();
  });
});
