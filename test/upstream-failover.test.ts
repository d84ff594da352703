// Faults under load through a real `ward serve` with two listener threads: one of three targets
// (separate processes) SIGKILLed mid-load costs no idempotent request and sends no POST twice;
// ward itself frozen with SIGSTOP for 3 s ejects nothing when it wakes (the stall guard voids
// the timeouts it caused itself).

import assert from 'node:assert/strict';
import { Agent } from 'node:http';
import { after, describe, it } from 'node:test';
import { policyDir, basePolicy, startWard, type PolicyFiles, type WardProcess } from './support/ward-process.js';
import { request, bearer } from './support/http.js';
import { signJwt, standardClaims } from './support/jwt.js';
import { consoleTokens, OPERATOR_TOKEN, sleep, startChildTarget, startTargets, until, upstreamView, type ChildTarget, type Target } from './support/targets.js';

const cleanup: Array<() => Promise<unknown> | void> = [];
after(async () => {
  for (const f of cleanup.reverse()) await f();
});

interface LoadResult {
  statuses: Map<number, number>;
  errors: string[];
  count: number;
}

/** `n` closed loops of one request each, on keep-alive connections, until stop(). */
function loop(n: number, send: (agent: Agent) => Promise<number>): { stop(): Promise<LoadResult> } {
  let running = true;
  const res: LoadResult = { statuses: new Map(), errors: [], count: 0 };
  const agent = new Agent({ keepAlive: true, maxSockets: n });
  const loops = Array.from({ length: n }, async () => {
    while (running) {
      try {
        const status = await send(agent);
        res.statuses.set(status, (res.statuses.get(status) ?? 0) + 1);
      } catch (err) {
        res.errors.push((err as NodeJS.ErrnoException).code ?? String(err));
      }
      res.count++;
    }
  });
  return {
    async stop() {
      running = false;
      await Promise.all(loops);
      agent.destroy();
      return res;
    },
  };
}

function ward(p: PolicyFiles): Promise<WardProcess> {
  return startWard(p.dir, { workers: 2 }).then((w) => {
    cleanup.push(() => w.stop('SIGKILL'));
    return w;
  });
}

describe('a target killed under load', () => {
  it('costs no idempotent request, and no POST is sent twice', async () => {
    const targets: ChildTarget[] = [];
    for (const n of ['a', 'b', 'c']) targets.push(await startChildTarget(n));
    cleanup.push(() => Promise.all(targets.map((t) => t.kill())));
    const p = policyDir();
    cleanup.push(() => p.remove());
    p.write(
      basePolicy('http://127.0.0.1:1', {
        admin: consoleTokens(p),
        upstreams: {
          api: {
            targets: targets.map((t) => t.url),
            timeout_ms: 2000,
            health: { active: { interval_ms: 200, timeout_ms: 100, rise: 2, fall: 2 }, passive: { consecutive_failures: 3, base_ejection_ms: 10000 } },
          },
        },
        tenants: { '*': { buckets: { api: { rate: 100000, per_s: 1 }, calls: { rate: 100000, per_s: 1 } }, concurrency: { calls: 100 } } },
      }),
    );
    const w = await ward(p);
    const token = signJwt(p.key, standardClaims('acme'));
    const gets = loop(6, (agent) => request(w.base + '/v1/things', { headers: bearer(token), agent }).then((r) => r.status));
    let postId = 0;
    const posts = loop(2, (agent) =>
      request(w.base + '/v1/calls', { method: 'POST', headers: { ...bearer(token), 'content-type': 'application/json' }, body: JSON.stringify({ n: ++postId }), agent }).then((r) => r.status),
    );
    await sleep(1000);
    const victim = targets[1]!;
    const servedBefore = victim.seen.length;
    await victim.kill('SIGKILL');
    await sleep(2000);
    const g = await gets.stop();
    const po = await posts.stop();

    assert.ok(servedBefore > 20, `the victim took its share before it died (${servedBefore})`);
    assert.deepEqual(g.errors, []);
    assert.deepEqual([...g.statuses], [[200, g.count]], `every GET answered 200 (${g.count} sent)`);
    assert.ok(g.count > 300, `load ran (${g.count} GETs)`);
    // A POST whose bytes reached the victim may fail (it is never resent); at most the two in flight.
    const postFailures = po.count - (po.statuses.get(200) ?? 0);
    assert.ok(postFailures <= 2, `POST failures: ${JSON.stringify([...po.statuses])}`);
    for (const [status] of po.statuses) assert.ok(status === 200 || status === 502, `POST answered ${status}`);
    const postIds = (): string[] => targets.flatMap((t) => t.seen.filter(([m]) => m === 'POST').map(([, id]) => id));
    // The targets' stdout (what they saw) may trail the answers a little.
    await until('every answered POST to show in the targets’ logs', () => postIds().length >= (po.statuses.get(200) ?? 0), 3000);
    assert.equal(new Set(postIds()).size, postIds().length, 'no POST reached two targets (or one twice)');

    const v = await upstreamView(w.admin, OPERATOR_TOKEN, 'api');
    const state = v.targets.find((t) => t.url === victim.url)!.state;
    assert.ok(state === 'down' || state === 'ejected', `the dead target is out of rotation: ${state}`);
    assert.deepEqual(v.targets.filter((t) => t.url !== victim.url).map((t) => t.state), ['healthy', 'healthy']);
  });
});

describe('ward frozen under load', () => {
  it('SIGSTOP for 3 s, then SIGCONT: zero ejections, nothing marked down', async () => {
    const targets: Target[] = await startTargets(['a', 'b', 'c']);
    cleanup.push(() => Promise.all(targets.map((t) => t.close())));
    const p = policyDir();
    cleanup.push(() => p.remove());
    p.write(
      basePolicy('http://127.0.0.1:1', {
        admin: consoleTokens(p),
        upstreams: {
          api: {
            targets: targets.map((t) => t.url),
            timeout_ms: 1000,
            health: { active: { interval_ms: 200, timeout_ms: 100, rise: 2, fall: 2 }, passive: { consecutive_failures: 2, base_ejection_ms: 10000 } },
          },
        },
        tenants: { '*': { buckets: { api: { rate: 100000, per_s: 1 }, calls: { rate: 100000, per_s: 1 } }, concurrency: { calls: 100 } } },
      }),
    );
    const w = await ward(p);
    const token = signJwt(p.key, standardClaims('acme'));
    // Slow answers, so requests are in flight at ward while it is frozen and their timers expire.
    for (const t of targets) {
      t.mode = 'slow';
      t.delayMs = 50;
    }
    const load = loop(9, (agent) => request(w.base + '/v1/things', { headers: bearer(token), agent }).then((r) => r.status));
    await sleep(500);
    // The requests in flight when ward freezes are held by the targets past ward's timeout, so their
    // timers expire during the freeze whatever ward handles first when it wakes (with 50 ms answers
    // already waiting in its sockets, the I/O could come first and leave nothing to void).
    for (const t of targets) t.delayMs = 4000;
    await sleep(300);
    w.proc.kill('SIGSTOP');
    await sleep(3000);
    w.proc.kill('SIGCONT');
    for (const t of targets) t.delayMs = 50;
    await sleep(1500);
    const r = await load.stop();
    assert.ok((r.statuses.get(200) ?? 0) > 100, `load ran: ${JSON.stringify([...r.statuses])}`);

    const v = await upstreamView(w.admin, OPERATOR_TOKEN, 'api');
    assert.deepEqual(v.targets.map((t) => [t.state, t.ejections, t.downs]), [['healthy', 0, 0], ['healthy', 0, 0], ['healthy', 0, 0]]);
    assert.deepEqual(v.events.filter((e) => e.kind === 'ejected' || e.kind === 'down'), []);
    // The guard did act: the timeouts that expired while ward stood still were voided (with
    // consecutive_failures: 2 and three in flight per target, they would have ejected otherwise).
    const voided = v.targets.reduce((a, t) => a + t.voided, 0);
    assert.ok(voided >= 3, `voided failures: ${voided}`);
    // And traffic flows to all three again.
    const before = targets.map((t) => t.seen.length);
    const after = loop(3, (agent) => request(w.base + '/v1/things', { headers: bearer(token), agent }).then((x) => x.status));
    await until('every target to serve again', () => targets.every((t, i) => t.seen.length > before[i]!), 3000);
    await after.stop();
  });
});
