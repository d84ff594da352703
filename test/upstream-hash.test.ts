// Call affinity through real `ward serve` instances: with `balance: hash` on `tenant_sub`, every
// request of one user lands on one target, two instances agree on every key, removing a target
// (a policy edit) moves only the keys it held and re-adding it restores the mapping; `call_id`
// keeps call-control requests of one call together.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Agent } from 'node:http';
import { policyDir, basePolicy, startWard, type PolicyFiles, type WardProcess } from './support/ward-process.js';
import { request, bearer } from './support/http.js';
import { signJwt, standardClaims } from './support/jwt.js';
import { consoleTokens, OPERATOR_TOKEN, startTargets, until, upstreamView, type Target } from './support/targets.js';

const USERS = 150;
let targets: Target[];
let p: PolicyFiles;
let w1: WardProcess;
let w2: WardProcess;
let tokens: string[];
const agent = new Agent({ keepAlive: true, maxSockets: 8 });

function policy(urls: string[]): Record<string, unknown> {
  return basePolicy('http://127.0.0.1:1', {
    admin: consoleTokens(p),
    upstreams: {
      api: { targets: urls, timeout_ms: 5000, balance: 'hash', hash: { key: 'tenant_sub', balance_factor: 125 } },
      ctl: { targets: urls, timeout_ms: 2000, balance: 'hash', hash: { key: 'call_id' } },
    },
    routes: [
      { name: 'calls', prefix: '/v1/calls', upstream: 'ctl', bucket: 'calls' },
      { name: 'api', prefix: '/v1/', upstream: 'api', bucket: 'api' },
    ],
    tenants: { '*': { buckets: { api: { rate: 100000, per_s: 1 }, calls: { rate: 100000, per_s: 1 } }, concurrency: {} } },
  });
}

async function whoServes(w: WardProcess, token: string, path = '/v1/session', headers: Record<string, string> = {}): Promise<string> {
  const r = await request(w.base + path, { headers: { ...bearer(token), ...headers }, agent });
  assert.equal(r.status, 200, r.body);
  return r.json().target as string;
}

/** user index → target name, through `w`. One request at a time: with requests in flight, bounded
 * loads may lend a busy target's key to the next one (the Zipf test below shows that side). */
async function mapping(w: WardProcess): Promise<string[]> {
  const out: string[] = [];
  for (const t of tokens) out.push(await whoServes(w, t));
  return out;
}

before(async () => {
  targets = await startTargets(['t1', 't2', 't3', 't4', 't5']);
  p = policyDir();
  p.write(policy(targets.map((t) => t.url)));
  [w1, w2] = await Promise.all([startWard(p.dir), startWard(p.dir, { workers: 2 })]);
  // Users of three tenants: tenant_sub spreads one tenant's users over the targets.
  tokens = Array.from({ length: USERS }, (_, i) => signJwt(p.key, standardClaims(`tenant${i % 3}`, { sub: `user-${i}` })));
});

after(async () => {
  agent.destroy();
  await Promise.all([w1?.stop(), w2?.stop()]);
  await Promise.all(targets.map((t) => t.close()));
  p.remove();
});

describe('hash balancing on tenant_sub', () => {
  it('sends every request of a user to one target, and two instances agree on every user', async () => {
    const a = await mapping(w1);
    const again = await mapping(w1);
    const b = await mapping(w2);
    assert.deepEqual(again, a, 'sticky across requests');
    assert.deepEqual(b, a, 'two instances (one with two threads) agree');
    const perTarget = new Map<string, number>();
    for (const t of a) perTarget.set(t, (perTarget.get(t) ?? 0) + 1);
    assert.equal(perTarget.size, 5, `users spread over every target: ${JSON.stringify([...perTarget])}`);
    const tenant0 = new Set(a.filter((_, i) => i % 3 === 0));
    assert.ok(tenant0.size >= 4, 'one tenant’s users are spread, not pinned to one target');
  });

  it('removing a target moves only its users; adding it back restores the mapping', async () => {
    const before = await mapping(w1);
    const gone = targets[3]!;
    p.write(policy(targets.filter((t) => t !== gone).map((t) => t.url)));
    const reloaded = async (w: WardProcess) => (await upstreamView(w.admin, OPERATOR_TOKEN, 'api')).targets.length === 4;
    await until('both instances to reload', async () => (await reloaded(w1)) && (await reloaded(w2)));
    const without = await mapping(w1);
    assert.deepEqual(await mapping(w2), without, 'the instances still agree');
    for (let i = 0; i < USERS; i++) {
      if (before[i] === gone.name) assert.notEqual(without[i], gone.name);
      else assert.equal(without[i], before[i], `user ${i} stays on ${before[i]}`);
    }
    assert.ok(before.includes(gone.name), 'the removed target held some users');

    p.write(policy(targets.map((t) => t.url)));
    const restored = async (w: WardProcess) => (await upstreamView(w.admin, OPERATOR_TOKEN, 'api')).targets.length === 5;
    await until('both instances to reload', async () => (await restored(w1)) && (await restored(w2)));
    assert.deepEqual(await mapping(w1), before);
    assert.deepEqual(await mapping(w2), before);
  });

  it('bounded loads: with Zipf-distributed users, no target holds more than 1.25 × the average + 1 in flight', async () => {
    // 40 long requests (held 3 s by the targets), users drawn from a Zipf distribution: user 0
    // alone is about a fifth of them, so plain hashing would pile them onto one target.
    let seed = 7;
    const rnd = (): number => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32);
    const weights = tokens.map((_, i) => 1 / (i + 1));
    const sum = weights.reduce((a, b) => a + b, 0);
    const pickUser = (): number => {
      let x = rnd() * sum;
      for (let i = 0; i < weights.length; i++) if ((x -= weights[i]!) <= 0) return i;
      return 0;
    };
    const users = Array.from({ length: 40 }, pickUser);
    const heldAgent = new Agent({ keepAlive: false, maxSockets: 64 });
    const held = users.map((u) => request(w1.base + '/v1/session?hold_ms=3000', { headers: bearer(tokens[u]!), agent: heldAgent }));
    await until('all 40 in flight', async () => (await upstreamView(w1.admin, OPERATOR_TOKEN, 'api')).targets.reduce((a, t) => a + t.in_flight, 0) === 40, 2500);
    const loads = (await upstreamView(w1.admin, OPERATOR_TOKEN, 'api')).targets.map((t) => t.in_flight);
    const results = await Promise.all(held);
    heldAgent.destroy();
    assert.ok(results.every((r) => r.status === 200));
    assert.ok(Math.max(...loads) <= 1.25 * (40 / 5) + 1, `in flight per target: ${loads}`);
    assert.ok(users.filter((u) => u === 0).length >= 6, 'the heaviest user alone exceeds a fair share');
  });

  it('keeps the requests of one call together by call_id (X-Call-Id)', async () => {
    const token = tokens[0]!;
    for (let c = 0; c < 20; c++) {
      const id = `call-${c}@example`;
      const first = await whoServes(w1, token, '/v1/calls', { 'x-call-id': id });
      for (let k = 0; k < 3; k++) {
        assert.equal(await whoServes(w1, tokens[k + 1]!, '/v1/calls', { 'x-call-id': id }), first, 'whoever sends it');
        assert.equal(await whoServes(w2, token, '/v1/calls', { 'x-call-id': id }), first, 'whichever instance');
      }
    }
  });
});
