// Upstream failures as a client sees them: refused → 502, reset → 502, too slow → 504 at about
// timeout_ms, a client hanging up cancels the upstream request; and after every one of these the
// tenant's concurrency lease is back (ward_concurrency_in_use returns to 0).

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createServer, request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { policyDir, basePolicy, startWard, type PolicyFiles, type WardProcess } from './support/ward-process.js';
import { startUpstream, request, bearer, type TestUpstream } from './support/http.js';
import { signJwt, standardClaims } from './support/jwt.js';
import { metric, until } from './support/observe.js';

const TIMEOUT_MS = 1000;

/** A port nothing listens on: bound, then closed. */
async function closedPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

describe('upstream errors', () => {
  let up: TestUpstream;
  let p: PolicyFiles;
  let w: WardProcess;
  let token: string;
  /** Responses the upstream holds open until a test lets them go. */
  const held: ServerResponse[] = [];
  /** Requests whose connection closed before the upstream answered. */
  const cancelled: string[] = [];
  /** Bodies streamed to /v1/upload, and whether each was cut off before its end. */
  const uploads: Array<{ bytes: number; cutOff: boolean }> = [];

  /** The tenant's leases in use now; -1 while /metrics has no such series (so 0 is never vacuous). */
  const inUse = async (): Promise<number> => {
    const text = (await request(w.admin + '/metrics')).body;
    return text.includes('ward_concurrency_in_use{tenant="acme",pool="calls"}') ? metric(text, 'ward_concurrency_in_use', { tenant: 'acme', pool: 'calls' }) : -1;
  };
  const leasesBackToZero = () => until('ward_concurrency_in_use to return to 0', async () => (await inUse()) === 0);

  before(async () => {
    up = await startUpstream();
    up.server.prependListener('request', (req: IncomingMessage) => {
      if (req.url !== '/v1/upload') return;
      const rec = { bytes: 0, cutOff: false };
      uploads.push(rec);
      req.on('data', (c: Buffer) => (rec.bytes += c.length));
      req.on('close', () => (rec.cutOff = !req.complete));
    });
    up.handle = (req: IncomingMessage, res: ServerResponse) => {
      const path = req.url!.split('?')[0];
      if (path === '/v1/reset') return void req.socket.resetAndDestroy();
      if (path === '/v1/garbage') return void req.socket.end('HTTP/1.1 two hundred\r\nwhat: ever\r\n\r\n');
      if (path === '/v1/slow-body') {
        // The head is prompt; the body takes longer than timeout_ms, which bounds the head only.
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.write('first ');
        setTimeout(() => res.end('last'), TIMEOUT_MS * 1.5);
        return;
      }
      if (path === '/v1/cut') {
        // Head and part of the body, then a reset: too late for a status.
        res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '100000' });
        res.write(Buffer.alloc(1000, 97), () => setTimeout(() => req.socket.resetAndDestroy(), 50));
        return;
      }
      if (path === '/v1/slow' || path === '/v1/hold') {
        held.push(res);
        res.on('close', () => {
          if (!res.writableEnded) cancelled.push(path);
        });
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"ok":true}');
    };
    p = policyDir();
    const dead = `http://127.0.0.1:${await closedPort()}`;
    p.write(
      basePolicy(up.url, {
        upstreams: { api: { targets: [up.url], timeout_ms: TIMEOUT_MS }, dead: { targets: [dead] } },
        routes: [
          { name: 'dead', prefix: '/v1/dead', upstream: 'dead', concurrency: 'calls' },
          { name: 'api', prefix: '/v1/', upstream: 'api', concurrency: 'calls' },
        ],
      }),
    );
    w = await startWard(p.dir);
    token = signJwt(p.key, standardClaims('acme'));
  });
  after(async () => {
    for (const r of held) r.destroy();
    await w?.stop();
    await up?.close();
    p?.remove();
  });

  it('proxies a success and gives the lease back', async () => {
    const r = await request(w.base + '/v1/ok', { headers: bearer(token) });
    assert.equal(r.status, 200);
    assert.deepEqual(r.json(), { ok: true });
    await leasesBackToZero();
  });

  it('answers 502 upstream_unavailable when the upstream refuses connections', async () => {
    for (const method of ['GET', 'POST']) {
      const r = await request(w.base + '/v1/dead/x', { method, headers: bearer(token), body: method === 'POST' ? '{}' : undefined });
      assert.equal(r.status, 502, `${method}: ${r.body}`);
      assert.equal(r.json().error, 'upstream_unavailable');
      assert.match(r.json().request_id, /\S+/);
    }
    await leasesBackToZero();
  });

  it('answers 502 upstream_unavailable when the upstream resets the connection', async () => {
    for (const method of ['GET', 'POST']) {
      const r = await request(w.base + '/v1/reset', { method, headers: bearer(token), body: method === 'POST' ? 'payload' : undefined });
      assert.equal(r.status, 502, `${method}: ${r.body}`);
      assert.equal(r.json().error, 'upstream_unavailable');
    }
    await leasesBackToZero();
  });

  it('cuts the client connection when the upstream resets after the response started', async () => {
    const count = async (outcome: string) => metric((await request(w.admin + '/metrics')).body, 'ward_requests_total', { tenant: 'acme', route: 'api', outcome });
    const [failedBefore, abortedBefore] = [await count('upstream_unavailable'), await count('client_aborted')];
    await assert.rejects(request(w.base + '/v1/cut', { headers: bearer(token) }), (e: NodeJS.ErrnoException) => {
      assert.ok(e.code === 'ECONNRESET' || e.message === 'aborted', String(e));
      return true;
    });
    await leasesBackToZero();
    // Counted as the upstream's failure, not as a client hang-up.
    assert.equal(await count('upstream_unavailable'), failedBefore + 1);
    assert.equal(await count('client_aborted'), abortedBefore);
  });

  it('answers 502 upstream_unavailable when the upstream answers with something that is not HTTP', async () => {
    const r = await request(w.base + '/v1/garbage', { headers: bearer(token) });
    assert.equal(r.status, 502, r.body);
    assert.equal(r.json().error, 'upstream_unavailable');
    await leasesBackToZero();
  });

  it('does not time out a response whose head came in time but whose body is slow', async () => {
    const r = await request(w.base + '/v1/slow-body', { headers: bearer(token) });
    assert.equal(r.status, 200);
    assert.equal(r.body, 'first last');
    await leasesBackToZero();
  });

  it('answers 504 upstream_timeout at about timeout_ms when the upstream is too slow', async () => {
    const t0 = Date.now();
    const r = await request(w.base + '/v1/slow', { headers: bearer(token) });
    const took = Date.now() - t0;
    assert.equal(r.status, 504, r.body);
    assert.equal(r.json().error, 'upstream_timeout');
    assert.ok(took >= TIMEOUT_MS - 50, `answered after ${took} ms, before timeout_ms`);
    assert.ok(took < TIMEOUT_MS + 2000, `answered after ${took} ms`);
    // ward gave up on the upstream request too.
    await until('the upstream to see the slow request closed', () => cancelled.includes('/v1/slow'));
    await leasesBackToZero();
  });

  it('cancels the upstream request when the client hangs up mid-call, and frees the lease', async () => {
    const before = held.length;
    const req = httpRequest(w.base + '/v1/hold', { method: 'POST', agent: false, headers: { ...bearer(token), 'content-type': 'application/json' } });
    req.on('error', () => {}); // the hang-up below is ours
    req.end('{"call":1}');
    await until('the upstream to receive the call', () => held.length > before);
    assert.equal(await inUse(), 1, 'the call holds one lease while in flight');
    req.destroy();
    await until('the upstream to see its request closed', () => cancelled.filter((c) => c === '/v1/hold').length === 1);
    await leasesBackToZero();
    const m = (await request(w.admin + '/metrics')).body;
    assert.ok(metric(m, 'ward_requests_total', { tenant: 'acme', route: 'api', outcome: 'client_aborted' }) >= 1, m);
  });

  it('cancels the upstream request when the client hangs up in the middle of its body', async () => {
    const n = uploads.length;
    const req = httpRequest(w.base + '/v1/upload', { method: 'POST', agent: false, headers: { ...bearer(token), 'transfer-encoding': 'chunked' } });
    req.on('error', () => {});
    req.write(Buffer.alloc(8192, 97));
    await until('the upstream to receive the first bytes', () => uploads.length > n && uploads[n]!.bytes > 0);
    assert.equal(await inUse(), 1);
    req.destroy();
    await until('the upstream to see the upload cut off', () => uploads[n]!.cutOff);
    await leasesBackToZero();
  });

  it('counts each ending in ward_requests_total', async () => {
    const m = (await request(w.admin + '/metrics')).body;
    assert.ok(metric(m, 'ward_requests_total', { tenant: 'acme', route: 'api', outcome: 'ok' }) >= 1, m);
    assert.ok(metric(m, 'ward_requests_total', { tenant: 'acme', route: 'dead', outcome: 'upstream_unavailable' }) >= 2, m);
    assert.ok(metric(m, 'ward_requests_total', { tenant: 'acme', route: 'api', outcome: 'upstream_timeout' }) >= 1, m);
    assert.equal(await inUse(), 0);
  });
});
