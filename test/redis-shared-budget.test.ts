// Several `ward serve` processes on one real redis-server share each tenant's buckets and pools:
// instance A runs two listener threads (--workers 2), B and C one each. C is SIGKILLed while it
// holds leases, which must free up within the 30 s lease lifetime, while leases of live
// instances stay. The tests run concurrently: the lease expiry takes its real 30 s meanwhile.

import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Agent } from 'node:http';
import { policyDir, basePolicy, startWard, type WardProcess, type PolicyFiles } from './support/ward-process.js';
import { request, bearer, sendRaw, type Reply } from './support/http.js';
import { signJwt, standardClaims } from './support/jwt.js';
import { startRedis, type RedisServer } from './support/redis-server.js';
import { eventually, metric, readyz, startHoldingUpstream, type HoldingUpstream } from './support/load.js';
import { assertGlobalBucket, assertGlobalPool } from './support/shared-limits.js';

const BUCKET = { rate: 50, burst: 100 };
const POOL = 6;

let redis: RedisServer;
let up: HoldingUpstream;
let pol: PolicyFiles;
let a: WardProcess;
let b: WardProcess;
let c: WardProcess;
const tok = (tenant: string) => bearer(signJwt(pol.key, standardClaims(tenant)));
const inUse = (w: WardProcess, tenant: string) => metric(w.admin, 'ward_concurrency_in_use', `tenant="${tenant}",pool="calls"`);
/** Requests sent to A on limited routes: each is exactly one admit script call in A's threads. */
let limitedAtA = 0;

before(async () => {
  [redis, up] = await Promise.all([startRedis(), startHoldingUpstream()]);
  pol = policyDir();
  pol.write(
    basePolicy(up.url, {
      // A long command timeout: a loaded test machine must not trip the insurance limits here.
      store: { kind: 'redis', url: redis.url, prefix: 'ward:', command_timeout_ms: 2000 },
      upstreams: { api: { targets: [up.url], timeout_ms: 60_000 } },
      routes: [
        { name: 'calls', prefix: '/v1/calls', upstream: 'api', concurrency: 'calls' },
        { name: 'api', prefix: '/v1/', upstream: 'api', bucket: 'api' },
      ],
      tenants: { '*': { buckets: { api: { rate: BUCKET.rate, per_s: 1, burst: BUCKET.burst } }, concurrency: { calls: POOL } } },
    }),
  );
  [a, b, c] = await Promise.all([startWard(pol.dir, { workers: 2 }), startWard(pol.dir), startWard(pol.dir)]);
  // On the shared budget (readiness covers every thread's store), not on the insurance limits.
  for (const w of [a, b, c]) {
    await eventually(`${w.admin} ok`, async () => ((await readyz(w.admin)).body as { status: string }).status === 'ok' || undefined, 10_000, 50);
  }
});

after(async () => {
  up.release();
  await Promise.all([a?.stop(), b?.stop(), c?.stop('SIGKILL')]);
  await Promise.all([redis?.stop(), up?.close()]);
  pol?.remove();
});

describe('one budget across ward processes on one Redis', { concurrency: true }, () => {
  test('a SIGKILLed instance frees its leases within 30 s; a live instance keeps its own', async (t) => {
    const h = tok('crash');
    const hold = (w: WardProcess) => request(`${w.base}/v1/calls?hold=1`, { headers: h, agent: new Agent({ keepAlive: false }) });
    // B holds one lease, C the other five: the pool is full.
    const atB = hold(b);
    await eventually('B holds its call', async () => (up.held('crash') === 1 ? true : undefined), 5000, 20);
    const atC = Array.from({ length: POOL - 1 }, () => hold(c).catch((e: Error) => e));
    await eventually('C holds five calls', async () => (up.held('crash') === POOL ? true : undefined), 5000, 20);
    limitedAtA++;
    const full = await request(`${a.base}/v1/calls`, { headers: h });
    assert.equal(full.status, 429);
    assert.equal(full.json().error, 'concurrency_limited');
    assert.equal(await inUse(a, 'crash'), POOL);

    await c.stop('SIGKILL');
    // C is dead by now, so its leases expire at most 30 s from here (from their last renewal).
    const killedAt = Date.now();
    // C's clients see their connections die; nothing releases C's leases but their expiry.
    for (const r of await Promise.all(atC)) assert.ok(r instanceof Error, 'a call through the killed instance failed');
    // Poll A's view of the pool. A poll that started more than 30 s after the kill and still saw
    // C's leases would prove them alive past 30 s; the poll that sees them gone bounds it above.
    let lastBusyStart = killedAt;
    const freedSeenAt = await eventually('the killed instance\'s leases expire', async () => {
      const started = Date.now();
      const n = await inUse(a, 'crash');
      if (n === 1) return Date.now();
      assert.equal(n, POOL);
      lastBusyStart = started;
      return undefined;
    }, 40_000, 200);
    const still = (lastBusyStart - killedAt) / 1000;
    t.diagnostic(`leases seen held ${still.toFixed(1)} s after the kill, gone at ${((freedSeenAt - killedAt) / 1000).toFixed(1)} s`);
    assert.ok(still <= 30, `the killed instance's leases were still held ${still.toFixed(1)} s after it died`);

    // B's lease is older than C's and still counted (renewed by B); the pool admits again.
    assert.equal(await inUse(b, 'crash'), 1);
    const again = await Promise.all(Array.from({ length: POOL - 1 }, () => {
      limitedAtA++;
      return request(`${a.base}/v1/calls`, { headers: h });
    }));
    assert.deepEqual(again.map((r) => r.status), Array(POOL - 1).fill(200));
    up.release('crash');
    assert.equal((await atB).status, 200);
  });

  test('the bucket holds across instances (one of them with --workers 2): burst + rate·t, within 5 %', async (t) => {
    const { admitted, answered, detail } = await assertGlobalBucket([a.base, b.base], '/v1/x', tok('bucket'), BUCKET, 2500);
    t.diagnostic(detail);
    assert.ok(admitted.every((n) => n > 0), `both instances admitted some: ${admitted}`);
    limitedAtA += answered[0]!;
  });

  test('a client gone while its admission is at Redis frees the lease it was granted', async () => {
    // Every admission here waits for one Redis round trip. uWS closes a connection whose next request
    // arrives while a response is pending, so a pipelined pair aborts the first request before
    // Redis has answered: the lease Redis then grants must be handed back, not kept forever.
    const token = signJwt(pol.key, standardClaims('gone'));
    assert.equal((await request(`${b.base}/v1/calls`, { headers: bearer(token) })).status, 200); // token verified and cached
    const req = `GET /v1/calls HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ${token}\r\n\r\n`;
    for (let i = 0; i < POOL + 2; i++) await sendRaw(b.base, req + req);
    await eventually('the leases are back', async () => ((await inUse(b, 'gone')) === 0 ? true : undefined), 5000, 50);
    // The whole pool is there for the tenant's next calls.
    const held = Array.from({ length: POOL }, () => request(`${b.base}/v1/calls?hold=1`, { headers: bearer(token), agent: new Agent({ keepAlive: false }) }));
    await eventually(`${POOL} calls held`, async () => (up.held('gone') === POOL ? true : undefined), 5000, 20);
    up.release('gone');
    assert.deepEqual((await Promise.all(held)).map((r) => r.status), Array(POOL).fill(200));
  });

  test(`exactly ${POOL} of ${2 * POOL} concurrent calls admitted across instances`, async () => {
    limitedAtA += POOL;
    await assertGlobalPool([a.base, b.base], [a.admin, b.admin], up, 'pool', tok('pool'), POOL, POOL);
  });
});

test('A\'s store metrics add up over its two threads: one admit script call per limited request', async () => {
  // Every request A answered on a limited route made one admit script call, in one of its threads.
  assert.equal(await metric(a.admin, 'ward_store_script_seconds_count'), limitedAtA);
  const sum = await metric(a.admin, 'ward_store_script_seconds_sum');
  assert.ok(sum !== undefined && sum > 0 && sum < limitedAtA, `script seconds ${sum}`);
  assert.equal(await metric(a.admin, 'ward_store_fail_open_total'), 0);
  assert.equal(await metric(a.admin, 'ward_store_outages_total'), 0);
  assert.equal(await metric(a.admin, 'ward_store_command_errors_total'), 0);
  assert.equal(await metric(a.admin, 'ward_store_state', 'kind="redis",state="ok"'), 1);
});

test('readiness is ok on every instance while Redis answers', async () => {
  for (const w of [a, b]) {
    const r: Reply = await request(`${w.admin}/readyz`);
    assert.equal(r.status, 200);
    assert.deepEqual(r.json(), { status: 'ok' });
  }
});
