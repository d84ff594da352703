// Redis dies under load and comes back: two ward processes keep answering (200 or 429, never a
// 5xx), each enforces its outage_share of every limit on its own, /readyz says degraded, and
// both return to the shared budget by themselves once Redis restarts.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Agent } from 'node:http';
import { policyDir, basePolicy, startWard, type WardProcess, type PolicyFiles } from './support/ward-process.js';
import { request, bearer, type Reply } from './support/http.js';
import { signJwt, standardClaims } from './support/jwt.js';
import { startRedis, type RedisServer } from './support/redis-server.js';
import { eventually, hammer, metric, readyz, sleep, startHoldingUpstream, startLoad, type HoldingUpstream } from './support/load.js';

const SHARE = 0.5;
const API = { rate: 20, burst: 20 };
/** burst 3: shared, two instances admit 3; on insurance, max(1, floor(0.5·3)) = 1 each, 2 in all. */
const TINY = { rate: 1, per_s: 60, burst: 3 };
const POOL = 4;

let redis: RedisServer;
let up: HoldingUpstream;
let pol: PolicyFiles;
let a: WardProcess;
let b: WardProcess;
const tok = (tenant: string) => bearer(signJwt(pol.key, standardClaims(tenant)));

before(async () => {
  [redis, up] = await Promise.all([startRedis(), startHoldingUpstream()]);
  pol = policyDir();
  pol.write(
    basePolicy(up.url, {
      store: { kind: 'redis', url: redis.url, prefix: 'ward:', outage_share: SHARE, command_timeout_ms: 2000 },
      routes: [
        { name: 'calls', prefix: '/v1/calls', upstream: 'api', concurrency: 'calls' },
        { name: 'tiny', prefix: '/v1/tiny', upstream: 'api', bucket: 'tiny' },
        { name: 'api', prefix: '/v1/', upstream: 'api', bucket: 'api' },
      ],
      tenants: { '*': { buckets: { api: { ...API, per_s: 1 }, tiny: TINY }, concurrency: { calls: POOL } } },
    }),
  );
  [a, b] = await Promise.all([startWard(pol.dir), startWard(pol.dir)]);
  await Promise.all([a, b].map(sharing));
});

/** Waits until the instance runs on the shared budget (its readiness covers every thread's store). */
function sharing(w: WardProcess): Promise<unknown> {
  return eventually(`${w.admin} ok`, async () => ((await readyz(w.admin)).body as { status: string }).status === 'ok' || undefined, 10_000, 50);
}

after(async () => {
  up.release();
  await Promise.all([a?.stop(), b?.stop()]);
  await Promise.all([redis?.stop(), up?.close()]);
  pol?.remove();
});

/** 8 requests of one tenant on the tiny bucket, alternating instances: how many each admitted. */
async function tinyRound(tenant: string): Promise<[number, number]> {
  const h = tok(tenant);
  const admitted: [number, number] = [0, 0];
  for (let i = 0; i < 8; i++) {
    const r = await request(`${[a, b][i % 2]!.base}/v1/tiny`, { headers: h });
    assert.ok(r.status === 200 || r.status === 429, `status ${r.status}`);
    if (r.status === 200) admitted[i % 2]!++;
  }
  return admitted;
}

test('with Redis up, the instances share one bucket', async () => {
  const [x, y] = await tinyRound('before');
  assert.equal(x + y, TINY.burst);
});

test('Redis killed under load: no 5xx, limits at outage_share, degraded, then back to ok by itself', async (t) => {
  const background = startLoad([a.base, b.base], '/v1/x', tok('bg'), 4);
  await sleep(500);
  await redis.kill();
  const killedAt = Date.now();

  for (const w of [a, b]) {
    const r = await eventually(`${w.admin} degraded`, async () => {
      const r = await readyz(w.admin);
      return (r.body as { status: string }).status === 'degraded' ? r : undefined;
    }, 5000, 50);
    assert.equal(r.status, 200, 'a store outage degrades, it does not take the instance out');
    assert.deepEqual(r.body, { status: 'degraded', reasons: ['store_unreachable'] });
  }
  t.diagnostic(`both instances degraded ${Date.now() - killedAt} ms after the kill`);

  // Bursts: each instance grants max(1, floor(share·burst)) on its own.
  assert.deepEqual(await tinyRound('during-tiny'), [1, 1]);

  // Rate: each instance grants its share of burst and rate: at most floor(s·b) + s·r·t.
  const { perTarget, seconds, sendSeconds } = await hammer([a.base, b.base], '/v1/x', tok('during-rate'), 1500, 4);
  const allowed = Math.floor(SHARE * API.burst) + SHARE * API.rate * seconds;
  const floor = Math.floor(SHARE * API.burst) + SHARE * API.rate * sendSeconds;
  for (const r of perTarget) {
    const detail = `${JSON.stringify([...r.statuses])} ${r.errors.slice(0, 3)} in ${seconds.toFixed(2)} s, share allows ${allowed.toFixed(1)}`;
    assert.equal(r.errors.length, 0, detail);
    assert.equal(r.ok() + r.count(429), r.total(), `only 200/429: ${detail}`);
    assert.ok(r.ok() <= allowed + 1, `over the instance's share: ${detail}`);
    assert.ok(r.ok() >= floor * 0.85, `well under the instance's share: ${detail}`);
  }

  // Pools: each instance holds at most max(1, floor(s·L)) leases on its own.
  const h = tok('during-pool');
  const calls: Promise<Reply>[] = [];
  for (const w of [a, b]) for (let i = 0; i < POOL; i++) calls.push(request(`${w.base}/v1/calls?hold=1`, { headers: h, agent: new Agent({ keepAlive: false }) }));
  const refused: Reply[] = [];
  for (const c of calls) void c.then((r) => r.status !== 200 && refused.push(r));
  await eventually('over-share calls refused', async () => (refused.length >= POOL ? true : undefined), 5000, 20);
  await sleep(200);
  assert.equal(up.held('during-pool'), 2 * Math.max(1, Math.floor(SHARE * POOL)));
  assert.deepEqual(refused.map((r) => [r.status, r.json().error]), Array(POOL).fill([429, 'concurrency_limited']));
  assert.equal(await metric(a.admin, 'ward_concurrency_in_use', 'tenant="during-pool",pool="calls"'), Math.floor(SHARE * POOL));
  up.release('during-pool');
  assert.deepEqual((await Promise.all(calls)).map((r) => r.status).sort(), [...Array(POOL).fill(200), ...Array(POOL).fill(429)]);

  await redis.restart();
  const restartedAt = Date.now();
  for (const w of [a, b]) {
    await sharing(w);
    assert.deepEqual(await readyz(w.admin), { status: 200, body: { status: 'ok' } });
  }
  t.diagnostic(`both instances back to ok ${Date.now() - restartedAt} ms after Redis restarted`);

  const { perTarget: bg } = await background.stop();
  for (const r of bg) {
    const detail = JSON.stringify([...r.statuses]) + ` errors: ${r.errors.slice(0, 5)}`;
    assert.equal(r.errors.length, 0, detail);
    assert.equal(r.ok() + r.count(429), r.total(), `every answer 200 or 429: ${detail}`);
    assert.ok(r.ok() > 0 && r.count(429) > 0, detail);
  }

  assert.ok((await metric(a.admin, 'ward_store_outages_total'))! >= 1);
  assert.ok((await metric(a.admin, 'ward_store_fail_open_total'))! > 0);
  assert.equal(await metric(a.admin, 'ward_store_state', 'kind="redis",state="ok"'), 1);
});

test('after the restart, the instances share one bucket again', async () => {
  const [x, y] = await tinyRound('after');
  assert.equal(x + y, TINY.burst);
});
