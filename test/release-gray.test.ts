// Gray release by tenant through real `ward serve` instances: 1,000 tenants at 10 % put 10 ± 2 %
// on the canary, each tenant on the same side for every request and on every instance; raising the
// step to 25 % keeps every earlier canary tenant; listed tenant groups are on the canary whatever
// their hash. Each instance keeps its release state in its own state directory (memory store).

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { Agent } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { policyDir, basePolicy, startWard, type PolicyFiles, type WardProcess } from './support/ward-process.js';
import { request, bearer } from './support/http.js';
import { signJwt, standardClaims } from './support/jwt.js';
import { consoleTokens, OPERATOR_TOKEN, startTargets, until, type Target } from './support/targets.js';

const TENANTS = 1000;
let stable: Target;
let canary: Target;
let p: PolicyFiles;
let w1: WardProcess;
let w2: WardProcess;
const stateDirs: string[] = [];
let tokens: string[];
let vips: string[];
const agent = new Agent({ keepAlive: true, maxSockets: 16 });

function policy(steps: unknown[]): Record<string, unknown> {
  return basePolicy('http://127.0.0.1:1', {
    admin: consoleTokens(p),
    upstreams: { api: { targets: [stable.url], timeout_ms: 2000 }, api_v2: { targets: [canary.url], timeout_ms: 2000 } },
    releases: { 'api-v2': { routes: ['api'], stable: 'api', canary: 'api_v2', tenant_groups: { beta: ['vip-1', 'vip-2'] }, steps, step_interval_s: 1 } },
    tenants: { '*': { buckets: { api: { rate: 100000, per_s: 1 }, calls: { rate: 100000, per_s: 1 } }, concurrency: { calls: 100 } } },
  });
}

/** Which side served each token, through `w` (16 at a time). */
async function sides(w: WardProcess, list: string[]): Promise<string[]> {
  const out: string[] = new Array(list.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: 16 }, async () => {
      while (next < list.length) {
        const i = next++;
        const r = await request(w.base + '/v1/things', { headers: bearer(list[i]!), agent });
        assert.equal(r.status, 200, r.body);
        out[i] = r.json().target;
      }
    }),
  );
  return out;
}

async function releaseView(w: WardProcess): Promise<any> {
  const r = await request(w.admin + '/admin/api/releases', { headers: bearer(OPERATOR_TOKEN) });
  return r.json().releases[0];
}

before(async () => {
  [stable, canary] = await startTargets(['stable', 'canary']);
  p = policyDir();
  p.write(policy([{ groups: ['beta'], percent: 10 }]));
  const env = () => {
    const d = mkdtempSync(join(tmpdir(), 'ward-state-test-'));
    stateDirs.push(d);
    return { WARD_STATE_DIR: d };
  };
  [w1, w2] = await Promise.all([startWard(p.dir, { env: env() }), startWard(p.dir, { workers: 2, env: env() })]);
  tokens = Array.from({ length: TENANTS }, (_, i) => signJwt(p.key, standardClaims(`tenant-${i}`)));
  vips = ['vip-1', 'vip-2'].map((t) => signJwt(p.key, standardClaims(t)));
});

after(async () => {
  agent.destroy();
  await Promise.all([w1?.stop(), w2?.stop()]);
  await Promise.all([stable?.close(), canary?.close()]);
  p?.remove();
  for (const d of stateDirs) rmSync(d, { recursive: true, force: true });
});

describe('gray release by tenant', () => {
  let at10: string[];

  it('puts 10 ± 2 % of 1,000 tenants on the canary, each on one side on every request and instance', async () => {
    at10 = await sides(w1, tokens);
    const share = at10.filter((s) => s === 'canary').length / TENANTS;
    assert.ok(share >= 0.08 && share <= 0.12, `canary share ${share}`);
    assert.deepEqual(await sides(w1, tokens), at10, 'sticky across requests');
    assert.deepEqual(await sides(w2, tokens), at10, 'the same on another instance (two threads)');
    assert.deepEqual(await sides(w1, vips), ['canary', 'canary'], 'the listed group is on the canary');
    // The upstream sees the tenant ward authenticated, on whichever side.
    const seen = canary.seen.find((s) => s.tenant.startsWith('tenant-'));
    assert.ok(seen !== undefined && at10[Number(seen.tenant.slice('tenant-'.length))] === 'canary');
    const v = await releaseView(w1);
    assert.equal(v.status, 'running');
    assert.equal(v.percent, 10);
    assert.deepEqual(v.groups, ['beta']);
  });

  it('10 → 25 % keeps every tenant already on the canary', async () => {
    p.write(policy([{ groups: ['beta'], percent: 10 }, { percent: 25 }]));
    // The first step has run longer than step_interval_s: each instance advances on its next tick.
    await until('both instances to reach 25 %', async () => (await releaseView(w1)).percent === 25 && (await releaseView(w2)).percent === 25, 5000);
    const at25 = await sides(w1, tokens);
    const share = at25.filter((s) => s === 'canary').length / TENANTS;
    assert.ok(share >= 0.22 && share <= 0.28, `canary share ${share}`);
    at10.forEach((side, i) => {
      if (side === 'canary') assert.equal(at25[i], 'canary', `tenant-${i} stays on the canary`);
    });
    assert.deepEqual(await sides(w2, tokens), at25, 'instances still agree');
    assert.deepEqual(await sides(w2, vips), ['canary', 'canary']);
    const m = (await request(w1.admin + '/metrics')).body;
    assert.match(m, /ward_release_share\{release="api-v2"\} 0\.25/);
    assert.match(m, /ward_release_decisions_total\{release="api-v2",decision="advance"\} 1/);
  });
});
