// flood.refusal_pace as tenants see it: a tenant refused faster than the pace gets the rest of its
// 429s later, at the pace, while other tenants' answers (and their own 429s) do not wait for it.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { policyDir, basePolicy, startWard, type WardProcess, type PolicyFiles } from './support/ward-process.js';
import { startUpstream, request, bearer, type TestUpstream } from './support/http.js';
import { signJwt, standardClaims } from './support/jwt.js';
import { startRedis } from './support/redis-server.js';

let up: TestUpstream;
let pol: PolicyFiles;
let ward: WardProcess;
const tok = (tenant: string) => bearer(signJwt(pol.key, standardClaims(tenant)));

/** Every tenant may make 2 calls a minute: past that, every request is refused. */
const policy = (pace: unknown) =>
  basePolicy(up.url, {
    flood: { max_body_bytes: 65536, refusal_pace: pace },
    tenants: { '*': { buckets: { api: { rate: 2, per_s: 60, burst: 2 }, calls: { rate: 1000, per_s: 1, burst: 1000 } }, concurrency: { calls: 5 } } },
  });
const PACE = { rate: 20, per_s: 1, burst: 5, max_waiting: 30 };

before(async () => {
  up = await startUpstream();
  pol = policyDir();
  pol.write(policy(PACE));
  ward = await startWard(pol.dir);
});

after(async () => {
  await ward?.stop();
  await up.close();
  pol.remove();
});

async function metric(w: WardProcess, labels: string): Promise<number> {
  const text = (await request(`${w.admin}/metrics`)).body;
  const line = text.split('\n').find((l) => l.startsWith(`ward_refusals_paced_total{${labels}}`));
  return line ? Number(line.split(' ').at(-1)) : 0;
}

interface Answer {
  readonly status: number;
  readonly error?: string;
  /** ms after the burst was sent. */
  readonly at: number;
}

/** n requests of one tenant at once, each on its own connection. */
async function burst(w: WardProcess, tenant: string, n: number, t0 = performance.now(), key = pol.key): Promise<Answer[]> {
  const h = bearer(signJwt(key, standardClaims(tenant)));
  return Promise.all(
    Array.from({ length: n }, () =>
      request(`${w.base}/v1/x`, { headers: h }).then((r) => ({ status: r.status, error: r.status === 429 ? r.json().error : undefined, at: performance.now() - t0 })),
    ),
  );
}

test('a tenant refused faster than its pace gets the rest of its 429s at the pace; other tenants do not wait', async () => {
  const waitedBefore = await metric(ward, 'result="waited"');
  const t0 = performance.now();
  const noisy = burst(ward, 'noisy', 32, t0);
  await new Promise((r) => setTimeout(r, 150));
  // While the noisy tenant's refusals wait: another tenant's calls are answered, and its own 429s too.
  const otherStart = performance.now() - t0;
  const other = await burst(ward, 'quiet', 4);
  const otherDone = performance.now() - t0;
  const answers = await noisy;

  assert.equal(answers.filter((a) => a.status === 200).length, 2);
  const refused = answers.filter((a) => a.status === 429);
  assert.equal(refused.length, 30, JSON.stringify(answers));
  assert.ok(refused.every((a) => a.error === 'rate_limited'));
  const times = refused.map((a) => a.at).sort((a, b) => a - b);
  // 5 within the burst at once; the other 25 at 20 a second: the last about 1.25 s later.
  assert.ok(times[4]! < 700, `the burst's refusals took ${times[4]!.toFixed(0)} ms`);
  assert.ok(times.at(-1)! > 900, `the last refusal came after ${times.at(-1)!.toFixed(0)} ms: not paced`);
  assert.ok(times.at(-1)! < 5000, `the last refusal came after ${times.at(-1)!.toFixed(0)} ms`);
  assert.ok((await metric(ward, 'result="waited"')) - waitedBefore >= 20, 'waiting refusals are counted');

  assert.deepEqual(other.map((a) => a.status).sort(), [200, 200, 429, 429]);
  assert.ok(otherDone - otherStart < 700, `the other tenant waited ${(otherDone - otherStart).toFixed(0)} ms`);
  assert.ok(otherDone < times.at(-1)!, 'the other tenant was answered while the noisy one still waited');
});

test('past max_waiting refusals are answered at once and counted as overflow', async () => {
  const overflowBefore = await metric(ward, 'result="overflow"');
  const answers = await burst(ward, 'overflowing', 62);
  const refused = answers.filter((a) => a.status === 429);
  assert.equal(refused.length, 60);
  // 5 in the burst + at most 30 waiting: the other ~25 are answered at once.
  const quick = refused.filter((a) => a.at < 800).length;
  assert.ok(quick >= 25, `${quick} refusals within 800 ms`);
  assert.ok((await metric(ward, 'result="overflow"')) - overflowBefore >= 20, 'overflow is counted');
});

test('a client that leaves while its refusal waits is skipped; the others still get theirs', async () => {
  const h = tok('leaving');
  const port = Number(new URL(ward.base).port);
  const raw = `GET /v1/x HTTP/1.1\r\nHost: x\r\nAuthorization: ${h.authorization}\r\n\r\n`;
  // 2 admitted, 5 at once, 13 waiting; 8 of the waiting clients hang up.
  const sockets = Array.from({ length: 20 }, () => {
    const s = connect(port, '127.0.0.1', () => s.write(raw));
    let got = '';
    s.setEncoding('latin1');
    s.on('data', (d: string) => (got += d));
    s.on('error', () => {});
    return { s, got: () => got };
  });
  await new Promise((r) => setTimeout(r, 100));
  const waiting = sockets.filter((x) => x.got() === '');
  assert.ok(waiting.length >= 10, `${waiting.length} still waiting`);
  for (const x of waiting.slice(0, 8)) x.s.destroy();
  const rest = waiting.slice(8);
  const deadline = Date.now() + 3000;
  while (rest.some((x) => !x.got().includes('"rate_limited"')) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  for (const x of rest) assert.match(x.got(), /^HTTP\/1\.1 429 /);
  for (const x of sockets) x.s.destroy();
  // ward keeps serving and logged no fault.
  assert.equal((await request(`${ward.base}/v1/x`, { headers: tok('after-leaving') })).status, 200);
  assert.ok(!ward.logs.some((l) => /answer fault|uncaught|"level":50/.test(l)), ward.logs.filter((l) => /"level":5/.test(l)).join('\n'));
});

test('a draining ward answers every waiting refusal at once', async () => {
  const p2 = policyDir();
  p2.write({ ...policy({ rate: 1, per_s: 1, burst: 2, max_waiting: 100 }) });
  const w2 = await startWard(p2.dir);
  try {
    const t0 = performance.now();
    const answers = burst(w2, 'draining', 12, t0, p2.key);
    await new Promise((r) => setTimeout(r, 300));
    const stopAt = performance.now() - t0;
    const exited = w2.stop('SIGTERM');
    const got = await answers;
    // 2 admitted, 2 at once, 8 waiting at 1 a second: without the drain the last would take 8 s.
    assert.equal(got.filter((a) => a.status === 429).length, 10, JSON.stringify(got));
    const last = Math.max(...got.map((a) => a.at));
    assert.ok(last - stopAt < 1500, `the last refusal came ${(last - stopAt).toFixed(0)} ms after SIGTERM`);
    assert.equal(await exited, 0);
  } finally {
    await w2.stop();
    p2.remove();
  }
});

test('a live edit to refusal_pace: false answers every refusal at once', async () => {
  const from = ward.logs.length;
  pol.write(policy(false));
  const deadline = Date.now() + 10_000;
  while (!ward.logs.slice(from).some((l) => l.includes('policy reloaded'))) {
    assert.ok(Date.now() < deadline, 'the edit was not reloaded');
    await new Promise((r) => setTimeout(r, 20));
  }
  const answers = await burst(ward, 'unpaced', 32);
  const refused = answers.filter((a) => a.status === 429);
  assert.equal(refused.length, 30);
  const last = Math.max(...refused.map((a) => a.at));
  assert.ok(last < 700, `with pacing off the last refusal came after ${last.toFixed(0)} ms`);
});

test('with a Redis store (refusals decided after a round trip) a tenant past its pace waits too, and a drain still answers it', async () => {
  const redis = await startRedis();
  const p3 = policyDir();
  try {
    p3.write({ ...policy({ rate: 10, per_s: 1, burst: 3, max_waiting: 100 }), store: { kind: 'redis', url: redis.url, prefix: 'ward:', command_timeout_ms: 2000 } });
    const w3 = await startWard(p3.dir);
    try {
      const t0 = performance.now();
      const answers = await burst(w3, 'redis-noisy', 15, t0, p3.key);
      const refused = answers.filter((a) => a.status === 429).map((a) => a.at).sort((a, b) => a - b);
      assert.equal(refused.length, 13, JSON.stringify(answers));
      // 3 at once, 10 at 10 a second: the last about a second later.
      assert.ok(refused.at(-1)! > 700, `the last refusal came after ${refused.at(-1)!.toFixed(0)} ms: not paced`);
      assert.ok((await metric(w3, 'result="waited"')) >= 8);
      // Refusals waiting when the drain starts are answered at once; ward exits 0.
      const t1 = performance.now();
      const more = burst(w3, 'redis-noisy', 30, t1, p3.key); // ~3 s at the pace
      await new Promise((r) => setTimeout(r, 200));
      const stopAt = performance.now() - t1;
      const exited = w3.stop('SIGTERM');
      const got = await more;
      assert.equal(got.filter((a) => a.status === 429).length, 30);
      assert.ok(Math.max(...got.map((a) => a.at)) - stopAt < 1500);
      assert.equal(await exited, 0);
    } finally {
      await w3.stop();
    }
  } finally {
    p3.remove();
    await redis.stop();
  }
});
