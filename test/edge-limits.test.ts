// Token buckets and concurrency sandboxes as tenants see them, and isolation between tenants.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import { connect } from 'node:net';
import { policyDir, basePolicy, startWard, type WardProcess, type PolicyFiles } from './support/ward-process.js';
import { startUpstream, request, bearer, sendRaw, type TestUpstream } from './support/http.js';
import { signJwt, standardClaims } from './support/jwt.js';

let up: TestUpstream;
let pol: PolicyFiles;
let ward: WardProcess;
const tok = (tenant: string) => bearer(signJwt(pol.key, standardClaims(tenant)));

before(async () => {
  up = await startUpstream();
  up.handle = (req, res) => {
    const hold = Number(new URL(req.url!, 'http://x').searchParams.get('hold_ms') ?? 0);
    setTimeout(() => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{}');
    }, hold);
  };
  pol = policyDir();
  pol.write(
    basePolicy(up.url, {
      routes: [
        { name: 'calls', prefix: '/v1/calls', upstream: 'api', bucket: 'calls', concurrency: 'calls' },
        { name: 'trial', prefix: '/v1/trial', upstream: 'api', bucket: 'tiny', enforce: false },
        { name: 'trialpool', prefix: '/v1/pooltrial', upstream: 'api', concurrency: 'one', enforce: false },
        { name: 'api', prefix: '/v1/', upstream: 'api', bucket: 'api' },
      ],
      tenants: {
        '*': {
          buckets: { api: { rate: 5, per_s: 1, burst: 10 }, calls: { rate: 100, per_s: 1, burst: 100 }, tiny: { rate: 1, per_s: 60 } },
          concurrency: { calls: 3, one: 1 },
        },
        acme: { buckets: { api: { rate: 50, per_s: 1, burst: 20 } } },
      },
    }),
  );
  ward = await startWard(pol.dir);
});

after(async () => {
  await ward.stop();
  await up.close();
  pol.remove();
});

async function metric(name: string, labels: string): Promise<number> {
  const text = (await request(`${ward.admin}/metrics`)).body;
  const line = text.split('\n').find((l) => l.startsWith(`${name}{${labels}}`));
  return line ? Number(line.split(' ').at(-1)) : 0;
}

test('admits the burst, then answers 429 rate_limited with Retry-After and RateLimit headers', async () => {
  const h = tok('t-burst');
  const statuses: number[] = [];
  let refusal;
  for (let i = 0; i < 14; i++) {
    const r = await request(`${ward.base}/v1/x`, { headers: h });
    statuses.push(r.status);
    if (r.status === 429 && !refusal) refusal = r;
  }
  // burst 10 plus at most what 5/s refills during the loop.
  const ok = statuses.filter((s) => s === 200).length;
  assert.ok(ok >= 10 && ok <= 11, `admitted ${ok}: ${statuses}`);
  assert.ok(refusal, 'a 429 came');
  assert.deepEqual({ ...refusal.json(), request_id: 'x' }, { error: 'rate_limited', bucket: 'api', request_id: 'x' });
  const retry = Number(refusal.headers['retry-after']);
  assert.ok(Number.isInteger(retry) && retry >= 1, `Retry-After ${refusal.headers['retry-after']}`);
  assert.equal(refusal.headers['ratelimit-policy'], '"api";q=10;w=2');
  assert.match(String(refusal.headers['ratelimit']), /^"api";r=0;t=\d+$/);
});

test('a 429 reaches the client as one well-formed head: each header line once, then the JSON body', async () => {
  // ward writes a refusal's header lines as one prepared block (http-exchange.ts): the bytes on the
  // wire must still be the status line, one line per field, a blank line and the body.
  const h = tok('t-raw-429');
  for (let i = 0; i < 12; i++) await request(`${ward.base}/v1/x`, { headers: h });
  const raw = await sendRaw(ward.base, `GET /v1/x HTTP/1.1\r\nHost: x\r\nAuthorization: ${h.authorization}\r\nConnection: close\r\n\r\n`);
  const [head, body] = raw.split('\r\n\r\n');
  const lines = head!.split('\r\n');
  assert.equal(lines[0], 'HTTP/1.1 429 Too Many Requests');
  const names = lines.slice(1).map((l) => {
    assert.match(l, /^[A-Za-z][A-Za-z0-9-]*: \S/, `header line ${JSON.stringify(l)}`);
    return l.slice(0, l.indexOf(':')).toLowerCase();
  });
  for (const n of ['retry-after', 'ratelimit-policy', 'ratelimit', 'content-type', 'content-length']) {
    assert.equal(names.filter((x) => x === n).length, 1, `${n} once in ${JSON.stringify(names)}`);
  }
  assert.ok(lines.includes('content-type: application/json'), head);
  assert.ok(lines.includes('RateLimit-Policy: "api";q=10;w=2'), head);
  assert.equal(Number(lines.find((l) => l.toLowerCase().startsWith('content-length:'))!.split(': ')[1]), Buffer.byteLength(body!));
  const json = JSON.parse(body!);
  assert.equal(json.error, 'rate_limited');
  assert.equal(json.bucket, 'api');
  assert.match(json.request_id, /^[0-9a-z]+-[0-9a-z]+$/);
});

test('never admits more than burst + rate*t over an interval', async () => {
  const h = tok('t-bound');
  const start = Date.now();
  let ok = 0;
  while (Date.now() - start < 2000) {
    const r = await request(`${ward.base}/v1/x`, { headers: h });
    if (r.status === 200) ok++;
  }
  const t = (Date.now() - start) / 1000;
  assert.ok(ok <= 10 + 5 * t + 1, `admitted ${ok} in ${t}s, bound ${10 + 5 * t}`);
  assert.ok(ok >= 10 + 5 * (t - 0.5), `refill works: admitted ${ok} in ${t}s`);
});

test('a named tenant gets its own bucket, others keep the default', async () => {
  let acme = 0;
  for (let i = 0; i < 20; i++) if ((await request(`${ward.base}/v1/x`, { headers: tok('acme') })).status === 200) acme++;
  assert.equal(acme, 20, 'acme has burst 20');
});

function hold(path: string, headers: Record<string, string>): { done: Promise<number>; abort(): void } {
  let req!: ReturnType<typeof httpRequest>;
  const done = new Promise<number>((resolve) => {
    req = httpRequest(`${ward.base}${path}`, { method: 'GET', headers, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode!));
    });
    req.on('error', () => resolve(-1));
    req.end();
  });
  return { done, abort: () => req.destroy() };
}

async function waitFor(check: () => Promise<boolean>, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.fail('condition not met in time');
}

test('refuses the 4th concurrent call of a pool of 3 with 429 concurrency_limited, and frees the leases when calls end', async () => {
  const h = tok('t-pool');
  const held = [hold('/v1/calls?hold_ms=800', h), hold('/v1/calls?hold_ms=800', h), hold('/v1/calls?hold_ms=800', h)];
  await waitFor(async () => (await metric('ward_concurrency_in_use', 'tenant="t-pool",pool="calls"')) === 3);
  const r = await request(`${ward.base}/v1/calls`, { headers: h });
  assert.equal(r.status, 429);
  assert.equal(r.json().error, 'concurrency_limited');
  assert.equal(r.json().pool, 'calls');
  assert.deepEqual(await Promise.all(held.map((x) => x.done)), [200, 200, 200]);
  await waitFor(async () => (await metric('ward_concurrency_in_use', 'tenant="t-pool",pool="calls"')) === 0);
  assert.equal((await request(`${ward.base}/v1/calls`, { headers: h })).status, 200);
});

test('a client that hangs up mid-call frees its lease', async () => {
  const h = tok('t-abort');
  const held = [hold('/v1/calls?hold_ms=5000', h), hold('/v1/calls?hold_ms=5000', h), hold('/v1/calls?hold_ms=5000', h)];
  await waitFor(async () => (await metric('ward_concurrency_in_use', 'tenant="t-abort",pool="calls"')) === 3);
  for (const x of held) x.abort();
  await waitFor(async () => (await metric('ward_concurrency_in_use', 'tenant="t-abort",pool="calls"')) === 0);
  assert.equal((await request(`${ward.base}/v1/calls`, { headers: h })).status, 200);
});

test('a client gone before its admission is decided frees the lease it was granted (fresh tokens, pipelined requests)', async () => {
  // A token's first use is verified asynchronously. uWS closes a connection whose next request
  // arrives while a response is pending (no pipelining with asynchronous answers), so the first
  // request is aborted before its grant arrives: that grant's lease must come back, every time.
  for (let i = 0; i < 6; i++) {
    const auth = `authorization: Bearer ${signJwt(pol.key, standardClaims('t-early', { jti: `early-${i}` }))}\r\n`;
    const req = `GET /v1/calls HTTP/1.1\r\nhost: x\r\n${auth}\r\n`;
    await sendRaw(ward.base, req + req);
  }
  await waitFor(async () => (await metric('ward_concurrency_in_use', 'tenant="t-early",pool="calls"')) === 0);
  assert.ok((await metric('ward_requests_total', 'tenant="t-early",route="calls",outcome="client_aborted"')) >= 6);
  // The pool (3) admits three held calls at once: none of its leases was kept by a gone client.
  const h = tok('t-early');
  const held = [hold('/v1/calls?hold_ms=300', h), hold('/v1/calls?hold_ms=300', h), hold('/v1/calls?hold_ms=300', h)];
  assert.deepEqual(await Promise.all(held.map((x) => x.done)), [200, 200, 200]);
});

test('one tenant exhausting its bucket and pool does not change another tenant’s answers', async () => {
  const noisy = tok('noisy');
  const quiet = tok('quiet');
  const held = [hold('/v1/calls?hold_ms=1000', noisy), hold('/v1/calls?hold_ms=1000', noisy), hold('/v1/calls?hold_ms=1000', noisy)];
  await waitFor(async () => (await metric('ward_concurrency_in_use', 'tenant="noisy",pool="calls"')) === 3);
  const noisyAnswers = await Promise.all(Array.from({ length: 30 }, () => request(`${ward.base}/v1/x`, { headers: noisy })));
  assert.ok(noisyAnswers.filter((r) => r.status === 429).length >= 15, 'noisy is limited');
  assert.equal((await request(`${ward.base}/v1/calls`, { headers: noisy })).status, 429);
  // The quiet tenant still gets its whole burst and its whole pool.
  const quietAnswers = await Promise.all(Array.from({ length: 10 }, () => request(`${ward.base}/v1/x`, { headers: quiet })));
  assert.deepEqual(quietAnswers.map((r) => r.status), Array(10).fill(200));
  const quietCalls = [hold('/v1/calls?hold_ms=300', quiet), hold('/v1/calls?hold_ms=300', quiet), hold('/v1/calls?hold_ms=300', quiet)];
  assert.deepEqual(await Promise.all(quietCalls.map((x) => x.done)), [200, 200, 200]);
  await Promise.all(held.map((x) => x.done));
});

test('shadow mode (enforce: false) refuses nothing and counts what it would have refused', async () => {
  const h = tok('t-shadow');
  const answers = await Promise.all(Array.from({ length: 3 }, () => request(`${ward.base}/v1/trial`, { headers: h })));
  assert.deepEqual(answers.map((r) => r.status), [200, 200, 200]);
  assert.equal(await metric('ward_shadow_refusals_total', 'rule="route:trial",reason="rate_limited"'), 2);
  const a = hold('/v1/pooltrial?hold_ms=500', h);
  await waitFor(async () => (await metric('ward_concurrency_in_use', 'tenant="t-shadow",pool="one"')) === 1);
  assert.equal((await request(`${ward.base}/v1/pooltrial`, { headers: h })).status, 200);
  assert.equal(await a.done, 200);
  assert.equal(await metric('ward_shadow_refusals_total', 'rule="route:trialpool",reason="concurrency_limited"'), 1);
});

test('ward_requests_total counts outcomes per tenant and route', async () => {
  assert.ok((await metric('ward_requests_total', 'tenant="t-burst",route="api",outcome="rate_limited"')) >= 3);
  assert.ok((await metric('ward_requests_total', 'tenant="t-burst",route="api",outcome="ok"')) >= 10);
  assert.ok((await metric('ward_requests_total', 'tenant="t-pool",route="calls",outcome="concurrency_limited"')) >= 1);
});

test('clients that hang up right after a request ward refuses: nothing is written to them, ward keeps answering', async () => {
  // Bodiless refusals are written at the end of the event-loop turn (answerAfterTurn), when the
  // client may already be gone: whether ward sees the reset before the turn's answers are written
  // (the answer is skipped) or after (the write fails in the kernel), nothing may throw.
  const h = tok('t-hangup');
  for (let i = 0; i < 12; i++) await request(`${ward.base}/v1/x`, { headers: h }); // spend the bucket
  const port = Number(new URL(ward.base).port);
  for (let i = 0; i < 60; i++) {
    await new Promise<void>((resolve) => {
      const s = connect(port, '127.0.0.1', () => {
        s.write(`GET /v1/x HTTP/1.1\r\nHost: x\r\nAuthorization: ${h.authorization}\r\n\r\n`);
        s.resetAndDestroy();
      });
      s.on('error', () => undefined);
      s.on('close', () => resolve());
    });
  }
  const r = await request(`${ward.base}/v1/x`, { headers: h });
  assert.equal(r.status, 429);
  assert.equal(r.json().error, 'rate_limited');
  assert.equal((await request(`${ward.base}/v1/x`, { headers: tok('t-hangup-other') })).status, 200);
  assert.deepEqual(ward.logs.filter((l) => l.includes('uncaught error')), [], 'no write to a gone client was attempted');
});
