// The Redis limit store against real redis-server processes (and a real three-master cluster),
// with the memory store as the local insurance fallback.

import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { createConnection } from 'node:net';
import { createInterface } from 'node:readline';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { StoreSpec } from '../../policy/types.js';
import { startRedis, startRedisCluster, type RedisClusterHandle, type RedisServer } from '../../../test/support/redis-server.js';
import { MemoryLimitStore } from '../memory/memory-store.js';
import { bucketKey, poolKey, type Admission, type AdmitPlan, type Lease } from '../types.js';
import { RedisStoreConfigError } from './client.js';
import { RedisLimitStore, type RedisLimitStoreOptions } from './redis-store.js';

const CHILD = fileURLToPath(new URL('./store-test-child.js', import.meta.url));
const redisCli = (port: number, ...args: string[]) =>
  new Promise<string>((res, rej) => execFile('redis-cli', ['-p', String(port), ...args], (e, out) => (e ? rej(e) : res(out.trim()))));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let planSeq = 0;
/** A plan on a fresh tenant, so tests never share keys. */
function plan(opts: { tenant?: string; bucket?: { rate: number; perS?: number; burst: number }; pool?: number; enforce?: boolean }): AdmitPlan {
  const tenant = opts.tenant ?? `t${++planSeq}-${process.pid}`;
  return {
    tenant,
    enforce: opts.enforce ?? true,
    bucket: opts.bucket && { name: 'api', key: bucketKey(tenant, 'api'), rate: opts.bucket.rate, perS: opts.bucket.perS ?? 1, burst: opts.bucket.burst },
    pool: opts.pool === undefined ? undefined : { name: 'calls', key: poolKey(tenant, 'calls'), limit: opts.pool },
  };
}

function redisSpec(url: string, extra: Partial<StoreSpec> = {}): StoreSpec {
  return { kind: 'redis', url, prefix: 'ward:', outage_share: 0.5, ...extra };
}

async function waitUntil(what: string, cond: () => boolean, timeoutMs: number): Promise<number> {
  const start = Date.now();
  while (!cond()) {
    if (Date.now() - start > timeoutMs) throw new Error(`not ${what} within ${timeoutMs} ms`);
    await sleep(10);
  }
  return Date.now() - start;
}

/** Reads a child's JSON lines in order; none is lost while nobody waits. */
function lineReader(input: NodeJS.ReadableStream): () => Promise<Record<string, unknown>> {
  const lines: string[] = [];
  const waiting: ((l: string) => void)[] = [];
  createInterface({ input }).on('line', (l) => {
    const w = waiting.shift();
    if (w) w(l);
    else lines.push(l);
  });
  return () => new Promise((res) => {
    const l = lines.shift();
    if (l !== undefined) res(JSON.parse(l));
    else waiting.push((x) => res(JSON.parse(x)));
  });
}

/** Bound tests are about sharing, not outages: a timeout a loaded CI box never hits, so no answer
 * comes from the insurance limits (each test checks failOpenTotal is 0). */
const PATIENT: RedisLimitStoreOptions = { commandTimeoutMs: 2000 };

const stores: RedisLimitStore[] = [];
async function open(spec: StoreSpec, opts?: RedisLimitStoreOptions): Promise<RedisLimitStore> {
  const s = new RedisLimitStore(spec, MemoryLimitStore.create(), opts);
  stores.push(s);
  assert.equal(await s.ready(3000), true, 'store connects');
  return s;
}

/** Admits as fast as `concurrency` loops can until `until`; counts outcomes and any throw. */
async function hammer(store: RedisLimitStore, p: AdmitPlan, until: number, concurrency = 8) {
  const r = { admitted: 0, refused: 0, errors: 0 };
  const loop = async () => {
    while (Date.now() < until) {
      try {
        const a = await store.admit(p, Date.now());
        if (a.ok) r.admitted++;
        else r.refused++;
      } catch {
        r.errors++;
      }
      await new Promise<void>((res) => setImmediate(res));
    }
  };
  await Promise.all(Array.from({ length: concurrency }, loop));
  return r;
}

describe('RedisLimitStore on one redis-server', () => {
  let redis: RedisServer;
  before(async () => {
    redis = await startRedis();
  });
  after(async () => {
    await Promise.all(stores.splice(0).map((s) => s.close()));
    await redis.stop();
  });

  test('two ward processes on one Redis together admit at most burst + rate*t (within 5%)', { timeout: 20_000 }, async () => {
    const p = plan({ bucket: { rate: 100, burst: 20 } });
    const children = [0, 1].map(() => {
      const child = spawn(process.execPath, [CHILD, JSON.stringify({ mode: 'hammer', spec: redisSpec(redis.url), plan: p, durationMs: 2500, opts: PATIENT })], {
        stdio: ['pipe', 'pipe', 'inherit'],
      });
      return { child, next: lineReader(child.stdout!) };
    });
    type Out = { admitted: number; refused: number; local: number; startMs: number; endMs: number };
    let out: Out[];
    try {
      for (const c of children) assert.deepEqual(await c.next(), { ready: true });
      const results = children.map((c) => c.next());
      for (const c of children) c.child.stdin!.write('go\n');
      out = (await Promise.all(results)) as unknown as Out[];
    } finally {
      for (const c of children) c.child.kill();
    }
    const admitted = out[0]!.admitted + out[1]!.admitted;
    const t = (Math.max(out[0]!.endMs, out[1]!.endMs) - Math.min(out[0]!.startMs, out[1]!.startMs)) / 1000;
    const bound = 20 + 100 * t;
    assert.equal(out[0]!.local + out[1]!.local, 0, 'every answer came from Redis');
    assert.ok(out[0]!.admitted > 0 && out[1]!.admitted > 0, 'both processes were admitted');
    assert.ok(admitted <= bound, `admitted ${admitted} over ${t}s, bound ${bound}`);
    // The contract is the upper bound; this lower one only shows the hammering kept the bucket empty
    // (loose: a process starved of CPU on a loaded box loses the refills beyond a full bucket).
    assert.ok(admitted >= 0.7 * bound, `admitted ${admitted} over ${t}s, near ${bound}`);
  });

  test('exactly N of a pool of N are admitted across instances', async () => {
    const [a, b] = [await open(redisSpec(redis.url), PATIENT), await open(redisSpec(redis.url), PATIENT)];
    const p = plan({ pool: 7 });
    const tries = await Promise.all(Array.from({ length: 30 }, (_, i) => (i % 2 ? a : b).admit(p, Date.now())));
    const granted = tries.filter((x) => x.ok);
    assert.equal(granted.length, 7);
    assert.ok(tries.filter((x) => !x.ok).every((x) => x.refused === 'pool'));
    assert.equal(await a.inUse(p.pool!.key), 7);
    assert.equal((await b.admit(p, Date.now())).ok, false, 'the 8th is refused');
    tries.forEach((x, i) => x.lease && (i % 2 ? a : b).release(x.lease));
    tries.forEach((x, i) => x.lease && (i % 2 ? a : b).release(x.lease)); // twice: idempotent
    assert.equal(await b.inUse(p.pool!.key), 0);
    assert.equal((await b.admit(p, Date.now())).ok, true, 'free again after release');
  });

  test('a bucket and a pool in one plan: both or neither', async () => {
    const s = await open(redisSpec(redis.url));
    const p = plan({ bucket: { rate: 1, perS: 60, burst: 5 }, pool: 2 });
    const a1 = await s.admit(p, Date.now());
    const a2 = await s.admit(p, Date.now());
    assert.deepEqual([a1.ok, a1.remaining, a2.ok, a2.remaining], [true, 4, true, 3]);
    const full = await s.admit(p, Date.now());
    assert.deepEqual([full.ok, full.refused, full.remaining, full.lease], [false, 'pool', 3, undefined], 'pool full: no token taken');
    s.release(a1.lease!);
    const a3 = await s.admit(p, Date.now());
    assert.deepEqual([a3.ok, a3.remaining], [true, 2]);

    const q = plan({ bucket: { rate: 1, perS: 60, burst: 1 }, pool: 5 });
    assert.equal((await s.admit(q, Date.now())).ok, true);
    const empty = await s.admit(q, Date.now());
    assert.deepEqual([empty.ok, empty.refused, empty.lease], [false, 'bucket', undefined]);
    assert.ok(empty.retryAfterMs > 59_000 && empty.retryAfterMs <= 60_000, `retry after ${empty.retryAfterMs}`);
    assert.equal(await s.inUse(q.pool!.key), 1, 'bucket empty: no lease taken');
  });

  test('shadow mode admits what it would refuse, and says why', async () => {
    const s = await open(redisSpec(redis.url));
    const p = plan({ bucket: { rate: 1, perS: 60, burst: 1 }, pool: 5, enforce: false });
    assert.equal((await s.admit(p, Date.now())).refused, undefined);
    const would = await s.admit(p, Date.now());
    assert.deepEqual([would.ok, would.refused, would.lease], [true, 'bucket', undefined]);
  });

  test('a live holder keeps its leases past the TTL by renewing them', async () => {
    const holder = await open(redisSpec(redis.url), { leaseTtlMs: 600, renewIntervalMs: 150 });
    const other = await open(redisSpec(redis.url));
    const p = plan({ pool: 2 });
    const held = [await holder.admit(p, Date.now()), await holder.admit(p, Date.now())];
    assert.ok(held.every((h) => h.lease));
    await sleep(1500);
    assert.equal(await other.inUse(p.pool!.key), 2);
    assert.equal((await other.admit(p, Date.now())).ok, false);
    await holder.close(); // gives its leases back
    assert.equal(await other.inUse(p.pool!.key), 0);
  });

  test('a slow Redis delays a request by the command timeout at most, then insurance answers', async () => {
    const s = await open(redisSpec(redis.url), { commandTimeoutMs: 80, probeIntervalMs: 100 });
    const p = plan({ bucket: { rate: 1000, burst: 1000 } });
    assert.equal((await s.admit(p, Date.now())).ok, true);
    // DEBUG SLEEP blocks the whole server, as a stalled or overloaded Redis would.
    const blocker = createConnection({ host: '127.0.0.1', port: redis.port });
    await new Promise((r) => blocker.once('connect', r));
    blocker.write('DEBUG SLEEP 1\r\n');
    const unblocked = new Promise((r) => blocker.once('data', r));
    await sleep(30);
    const t0 = performance.now();
    const a = await s.admit(p, Date.now());
    const waited = performance.now() - t0;
    assert.equal(a.ok, true);
    assert.ok(waited < 500, `waited ${waited} ms, not the 1 s Redis took`);
    assert.deepEqual(s.status(), { state: 'degraded', reason: 'store_unreachable' });
    await unblocked;
    blocker.destroy();
    await waitUntil('shared again', () => s.status().state === 'ok', 2000);
    assert.ok(s.stats().failOpenTotal >= 1);
  });

  test('Redis killed under load: no throw, insurance at outage_share, degraded, then shared again by itself', async () => {
    // Killing Redis closes the socket: detection needs no timeout, so a patient one avoids false alarms.
    const s = await open(redisSpec(redis.url), { probeIntervalMs: 100, commandTimeoutMs: 1000 });
    const p = plan({ bucket: { rate: 100, burst: 20 } });
    const pp = plan({ pool: 4 });
    const inRedis = [await s.admit(pp, Date.now()), await s.admit(pp, Date.now())];

    // Shared: 1 s of hammering.
    const r1 = await hammer(s, p, Date.now() + 1000);
    assert.equal(r1.errors, 0);

    await redis.kill();
    await waitUntil('degraded', () => s.status().state === 'degraded', 1000);
    assert.deepEqual(s.status(), { state: 'degraded', reason: 'store_unreachable' });
    const t0 = Date.now();
    const r2 = await hammer(s, p, t0 + 1500);
    const t2 = (Date.now() - t0) / 1000;
    assert.equal(r2.errors, 0, 'no admit threw or rejected');
    // Local insurance: burst floor(0.5*20) = 10, rate 0.5*100 = 50/s.
    const localBound = 10 + 50 * t2;
    assert.ok(r2.admitted <= localBound + 1, `admitted ${r2.admitted} in ${t2}s of outage, local bound ${localBound}`);
    assert.ok(r2.admitted >= 0.7 * localBound, `admitted ${r2.admitted}, still serving near ${localBound}`);

    // Leases during the outage: the Redis-held one is released into a queue, local ones at 0.5 × 4.
    inRedis[0]!.lease && s.release(inRedis[0]!.lease);
    const local = [await s.admit(pp, Date.now()), await s.admit(pp, Date.now()), await s.admit(pp, Date.now())];
    assert.deepEqual(local.map((x) => x.ok), [true, true, false]);
    assert.equal(await s.inUse(pp.pool!.key), 2);

    await redis.restart(); // empty: Redis forgot everything
    const back = await waitUntil('shared again', () => s.status().state === 'ok', 3000);
    assert.ok(back < 3000);
    // Redis counts what this instance really holds: one Redis lease (re-added) + two adopted local ones.
    assert.equal(await s.inUse(pp.pool!.key), 3);
    assert.equal((await s.admit(pp, Date.now())).ok, true);
    assert.equal((await s.admit(pp, Date.now())).ok, false, 'limit 4 holds again');

    const all: Lease[] = [inRedis[0]!.lease!, inRedis[1]!.lease!, local[0]!.lease!, local[1]!.lease!];
    for (const l of all) s.release(l);
    for (const l of all) s.release(l); // releasing twice changes nothing
    await sleep(50);
    assert.equal(await s.inUse(pp.pool!.key), 1, 'only the lease taken after recovery is left');

    // Shared again: the bucket bound is Redis's (a fresh, full bucket).
    const t3 = Date.now();
    const r3 = await hammer(s, p, t3 + 1000);
    assert.equal(r3.errors, 0);
    assert.ok(r3.admitted <= 20 + 100 * ((Date.now() - t3) / 1000) + 1);
    const st = s.stats();
    assert.equal(st.outagesTotal, 1);
    assert.ok(st.failOpenTotal >= r2.admitted);
    assert.equal(st.pendingReleases, 0);
  });
});

describe('RedisLimitStore without Redis', () => {
  test('serves locally and reports degraded when Redis never answers', async () => {
    const s = new RedisLimitStore(redisSpec('redis://127.0.0.1:1'), MemoryLimitStore.create(), { probeIntervalMs: 50 });
    try {
      assert.equal(await s.ready(200), false);
      assert.deepEqual(s.status(), { state: 'degraded', reason: 'store_unreachable' });
      const p = plan({ bucket: { rate: 1, perS: 60, burst: 4 }, pool: 1 });
      const got: Admission[] = [];
      for (let i = 0; i < 3; i++) got.push(await s.admit(p, Date.now()));
      assert.deepEqual(got.map((a) => a.ok), [true, false, false], 'burst 4 × 0.5 = 2, pool 1 → at least 1');
      s.release(got[0]!.lease!);
      s.release(got[0]!.lease!);
      assert.equal(await s.inUse(p.pool!.key), 0);
    } finally {
      await s.close();
    }
  });

  test('refuses a spec it cannot run with, saying the fix', () => {
    const fb = MemoryLimitStore.create();
    const bad: [Partial<StoreSpec>, string][] = [
      [{ prefix: 'ward:{x}:' }, 'ERR_STORE_PREFIX'],
      [{ url: undefined }, 'ERR_STORE_URL'],
      [{ url: 'http://127.0.0.1:6379' }, 'ERR_STORE_URL'],
      [{ outage_share: 0 }, 'ERR_STORE_SHARE'],
      [{ outage_share: 1.5 }, 'ERR_STORE_SHARE'],
      [{ kind: 'redis-cluster', nodes: [] }, 'ERR_STORE_NODES'],
      [{ kind: 'memory' }, 'ERR_STORE_KIND'],
    ];
    for (const [patch, code] of bad) {
      assert.throws(() => new RedisLimitStore(redisSpec('redis://127.0.0.1:6379', patch), fb), (e: unknown) => {
        return e instanceof RedisStoreConfigError && e.code === code && /e\.g\.|use /.test(e.message);
      });
    }
  });
});

describe('RedisLimitStore on a three-master Redis Cluster', () => {
  let cluster: RedisClusterHandle;
  const cstores: RedisLimitStore[] = [];
  before(async () => {
    cluster = await startRedisCluster();
  });
  after(async () => {
    await Promise.all(cstores.map((s) => s.close()));
    await cluster.stop();
  });

  test('same bucket and pool bounds, tenants spread over the masters', async () => {
    const spec: StoreSpec = { kind: 'redis-cluster', nodes: cluster.nodes, prefix: 'ward:', outage_share: 0.5 };
    for (let i = 0; i < 2; i++) {
      const s = new RedisLimitStore(spec, MemoryLimitStore.create(), PATIENT);
      cstores.push(s);
      assert.equal(await s.ready(5000), true);
    }
    const [a, b] = cstores as [RedisLimitStore, RedisLimitStore];
    // Six tenants, two on each master (redis-cli gives each master a third of the slots, in order),
    // each with a bucket and a pool in one plan.
    const tenants: string[] = [];
    const perThird = [0, 0, 0];
    for (let i = 0; tenants.length < 6; i++) {
      const name = `c${i}-${process.pid}`;
      const third = Math.floor(Number(await redisCli(cluster.ports[0]!, 'CLUSTER', 'KEYSLOT', `ward:{${name}}:p:calls`)) / 5462);
      if (perThird[third]! < 2) {
        perThird[third]!++;
        tenants.push(name);
      }
    }
    const plans = tenants.map((tenant) => plan({ tenant, bucket: { rate: 50, burst: 10 }, pool: 3 }));

    const pools = await Promise.all(plans.map((p) => Promise.all(Array.from({ length: 8 }, (_, i) => (i % 2 ? a : b).admit(p, Date.now())))));
    for (const got of pools) assert.equal(got.filter((x) => x.ok).length, 3, 'exactly 3 of a pool of 3');
    const keysPerMaster = await Promise.all(cluster.ports.map((port) => redisCli(port, 'DBSIZE')));
    assert.ok(keysPerMaster.every((n) => Number(n) >= 2), `each master holds its two tenants' keys: ${keysPerMaster}`);
    pools.forEach((got) => got.forEach((x, i) => x.lease && (i % 2 ? a : b).release(x.lease)));

    const bucketOnly = plans.map((p) => ({ ...p, pool: undefined }));
    const t0 = Date.now();
    const until = t0 + 1500;
    const res = await Promise.all(bucketOnly.map((p) => Promise.all([hammer(a, p, until, 3), hammer(b, p, until, 3)])));
    const t = (Date.now() - t0) / 1000;
    assert.equal(a.stats().failOpenTotal + b.stats().failOpenTotal, 0, 'all answered by the cluster');
    for (const [ra, rb] of res) {
      const admitted = ra.admitted + rb.admitted;
      assert.equal(ra.errors + rb.errors, 0);
      assert.ok(admitted <= 10 + 50 * t, `admitted ${admitted} in ${t}s`);
      assert.ok(admitted >= 0.7 * (10 + 50 * t), `admitted ${admitted} in ${t}s, near the bound`);
    }
  });

  test('a master lost: no throw, degraded, insurance; back: shared again, leases recounted', async () => {
    const [a] = cstores as [RedisLimitStore];
    // A tenant whose slot lives on master 0.
    let tenant = '';
    for (let i = 0; !tenant; i++) {
      const name = `m${i}-${process.pid}`;
      if (Number(await redisCli(cluster.ports[0]!, 'CLUSTER', 'KEYSLOT', `ward:{${name}}:p:calls`)) < 5461) tenant = name;
    }
    const p = plan({ tenant, bucket: { rate: 100, burst: 20 }, pool: 4 });
    const held = await a.admit(p, Date.now());
    assert.ok(held.lease);

    await cluster.kill(0);
    const r = await hammer(a, { ...p, pool: undefined }, Date.now() + 800, 4);
    assert.equal(r.errors, 0);
    assert.ok(r.admitted > 0, 'still serving');
    assert.deepEqual(a.status(), { state: 'degraded', reason: 'store_unreachable' });

    await cluster.restart(0); // same slots, no data
    await waitUntil('shared again', () => a.status().state === 'ok', 5000);
    assert.equal(await a.inUse(p.pool!.key), 1, 'the held lease was re-added to the restarted master');
    a.release(held.lease!);
    await sleep(50);
    assert.equal(await a.inUse(p.pool!.key), 0);
  });
});
