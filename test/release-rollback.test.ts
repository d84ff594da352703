// A failing canary through a real `ward serve`: a canary answering 500 to one request in ten is
// rolled back by the analysis within the window plus one step, then receives nothing new; the
// rollback survives a restart (state in the state directory) and holds until an operator resumes.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { Agent } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { policyDir, basePolicy, startWard, type PolicyFiles, type WardProcess } from './support/ward-process.js';
import { request, bearer } from './support/http.js';
import { signJwt, standardClaims } from './support/jwt.js';
import { consoleTokens, OPERATOR_TOKEN, sleep, startTargets, until, type Target } from './support/targets.js';

const WINDOW_S = 3;
const STEP_S = 2;
let stable: Target;
let canary: Target;
let p: PolicyFiles;
let w: WardProcess;
let stateDir: string;
let tokens: string[];
const agent = new Agent({ keepAlive: true, maxSockets: 8 });

async function start(): Promise<WardProcess> {
  return startWard(p.dir, { workers: 2, env: { WARD_STATE_DIR: stateDir } });
}

async function releaseView(): Promise<any> {
  const r = await request(w.admin + '/admin/api/releases', { headers: bearer(OPERATOR_TOKEN) });
  return r.json().releases[0];
}

/** `n` requests over the tenants, 8 at a time; statuses by count. */
async function traffic(n: number): Promise<Map<number, number>> {
  const statuses = new Map<number, number>();
  let next = 0;
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      while (next < n) {
        const i = next++;
        const r = await request(w.base + '/v1/things', { headers: bearer(tokens[i % tokens.length]!), agent });
        statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
      }
    }),
  );
  return statuses;
}

before(async () => {
  [stable, canary] = await startTargets(['stable', 'canary']);
  stateDir = mkdtempSync(join(tmpdir(), 'ward-state-test-'));
  p = policyDir();
  p.write(
    basePolicy('http://127.0.0.1:1', {
      admin: consoleTokens(p),
      upstreams: { api: { targets: [stable.url], timeout_ms: 2000 }, api_v2: { targets: [canary.url], timeout_ms: 2000 } },
      releases: {
        'api-v2': {
          routes: ['api'],
          stable: 'api',
          canary: 'api_v2',
          steps: [{ percent: 50 }, { percent: 100 }],
          step_interval_s: STEP_S,
          analysis: { window_s: WINDOW_S, min_requests: 40, max_error_rate: 0.02 },
        },
      },
      tenants: { '*': { buckets: { api: { rate: 100000, per_s: 1 }, calls: { rate: 100000, per_s: 1 } }, concurrency: { calls: 100 } } },
    }),
  );
  tokens = Array.from({ length: 100 }, (_, i) => signJwt(p.key, standardClaims(`tenant-${i}`)));
  w = await start();
});

after(async () => {
  agent.destroy();
  await w?.stop();
  await Promise.all([stable?.close(), canary?.close()]);
  p?.remove();
  rmSync(stateDir, { recursive: true, force: true });
});

describe('release analysis', () => {
  it('rolls a canary failing 10 % back within the window plus one step; it then receives nothing new', async () => {
    canary.failEvery = 10;
    const started = performance.now();
    let rolledBackAt = 0;
    while (performance.now() - started < (WINDOW_S + STEP_S) * 1000 + 3000) {
      await traffic(80);
      if ((await releaseView()).status === 'rolled_back') {
        rolledBackAt = performance.now() - started;
        break;
      }
    }
    assert.ok(rolledBackAt > 0, 'rolled back');
    assert.ok(rolledBackAt <= (WINDOW_S + STEP_S) * 1000, `rolled back after ${Math.round(rolledBackAt)} ms`);
    const v = await releaseView();
    assert.match(v.reason, /^error_rate/);
    assert.equal(v.by, 'analysis');
    assert.ok(v.canary_side.error_rate > 0.02);

    const before = canary.seen.length;
    const statuses = await traffic(200);
    assert.deepEqual([...statuses], [[200, 200]], 'every tenant is served by stable');
    assert.equal(canary.seen.length, before, 'the canary receives nothing new');
    const m = (await request(w.admin + '/metrics')).body;
    assert.match(m, /ward_release_decisions_total\{release="api-v2",decision="rollback"\} 1/);
    assert.match(m, /ward_release_share\{release="api-v2"\} 0\b/);
  });

  it('stays rolled back past its step interval and across a restart, until an operator resumes it', async () => {
    await sleep(STEP_S * 1000 + 500);
    assert.equal((await releaseView()).status, 'rolled_back');
    await w.stop();
    w = await start();
    assert.equal((await releaseView()).status, 'rolled_back', 'release state survives a restart');
    const before = canary.seen.length;
    await traffic(100);
    assert.equal(canary.seen.length, before);

    canary.failEvery = 0;
    const r = await request(w.admin + '/admin/api/releases/api-v2/resume', { method: 'POST', headers: { ...bearer(OPERATOR_TOKEN), 'x-ward-admin': '1' } });
    assert.equal(r.status, 200, r.body);
    assert.deepEqual(r.json().after, { status: 'running', step: 0 });
    await until('the canary to serve again', async () => {
      await traffic(20);
      return canary.seen.length > before;
    });
    const audit = (await request(w.admin + '/admin/api/audit', { headers: bearer(OPERATOR_TOKEN) })).json().entries;
    assert.equal(audit[0].action, 'resume');
    assert.equal(audit[0].who, 'olga');
  });
});
