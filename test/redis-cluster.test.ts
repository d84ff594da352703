// Two `ward serve` processes on a real three-master Redis Cluster (started here with
// `redis-cli --cluster create`): the same global bucket and pool bounds as on one Redis. Each
// tenant's keys share a slot through the {tenant} hash tag, so one script call serves a request.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { policyDir, basePolicy, startWard, type WardProcess, type PolicyFiles } from './support/ward-process.js';
import { bearer, request } from './support/http.js';
import { signJwt, standardClaims } from './support/jwt.js';
import { startRedisCluster, type RedisClusterHandle } from './support/redis-server.js';
import { eventually, metric, startHoldingUpstream, type HoldingUpstream } from './support/load.js';
import { assertGlobalBucket, assertGlobalPool } from './support/shared-limits.js';

const BUCKET = { rate: 40, burst: 80 };
const POOL = 5;

let cluster: RedisClusterHandle;
let up: HoldingUpstream;
let pol: PolicyFiles;
let a: WardProcess;
let b: WardProcess;
const tok = (tenant: string) => bearer(signJwt(pol.key, standardClaims(tenant)));
const redisCli = (port: number, ...args: string[]) =>
  new Promise<string>((res, rej) => execFile('redis-cli', ['-p', String(port), ...args], (e, out) => (e ? rej(e) : res(out.trim()))));

before(async () => {
  [cluster, up] = await Promise.all([startRedisCluster(), startHoldingUpstream()]);
  pol = policyDir();
  pol.write(
    basePolicy(up.url, {
      store: { kind: 'redis-cluster', nodes: cluster.nodes, prefix: 'ward:', command_timeout_ms: 2000 },
      routes: [
        { name: 'calls', prefix: '/v1/calls', upstream: 'api', concurrency: 'calls' },
        { name: 'api', prefix: '/v1/', upstream: 'api', bucket: 'api' },
      ],
      tenants: { '*': { buckets: { api: { rate: BUCKET.rate, per_s: 1, burst: BUCKET.burst } }, concurrency: { calls: POOL } } },
    }),
  );
  [a, b] = await Promise.all([startWard(pol.dir), startWard(pol.dir)]);
});

after(async () => {
  up?.release();
  await Promise.all([a?.stop(), b?.stop()]);
  await Promise.all([cluster?.stop(), up?.close()]);
  pol?.remove();
});

test('the bucket holds across two instances on a cluster: burst + rate·t, within 5 %', async (t) => {
  const { detail } = await assertGlobalBucket([a.base, b.base], '/v1/x', tok('cluster-bucket'), BUCKET, 2000);
  t.diagnostic(detail);
});

test(`exactly ${POOL} of ${2 * POOL} concurrent calls admitted across instances on a cluster`, async () => {
  await assertGlobalPool([a.base, b.base], [a.admin, b.admin], up, 'cluster-pool', tok('cluster-pool'), POOL, POOL);
});

test('tenants spread over the masters, each tenant\'s keys in one slot', async () => {
  // One held call per tenant: its lease set lives in Redis for as long as the call.
  const tenants = Array.from({ length: 10 }, (_, i) => `spread-${i}`);
  const calls = tenants.map((tenant) => request(`${a.base}/v1/calls?hold=1`, { headers: tok(tenant) }));
  await eventually('every call held', async () => (tenants.every((t) => up.held(t) === 1) ? true : undefined), 5000, 20);
  const owners = new Set<number>();
  for (const tenant of tenants) {
    const slot = await redisCli(cluster.ports[0]!, 'CLUSTER', 'KEYSLOT', `ward:{${tenant}}:p:calls`);
    assert.equal(await redisCli(cluster.ports[0]!, 'CLUSTER', 'KEYSLOT', `ward:{${tenant}}:b:api`), slot);
    for (const port of cluster.ports) {
      if (Number(await redisCli(port, 'CLUSTER', 'COUNTKEYSINSLOT', slot)) > 0) owners.add(port);
    }
  }
  up.release();
  for (const r of await Promise.all(calls)) assert.equal(r.status, 200);
  assert.ok(owners.size > 1, `lease sets on ${owners.size} master(s)`);
  assert.equal(await metric(a.admin, 'ward_store_fail_open_total'), 0);
  assert.equal(await metric(a.admin, 'ward_store_command_errors_total'), 0);
});
