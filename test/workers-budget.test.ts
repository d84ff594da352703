// `ward serve --workers 2` with the memory store: two listener threads on one port, one budget.
// Connections are spread over the threads by the kernel, so each thread sees part of the load;
// the bucket and the pool still hold for the tenant as a whole.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Agent } from 'node:http';
import { policyDir, basePolicy, startWard, type WardProcess, type PolicyFiles } from './support/ward-process.js';
import { startUpstream, request, bearer, type TestUpstream } from './support/http.js';
import { signJwt, standardClaims } from './support/jwt.js';

let up: TestUpstream;
let pol: PolicyFiles;
let ward: WardProcess;

before(async () => {
  up = await startUpstream();
  up.handle = (req, res) => {
    const hold = Number(new URL(req.url!, 'http://x').searchParams.get('hold_ms') ?? 0);
    setTimeout(() => res.end('{}'), hold);
  };
  pol = policyDir();
  pol.write(
    basePolicy(up.url, {
      routes: [
        { name: 'calls', prefix: '/v1/calls', upstream: 'api', concurrency: 'calls' },
        { name: 'api', prefix: '/v1/', upstream: 'api', bucket: 'api' },
      ],
      tenants: { '*': { buckets: { api: { rate: 20, per_s: 1, burst: 50 } }, concurrency: { calls: 6 } } },
    }),
  );
  ward = await startWard(pol.dir, { workers: 2 });
});

after(async () => {
  await ward.stop();
  await up.close();
  pol.remove();
});

test('starts two listener threads on one port', () => {
  const line = ward.logs.find((l) => l.includes('"msg":"listening"'))!;
  assert.equal(JSON.parse(line).workers, 2);
});

test('one bucket across both threads: at most burst + rate*t admitted', async () => {
  const h = bearer(signJwt(pol.key, standardClaims('shared')));
  // Many short connections: the kernel spreads them over both threads' listen sockets.
  const start = Date.now();
  let ok = 0;
  let total = 0;
  while (Date.now() - start < 1500) {
    const batch = await Promise.all(Array.from({ length: 20 }, () => request(`${ward.base}/v1/x`, { headers: h })));
    total += batch.length;
    ok += batch.filter((r) => r.status === 200).length;
  }
  const t = (Date.now() - start) / 1000;
  assert.ok(total > 150, `offered ${total}`);
  assert.ok(ok <= 50 + 20 * t + 1, `admitted ${ok} in ${t.toFixed(2)} s; one budget allows ${50 + 20 * t}`);
  assert.ok(ok >= 50, `admitted ${ok}: the burst is available`);
});

test('one pool across both threads: exactly 6 of 12 concurrent calls admitted', async () => {
  const h = bearer(signJwt(pol.key, standardClaims('pool')));
  const agents = Array.from({ length: 12 }, () => new Agent({ keepAlive: false }));
  const answers = await Promise.all(agents.map((agent) => request(`${ward.base}/v1/calls?hold_ms=1500`, { headers: h, agent })));
  const statuses = answers.map((r) => r.status).sort();
  assert.equal(statuses.filter((s) => s === 200).length, 6, String(statuses));
  assert.equal(statuses.filter((s) => s === 429).length, 6, String(statuses));
});

test('metrics sum both threads', async () => {
  const text = (await request(`${ward.admin}/metrics`)).body;
  const line = text.split('\n').find((l) => l.startsWith('ward_requests_total{tenant="pool",route="calls",outcome="ok"}'));
  assert.equal(Number(line?.split(' ').at(-1)), 6);
});
