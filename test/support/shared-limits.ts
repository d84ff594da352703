// The two checks every shared-store topology must pass (standalone Redis and Redis Cluster):
// one token bucket and one concurrency pool for a tenant across every ward instance.

import assert from 'node:assert/strict';
import { Agent } from 'node:http';
import { request, type Reply } from './http.js';
import { eventually, hammer, metric, type HoldingUpstream } from './load.js';

/** Hammers `bases` at once for `ms` with one tenant's token on a bucket of `burst` and `rate`/s:
 * the tenant gets at most burst + rate·t (within 5 %) over the t seconds, and close to it (at
 * least 90 % of what the bucket had to give while requests kept coming), with every instance
 * refusing some of it. Returns, per instance, what it admitted
 * and how many answers it gave. */
export async function assertGlobalBucket(
  bases: readonly string[],
  path: string,
  headers: Record<string, string>,
  bucket: { burst: number; rate: number },
  ms: number,
): Promise<{ admitted: number[]; answered: number[]; detail: string }> {
  const { perTarget, seconds, sendSeconds } = await hammer(bases, path, headers, ms);
  const admitted = perTarget.map((r) => r.ok());
  const ok = admitted.reduce((a, b) => a + b, 0);
  const bound = bucket.burst + bucket.rate * seconds;
  // What the bucket surely had to give while requests kept arriving.
  const floor = bucket.burst + bucket.rate * sendSeconds;
  const detail = `admitted ${ok} (${admitted.join(' + ')}) in ${seconds.toFixed(2)} s (sending for ${sendSeconds.toFixed(2)} s); ` +
    `the bucket allows ${bound.toFixed(1)}; ` +
    `answers ${perTarget.map((r) => JSON.stringify([...r.statuses]) + (r.errors.length ? ` errors ${r.errors.slice(0, 3)}` : '')).join(' | ')}`;
  for (const r of perTarget) {
    assert.equal(r.errors.length, 0, detail);
    assert.equal(r.ok() + r.count(429), r.total(), `only 200 and 429: ${detail}`);
    assert.ok(r.count(429) > 0, `every instance refused some: ${detail}`);
  }
  assert.ok(ok <= bound * 1.05, `over the global bound: ${detail}`);
  assert.ok(ok >= floor * 0.9, `well under the global bound: ${detail}`);
  return { admitted, answered: perTarget.map((r) => r.total()), detail };
}

/** Sends `perBase` held requests of one tenant to each instance at once (pool of `limit`):
 * exactly `limit` reach the upstream, the rest are 429 concurrency_limited, every instance's
 * ward_concurrency_in_use shows `limit`; after the release, every one shows 0. */
export async function assertGlobalPool(
  bases: readonly string[],
  admins: readonly string[],
  up: HoldingUpstream,
  tenant: string,
  headers: Record<string, string>,
  limit: number,
  perBase: number,
): Promise<void> {
  const agents: Agent[] = [];
  const answers: Promise<Reply>[] = [];
  for (const base of bases) {
    for (let i = 0; i < perBase; i++) {
      const agent = new Agent({ keepAlive: false });
      agents.push(agent);
      answers.push(request(`${base}/v1/calls?hold=1`, { headers, agent }));
    }
  }
  const refused: Reply[] = [];
  for (const a of answers) void a.then((r) => r.status !== 200 && refused.push(r), () => undefined);
  const total = bases.length * perBase;
  await eventually('every over-limit call refused', async () => (refused.length >= total - limit ? true : undefined), 10_000, 20);
  // The admitted calls reach the upstream (on a loaded machine, a Redis round trip and a fresh
  // upstream connection can take a while after the last refusal); then any wrongly admitted one
  // gets time to arrive too before counting.
  await eventually('the admitted calls reach the upstream', async () => (up.held(tenant) >= limit ? true : undefined), 10_000, 20);
  await new Promise((r) => setTimeout(r, 200));
  assert.equal(up.held(tenant), limit, `calls in flight at the upstream`);
  assert.equal(refused.length, total - limit);
  for (const r of refused) {
    assert.equal(r.status, 429);
    assert.equal(r.json().error, 'concurrency_limited');
  }
  for (const admin of admins) {
    assert.equal(await metric(admin, 'ward_concurrency_in_use', `tenant="${tenant}",pool="calls"`), limit, `in use as seen by ${admin}`);
  }
  up.release(tenant);
  const statuses = (await Promise.all(answers)).map((r) => r.status);
  assert.equal(statuses.filter((s) => s === 200).length, limit, String(statuses));
  for (const admin of admins) {
    await eventually(`${admin} sees the pool empty`, async () =>
      (await metric(admin, 'ward_concurrency_in_use', `tenant="${tenant}",pool="calls"`)) === 0 ? true : undefined, 5000);
  }
  for (const a of agents) a.destroy();
}
