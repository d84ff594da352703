// Admin actions across instances sharing one Redis: a drain done on one `ward serve` reaches the
// other within 2 s (it then sends that target nothing), a release aborted on one stops the canary
// on both, the audit log is one log, and release state outlives an instance.

import assert from 'node:assert/strict';
import { Agent } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { policyDir, basePolicy, startWard, type PolicyFiles, type WardProcess } from './support/ward-process.js';
import { request, bearer } from './support/http.js';
import { signJwt, standardClaims } from './support/jwt.js';
import { startRedis, type RedisServer } from './support/redis-server.js';
import { consoleTokens, OPERATOR_TOKEN, startTargets, states, until, type Target } from './support/targets.js';

let redis: RedisServer;
let x: Target;
let y: Target;
let canary: Target;
let p: PolicyFiles;
let w1: WardProcess;
let w2: WardProcess;
let tokens: string[];
const agent = new Agent({ keepAlive: true, maxSockets: 8 });

const act = (w: WardProcess, path: string, body?: unknown) =>
  request(w.admin + path, { method: 'POST', headers: { ...bearer(OPERATOR_TOKEN), 'x-ward-admin': '1', 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });

async function releaseStatus(w: WardProcess): Promise<string> {
  return (await request(w.admin + '/admin/api/releases', { headers: bearer(OPERATOR_TOKEN) })).json().releases[0].status;
}

/** Target name per request, one per tenant, through `w`. */
async function served(w: WardProcess): Promise<string[]> {
  const out: string[] = [];
  for (const t of tokens) out.push((await request(w.base + '/v1/things', { headers: bearer(t), agent })).json().target);
  return out;
}

before(async () => {
  redis = await startRedis();
  [x, y, canary] = await startTargets(['x', 'y', 'canary']);
  p = policyDir();
  p.write(
    basePolicy('http://127.0.0.1:1', {
      admin: consoleTokens(p),
      store: { kind: 'redis', url: redis.url, prefix: 'ops-test:' },
      upstreams: { api: { targets: [x.url, y.url], timeout_ms: 2000, balance: 'round_robin' }, api_v2: { targets: [canary.url], timeout_ms: 2000 } },
      releases: { 'api-v2': { routes: ['api'], stable: 'api', canary: 'api_v2', steps: [{ percent: 50 }], step_interval_s: 3600 } },
    }),
  );
  tokens = Array.from({ length: 40 }, (_, i) => signJwt(p.key, standardClaims(`tenant-${i}`)));
  w1 = await startWard(p.dir);
  w2 = await startWard(p.dir, { workers: 2 });
});

after(async () => {
  agent.destroy();
  await Promise.all([w1?.stop(), w2?.stop()]);
  await Promise.all([x, y, canary].map((t) => t?.close()));
  await redis?.stop();
  p?.remove();
});

describe('admin actions with a Redis store', () => {
  it('a drain on one instance reaches the other within 2 s', async () => {
    assert.deepEqual(new Set(await served(w2)), new Set(['x', 'y', 'canary']));
    const r = await act(w1, '/admin/api/upstreams/api/targets/drain', { target: y.url });
    assert.equal(r.status, 200, r.body);
    assert.equal(r.json().shared, true);
    const took = await until('w2 to see y draining', async () => (await states(w2.admin, OPERATOR_TOKEN, 'api'))[y.url] === 'draining', 2000);
    assert.ok(took <= 2000);
    const seen = y.seen.length;
    const got = await served(w2);
    assert.ok(!got.includes('y') && got.includes('x'), `w2 sends the drained target nothing: ${[...new Set(got)]}`);
    assert.equal(y.seen.length, seen);
    // The audit log is shared: w2 shows what olga did on w1.
    const audit = (await request(w2.admin + '/admin/api/audit', { headers: bearer(OPERATOR_TOKEN) })).json().entries;
    assert.equal(audit[0].action, 'drain');
    assert.equal(audit[0].who, 'olga');
    await act(w2, '/admin/api/upstreams/api/targets/undrain', { target: y.url });
    await until('w1 to see y back', async () => (await states(w1.admin, OPERATOR_TOKEN, 'api'))[y.url] === 'healthy', 2000);
  });

  it('a release aborted on one instance stops the canary on both, and stays aborted across a restart', async () => {
    assert.equal(await releaseStatus(w2), 'running');
    const r = await act(w1, '/admin/api/releases/api-v2/abort');
    assert.equal(r.status, 200, r.body);
    await until('w2 to see the abort', async () => (await releaseStatus(w2)) === 'aborted', 2000);
    const seen = canary.seen.length;
    const got = [...(await served(w1)), ...(await served(w2))];
    assert.ok(!got.includes('canary'), 'no tenant goes to the canary');
    assert.equal(canary.seen.length, seen);
    await w2.stop();
    w2 = await startWard(p.dir, { workers: 2 });
    assert.equal(await releaseStatus(w2), 'aborted', 'the state is in Redis');
  });
});
