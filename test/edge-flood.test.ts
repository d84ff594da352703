// The flood stage seen from outside: deny-listed and banned sources get their connection closed
// with no answer, allow-listed ones are never banned, shadow mode drops nothing but counts, and
// bodies over max_body_bytes get 413 without reaching the upstream. Different sources are real
// loopback addresses (127.0.0.x, bound with localAddress); Linux routes all of 127/8 to lo.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { policyDir, basePolicy, startWard, type PolicyFiles, type WardProcess, stopAll } from './support/ward-process.js';
import { startUpstream, request, bearer, sendRaw, type TestUpstream } from './support/http.js';
import { signJwt, standardClaims } from './support/jwt.js';
import { metric } from './support/observe.js';

/** Sum of the samples of `name` whose labels include all of `labels` (0 when none). */
async function metrics(w: WardProcess): Promise<string> {
  return (await request(w.admin + '/metrics')).body;
}

/** 'dropped' when the connection was closed with no HTTP answer, else the status. */
async function attempt(url: string, localAddress: string): Promise<number | 'dropped'> {
  try {
    return (await request(url, { localAddress })).status;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    assert.ok(code === 'ECONNRESET' || code === 'EPIPE', `expected a closed connection, got ${String(err)}`);
    return 'dropped';
  }
}

/** Streams a chunked body of `total` bytes in 16 KiB pieces; what the client saw in the end. */
function chunkedUpload(url: string, token: string, total = 200_000): Promise<{ status?: number; body?: string; error?: string }> {
  return new Promise((resolve) => {
    const req = httpRequest(url, { method: 'POST', agent: false, headers: { ...bearer(token), 'transfer-encoding': 'chunked' } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode, body }));
      res.on('error', (e: NodeJS.ErrnoException) => resolve({ status: res.statusCode, body, error: e.code ?? e.message }));
    });
    req.on('error', (e: NodeJS.ErrnoException) => resolve({ error: e.code ?? String(e) }));
    // A response left hanging is a failure to see, not a test that never ends.
    const hang = setTimeout(() => (req.destroy(), resolve({ error: 'no end within 8 s' })), 8000);
    req.on('close', () => clearTimeout(hang));
    let sent = 0;
    const pump = () => {
      if (req.destroyed) return;
      if (sent >= total) return void req.end();
      req.write(Buffer.alloc(16384, 121));
      sent += 16384;
      setTimeout(pump, 10);
    };
    pump();
  });
}

// A slow rate (3 per 10 s), so a burst is over it however slowly a loaded machine sends it. Three
// admitted requests leave 10 s of debt against 6.7 s of tolerance; ban_s (4 s) outlasts the 3.3 s
// difference, so the address is served again as soon as its ban ends.
const PER_IP = { rate: 3, per_s: 10, ban_s: 4 };

describe('flood rules, enforced', () => {
  let up: TestUpstream;
  let p: PolicyFiles;
  let w: WardProcess;

  before(async () => {
    up = await startUpstream();
    p = policyDir();
    p.write(basePolicy(up.url, { flood: { per_ip: PER_IP, max_body_bytes: 65536, deny: ['127.0.0.2/32', '127.0.9.0/24'], allow: ['127.0.0.5/32'] } }));
    w = await startWard(p.dir);
  });
  after(() => stopAll(w, up, p));

  it('closes a deny-listed source’s connection with no answer; the upstream never sees it', async () => {
    const seenBefore = up.seen.length;
    assert.equal(await attempt(w.base + '/v1/status', '127.0.0.2'), 'dropped');
    assert.equal(await attempt(w.base + '/v1/status', '127.0.9.77'), 'dropped');
    assert.equal(up.seen.length, seenBefore);
    assert.equal(await attempt(w.base + '/v1/status', '127.0.0.10'), 200);
    const m = await metrics(w);
    assert.ok(metric(m, 'ward_dropped_total', { reason: 'denied' }) >= 2, m);
  });

  it('bans an address over per_ip for ban_s, leaves other addresses alone, then lets it back in', async () => {
    const started = Date.now();
    // 10 at once from one address: at most rate (3) pass, the rest are dropped.
    const burst = await Promise.all(Array.from({ length: 10 }, () => attempt(w.base + '/v1/status', '127.0.0.3')));
    const passed = burst.filter((r) => r === 200).length;
    assert.ok(passed >= 1 && passed <= PER_IP.rate, `passed ${passed}: ${burst.join(',')}`);
    assert.ok(burst.every((r) => r === 200 || r === 'dropped'), burst.join(','));
    // Banned now: even a single, slow request is dropped.
    assert.equal(await attempt(w.base + '/v1/status', '127.0.0.3'), 'dropped');
    // Another address is not affected while the first one is banned.
    assert.equal(await attempt(w.base + '/v1/status', '127.0.0.4'), 200);
    const m = await metrics(w);
    assert.ok(metric(m, 'ward_dropped_total', { reason: 'flooding' }) >= 1, m);
    assert.ok(metric(m, 'ward_dropped_total', { reason: 'banned' }) >= 1, m);
    assert.ok(Date.now() - started < PER_IP.ban_s * 1000, 'the machine is too slow for this test’s ban window');
    // After ban_s the address is served again.
    await sleep(started + PER_IP.ban_s * 1000 + 800 - Date.now());
    assert.equal(await attempt(w.base + '/v1/status', '127.0.0.3'), 200);
  });

  it('never bans an allow-listed address', async () => {
    for (let round = 0; round < 2; round++) {
      const burst = await Promise.all(Array.from({ length: 12 }, () => attempt(w.base + '/v1/status', '127.0.0.5')));
      assert.deepEqual(burst, Array(12).fill(200));
    }
  });
});

describe('flood rules in shadow mode (flood.enforce: false)', () => {
  let up: TestUpstream;
  let p: PolicyFiles;
  let w: WardProcess;

  before(async () => {
    up = await startUpstream();
    p = policyDir();
    p.write(basePolicy(up.url, { flood: { per_ip: PER_IP, deny: ['127.0.0.2/32'], enforce: false } }));
    w = await startWard(p.dir);
  });
  after(() => stopAll(w, up, p));

  it('drops nothing and counts what it would have dropped', async () => {
    assert.equal(await attempt(w.base + '/v1/status', '127.0.0.2'), 200);
    const burst = await Promise.all(Array.from({ length: 10 }, () => attempt(w.base + '/v1/status', '127.0.0.3')));
    assert.deepEqual(burst, Array(10).fill(200));
    assert.equal(await attempt(w.base + '/v1/status', '127.0.0.3'), 200);
    const m = await metrics(w);
    assert.ok(metric(m, 'ward_shadow_refusals_total', { rule: 'flood', reason: 'denied' }) >= 1, m);
    assert.ok(metric(m, 'ward_shadow_refusals_total', { rule: 'flood', reason: 'flooding' }) >= 1, m);
    assert.equal(metric(m, 'ward_dropped_total'), 0, m);
  });
});

describe('body size limit', () => {
  let up: TestUpstream;
  let p: PolicyFiles;
  let w: WardProcess;
  let token: string;
  /** Requests the upstream started to receive, and whether each was cut off before its end. */
  const started: Array<{ url: string; aborted: boolean; bytes: number }> = [];

  before(async () => {
    up = await startUpstream();
    up.server.prependListener('request', (req: IncomingMessage, res: ServerResponse) => {
      const rec = { url: req.url!, aborted: false, bytes: 0 };
      started.push(rec);
      req.on('data', (c: Buffer) => (rec.bytes += c.length));
      req.on('close', () => (rec.aborted = !req.complete));
      // This one answers before it has read the body.
      if (req.url === '/v1/early') {
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.write('partial ');
      }
    });
    p = policyDir();
    p.write(basePolicy(up.url)); // max_body_bytes: 65536
    w = await startWard(p.dir);
    token = signJwt(p.key, standardClaims('acme'));
  });
  after(() => stopAll(w, up, p));

  it('answers 413 body_too_large to a Content-Length over the limit; the upstream never sees it', async () => {
    const before = started.length;
    const r = await request(w.base + '/v1/calls', { method: 'POST', headers: bearer(token), body: Buffer.alloc(65537, 120) });
    assert.equal(r.status, 413);
    const j = r.json();
    assert.equal(j.error, 'body_too_large');
    assert.match(j.request_id, /\S+/);
    assert.equal(started.length, before);
    // A body at the limit passes.
    const ok = await request(w.base + '/v1/calls', { method: 'POST', headers: bearer(token), body: Buffer.alloc(65536, 120) });
    assert.equal(ok.status, 200);
    assert.equal(ok.json().body_bytes, 65536);
  });

  it('refuses a chunked body that outgrows the limit, aborts the upstream request and frees the lease', async () => {
    const before = started.length;
    const outcome = await chunkedUpload(w.base + '/v1/calls', token);
    if (outcome.status !== undefined) {
      assert.equal(outcome.status, 413, JSON.stringify(outcome));
      assert.equal(JSON.parse(outcome.body!).error, 'body_too_large');
    } else {
      // The contract allows a closed connection once a response could not be sent whole.
      assert.ok(outcome.error === 'ECONNRESET' || outcome.error === 'EPIPE', JSON.stringify(outcome));
    }
    // The upstream had started receiving the body and saw its request cut off, short of the end.
    const deadline = Date.now() + 3000;
    while (Date.now() < deadline && !(started.length > before && started[before]!.aborted)) await sleep(25);
    assert.ok(started.length > before, 'the upstream never saw the request start');
    assert.equal(started[before]!.aborted, true);
    assert.ok(started[before]!.bytes <= 65536, `upstream got ${started[before]!.bytes} bytes`);
    const m = await metrics(w);
    assert.equal(metric(m, 'ward_concurrency_in_use', { tenant: 'acme', pool: 'calls' }), 0, m);
  });

  it('refuses a chunked body that outgrows the limit before its token is verified; nothing reaches the upstream, no lease is kept', async () => {
    // A token's first use is verified asynchronously; the whole oversized body is already here by
    // then. The 413 ends the request, and the grant that arrives afterwards must not start an
    // upstream call or keep its lease.
    const before = started.length;
    const fresh = signJwt(p.key, standardClaims('acme', { jti: 'oversized-early' }));
    const body = Buffer.alloc(70_000, 122);
    const raw = Buffer.concat([
      Buffer.from(`POST /v1/calls HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ${fresh}\r\ntransfer-encoding: chunked\r\n\r\n${body.length.toString(16)}\r\n`),
      body,
      Buffer.from('\r\n0\r\n\r\n'),
    ]);
    const answer = await sendRaw(w.base, raw, 5000);
    assert.match(answer, /^HTTP\/1\.1 413 /);
    assert.match(answer, /"error":"body_too_large"/);
    await sleep(300);
    assert.equal(started.length, before, 'the upstream saw a request ward had refused');
    const m = await metrics(w);
    assert.equal(metric(m, 'ward_concurrency_in_use', { tenant: 'acme', pool: 'calls' }), 0, m);
  });

  it('cuts the response when a chunked body outgrows the limit after the upstream answered', async () => {
    const before = started.length;
    const t0 = Date.now();
    const outcome = await chunkedUpload(w.base + '/v1/early', token);
    // The head went out before the body was too large: too late for a 413, so the connection is
    // closed (the client sees a truncated response), promptly rather than at some idle timeout.
    assert.equal(outcome.status, 200, JSON.stringify(outcome));
    assert.ok(outcome.error === 'aborted' || outcome.error === 'ECONNRESET', JSON.stringify(outcome));
    assert.ok(Date.now() - t0 < 5000, `took ${Date.now() - t0} ms`);
    assert.ok(started.length > before && started[before]!.url === '/v1/early');
    assert.ok(started[before]!.bytes <= 65536, `upstream got ${started[before]!.bytes} bytes`);
    const m = await metrics(w);
    assert.ok(metric(m, 'ward_requests_total', { tenant: 'acme', route: 'api', outcome: 'body_too_large' }) >= 1, m);
    assert.equal(metric(m, 'ward_concurrency_in_use', { tenant: 'acme', pool: 'calls' }), 0, m);
  });
});

describe('flood rules with two listener threads', () => {
  let up: TestUpstream;
  let p: PolicyFiles;
  let w: WardProcess;

  before(async () => {
    up = await startUpstream();
    p = policyDir();
    p.write(basePolicy(up.url, { flood: { per_ip: PER_IP, deny: ['127.0.0.2/32'] } }));
    w = await startWard(p.dir, { workers: 2 });
  });
  after(() => stopAll(w, up, p));

  it('shares one per-address budget and one ban list across threads', async () => {
    // Connections are spread over both threads by the kernel; per-thread budgets would let up to
    // 2 × rate through, one shared budget at most rate.
    const burst = await Promise.all(Array.from({ length: 20 }, () => attempt(w.base + '/v1/status', '127.0.0.3')));
    const passed = burst.filter((r) => r === 200).length;
    assert.ok(passed >= 1 && passed <= PER_IP.rate, `passed ${passed}: ${burst.join(',')}`);
    for (let i = 0; i < 6; i++) assert.equal(await attempt(w.base + '/v1/status', '127.0.0.3'), 'dropped');
    for (let i = 0; i < 6; i++) assert.equal(await attempt(w.base + '/v1/status', '127.0.0.2'), 'dropped');
    assert.equal(await attempt(w.base + '/v1/status', '127.0.0.4'), 200);
    const m = await metrics(w);
    // Drops counted by both threads add up in one /metrics.
    assert.equal(metric(m, 'ward_dropped_total', { reason: 'denied' }), 6, m);
    assert.equal(metric(m, 'ward_dropped_total'), 20 - passed + 12, m);
  });
});

describe('IPv6 deny list', () => {
  let up: TestUpstream;
  let p: PolicyFiles;
  let w: WardProcess;

  before(async () => {
    up = await startUpstream();
    p = policyDir();
    // "::" is dual-stack: IPv4 clients arrive as ::ffff:a.b.c.d and still match IPv4 rules.
    p.write(basePolicy(up.url, { listen: { host: '::', port: 0 }, flood: { deny: ['::1/128', '127.0.0.2/32'] } }));
    w = await startWard(p.dir);
  });
  after(() => stopAll(w, up, p));

  it('drops a source in an IPv6 CIDR, and IPv4 rules still hold on a dual-stack listener', async () => {
    const v6 = `http://[::1]:${w.port}/v1/status`;
    assert.equal(await attempt(v6, '::1'), 'dropped');
    assert.equal(await attempt(w.base + '/v1/status', '127.0.0.2'), 'dropped');
    assert.equal(await attempt(w.base + '/v1/status', '127.0.0.1'), 200);
    const m = await metrics(w);
    assert.ok(metric(m, 'ward_dropped_total', { reason: 'denied' }) >= 2, m);
  });
});
