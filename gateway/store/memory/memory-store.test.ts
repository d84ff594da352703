import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { AdmitPlan, BucketPlan, PoolPlan } from '../types.js';
import { bucketKey, poolKey } from '../types.js';
import { MemoryLimitStore } from './memory-store.js';

function bucket(rate: number, perS: number, burst: number, tenant = 't'): BucketPlan {
  return { name: 'api', key: bucketKey(tenant, 'api'), rate, perS, burst };
}
function pool(limit: number, tenant = 't'): PoolPlan {
  return { name: 'calls', key: poolKey(tenant, 'calls'), limit };
}
function plan(b?: BucketPlan, p?: PoolPlan, enforce = true): AdmitPlan {
  return { tenant: 't', bucket: b, pool: p, enforce };
}

/** A seeded PRNG so a failing schedule can be replayed. */
function prng(seed: number): () => number {
  return () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32);
}

test('never admits more than burst + rate*t/per_s over any interval, and reaches the steady rate', () => {
  for (const [rate, perS, burst] of [
    [3, 1, 5],
    [5, 2, 1],
    [7, 3, 10],
    [100, 60, 40],
  ] as const) {
    const store = MemoryLimitStore.create();
    const p = plan(bucket(rate, perS, burst));
    const rnd = prng(rate * 1000 + burst);
    const admitted: number[] = [];
    let now = 1_000_000;
    const end = now + 30_000;
    while (now < end) {
      // bursts of demand, idle gaps and steady trickles, at integer and fractional instants
      const tries = rnd() < 0.2 ? Math.floor(rnd() * 20) : 1;
      for (let i = 0; i < tries; i++) if (store.admit(p, now).ok) admitted.push(now);
      now += rnd() < 0.05 ? rnd() * 3000 : rnd() * 50;
    }
    for (let i = 0; i < admitted.length; i++) {
      for (let j = i; j < admitted.length; j++) {
        const t = (admitted[j]! - admitted[i]!) / 1000;
        assert.ok(j - i + 1 <= burst + (rate * t) / perS + 1e-9, `${j - i + 1} admitted in ${t}s for ${rate}/${perS}s burst ${burst}`);
      }
    }
  }
  // steady demand (a request every ms) gets exactly burst + floor(t / interval)
  const store = MemoryLimitStore.create();
  const p = plan(bucket(3, 1, 5));
  let n = 0;
  for (let now = 0; now <= 10_000; now++) if (store.admit(p, now).ok) n++;
  assert.equal(n, 5 + 30);
});

test('reports remaining, reset and retry-after for the RateLimit and Retry-After headers', () => {
  const store = MemoryLimitStore.create();
  const p = plan(bucket(1, 1, 2));
  assert.deepEqual(store.admit(p, 0), { ok: true, retryAfterMs: 0, remaining: 1, resetMs: 1000, lease: undefined });
  assert.deepEqual(store.admit(p, 0), { ok: true, retryAfterMs: 0, remaining: 0, resetMs: 2000, lease: undefined });
  assert.deepEqual(store.admit(p, 250), { ok: false, refused: 'bucket', retryAfterMs: 750, remaining: 0, resetMs: 1750 });
  assert.equal(store.admit(p, 1000).ok, true);
  assert.equal(store.admit(p, 5000).remaining, 1, 'refilled to full (burst 2), one taken');
});

test('takes the bucket token and the pool lease together or not at all', () => {
  const store = MemoryLimitStore.create();
  const p = plan(bucket(1, 3600, 2), pool(1));
  const first = store.admit(p, 0);
  assert.equal(first.ok, true);
  assert.ok(first.lease);
  const full = store.admit(p, 0);
  assert.deepEqual([full.ok, full.refused, full.lease, full.remaining], [false, 'pool', undefined, 1]);
  store.release(first.lease);
  const second = store.admit(p, 0);
  assert.equal(second.ok, true, 'the pool refusal did not spend the last token');
  store.release(second.lease!);
  const empty = store.admit(p, 0);
  assert.deepEqual([empty.ok, empty.refused, empty.lease], [false, 'bucket', undefined]);
  assert.equal(store.inUse(p.pool!.key), 0, 'the bucket refusal took no lease');
});

test('release is idempotent per lease and never drives a pool negative', () => {
  const store = MemoryLimitStore.create();
  const p = plan(undefined, pool(2));
  const a = store.admit(p, 0).lease!;
  const b = store.admit(p, 0).lease!;
  assert.notEqual(a.id, b.id);
  assert.deepEqual(JSON.parse(JSON.stringify(a)), { poolKey: p.pool!.key, id: a.id }, 'logs show the lease, not its table');
  assert.equal(store.inUse(p.pool!.key), 2);
  store.release(a);
  store.release(a);
  store.release(a);
  assert.equal(store.inUse(p.pool!.key), 1);
  store.release({ poolKey: p.pool!.key, id: b.id }); // not a lease this store handed out
  assert.equal(store.inUse(p.pool!.key), 1);
  store.release(b);
  store.release(b);
  assert.equal(store.inUse(p.pool!.key), 0);
  assert.equal(store.admit(p, 0).ok, true);
  assert.equal(store.admit(p, 0).ok, true);
  assert.equal(store.admit(p, 0).ok, false, 'the limit still holds after double releases');
});

test('shadow mode refuses nothing, reports what would have been refused, and spends nothing for it', () => {
  const store = MemoryLimitStore.create();
  const b = bucket(1, 3600, 1);
  const shadow = plan(b, pool(1), false);
  const first = store.admit(shadow, 0);
  assert.deepEqual([first.ok, first.refused], [true, undefined]);
  assert.ok(first.lease);
  const ub = bucket(1, 3600, 1, 'u');
  const overPool = store.admit(plan(ub, pool(1), false), 0); // a fresh bucket, the same full pool
  assert.deepEqual([overPool.ok, overPool.refused, overPool.lease], [true, 'pool', undefined]);
  assert.equal(store.admit(plan(ub), 0).ok, true, 'the would-be pool refusal spent no token');
  const overBucket = store.admit(shadow, 0);
  assert.deepEqual([overBucket.ok, overBucket.refused, overBucket.lease], [true, 'bucket', undefined]);
  assert.equal(store.inUse(shadow.pool!.key), 1, 'no lease taken for a would-be refusal');
  const poolOnly = store.admit(plan(undefined, pool(1), false), 0);
  assert.deepEqual([poolOnly.ok, poolOnly.refused, poolOnly.lease], [true, 'pool', undefined]);
  store.release(first.lease);
  assert.equal(store.admit(plan(b), 0).refused, 'bucket', 'the bucket is where enforcing would have left it');
});

test('a pool table full of pools with live leases refuses new pools instead of forgetting leases', () => {
  const store = MemoryLimitStore.create({ poolSlots: 8 });
  const leases = [];
  for (let i = 0; i < 8; i++) {
    const a = store.admit(plan(undefined, pool(5, `t${i}`)), 0);
    assert.equal(a.ok, true);
    leases.push(a.lease!);
  }
  const refused = store.admit(plan(bucket(10, 1, 10, 'x'), pool(5, 'x')), 0);
  assert.deepEqual([refused.ok, refused.refused, refused.remaining], [false, 'pool', 10]);
  assert.equal(store.stats().poolTableFull, 1);
  for (let i = 0; i < 8; i++) assert.equal(store.inUse(poolKey(`t${i}`, 'calls')), 1);
  store.release(leases[3]!);
  assert.equal(store.admit(plan(undefined, pool(5, 'x')), 0).ok, true);
});

test('a bucket table keeps working when full: idle buckets are reused, live ones evicted and counted', () => {
  const store = MemoryLimitStore.create({ bucketSlots: 8 });
  for (let i = 0; i < 8; i++) assert.equal(store.admit(plan(bucket(1, 1, 1, `t${i}`)), 0).ok, true);
  assert.equal(store.admit(plan(bucket(1, 1, 1, 'new')), 500).ok, true);
  assert.equal(store.stats().bucketEvictions, 1, 'all 8 were live at 500 ms');
  assert.equal(store.admit(plan(bucket(1, 1, 1, 'later')), 5000).ok, true);
  assert.equal(store.stats().bucketEvictions, 1, 'at 5 s they are full again: reuse, not eviction');
});

test('status is always ok, close resolves, bad table sizes are refused', async () => {
  const store = MemoryLimitStore.create({ bucketSlots: 64, poolSlots: 64 });
  assert.deepEqual(store.status(), { state: 'ok' });
  assert.equal(store.inUse('{nobody}:p:calls'), 0);
  await store.close();
  assert.throws(() => MemoryLimitStore.create({ bucketSlots: 100 }), /power of two/);
});
