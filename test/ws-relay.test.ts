// WebSocket sessions through ward: relay fidelity, close codes, authentication and refusals.
// Real sockets everywhere: `ws` clients → ward (uWS) → a `ws` upstream server.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, connect as netConnect, type Server, type Socket } from 'node:net';
import { randomBytes } from 'node:crypto';
import { startWsWard, startUpstream, connect, closed, messages, eventually, UpgradeRefused, type WsWard, type Upstream } from './support/ws-gateway.js';

const T = { timeout: 30_000 };
let echo: Upstream;
let silent: Server;
let silentPort: number;
const silentSockets = new Set<Socket>();
let ward: WsWard;

before(async () => {
  echo = await startUpstream();
  // Accepts TCP and never answers the handshake: the upstream timeout's case.
  silent = createServer((sock) => {
    silentSockets.add(sock);
    sock.once('close', () => silentSockets.delete(sock));
    sock.resume(); // read (and drop) so the peer's FIN is seen
  });
  await new Promise<void>((r) => silent.listen(0, '127.0.0.1', () => r()));
  silentPort = (silent.address() as { port: number }).port;
  ward = await startWsWard({
    upstreams: {
      sigws: { targets: [echo.url] },
      down: { targets: ['ws://127.0.0.1:1'] },
      slow: { targets: [`ws://127.0.0.1:${silentPort}`], timeout_ms: 300 },
      stuck: { targets: [`ws://127.0.0.1:${silentPort}`], timeout_ms: 20_000 },
    },
    routes: [
      { name: 'signal', prefix: '/v1/signal', websocket: true, upstream: 'sigws', bucket: 'api', concurrency: 'sessions', max_message_bytes: 2 << 20 },
      { name: 'down', prefix: '/v1/down', websocket: true, upstream: 'down' },
      { name: 'slow', prefix: '/v1/slow', websocket: true, upstream: 'slow' },
      { name: 'stuck', prefix: '/v1/stuck', websocket: true, upstream: 'stuck', concurrency: 'sessions' },
      { name: 'api', prefix: '/v1/api', upstream: 'sigws' },
    ],
    tenants: {
      '*': { buckets: { api: { rate: 1000, per_s: 1 } }, concurrency: { sessions: 2 } },
      tiny: { buckets: { api: { rate: 1, per_s: 60 } } },
    },
  });
});

after(async () => {
  await ward.stop();
  await echo.close();
  silent.close();
});

const auth = (tenant = 'acme') => ({ headers: { authorization: `Bearer ${ward.token(tenant)}` } });

test('relays text and binary messages unchanged and in order, 1 MB ones included', T, async () => {
  const { ws } = await connect(ward.url('/v1/signal/room'), [], auth());
  const sent: Array<{ data: Buffer; isBinary: boolean }> = [];
  for (let i = 0; i < 200; i++) {
    const size = i % 50 === 7 ? 1 << 20 : 1 + (i * 37) % 3000;
    const isBinary = i % 3 === 0;
    const data = isBinary ? randomBytes(size) : Buffer.from(`${i}:` + 'é'.repeat(size >> 1));
    sent.push({ data, isBinary });
  }
  const got = messages(ws, sent.length);
  for (const m of sent) ws.send(m.data, { binary: m.isBinary });
  const back = await got;
  for (let i = 0; i < sent.length; i++) {
    assert.equal(back[i]!.isBinary, sent[i]!.isBinary, `message ${i} kind`);
    assert.ok(back[i]!.data.equals(sent[i]!.data), `message ${i} bytes`);
  }
  ws.close(1000);
  await closed(ws);
});

test('the upstream gets the path, the query without access_token, and ward\'s identity headers', T, async () => {
  const n = echo.handshakes.length;
  const { ws } = await connect(ward.url(`/v1/signal/x?room=7&access_token=${ward.token('acme')}`), [], { headers: { 'x-ward-tenant': 'evil', 'x-request-id': 'forged' } });
  const h = echo.handshakes[n]!;
  assert.equal(h.url, '/v1/signal/x?room=7');
  assert.equal(h.headers['x-ward-tenant'], 'acme');
  assert.equal(h.headers['x-forwarded-for'], '127.0.0.1');
  assert.ok(typeof h.headers['x-request-id'] === 'string' && h.headers['x-request-id'] !== 'forged');
  ws.close();
  await closed(ws);
});

test('the client gets the subprotocol the upstream chose', T, async () => {
  const { ws, protocol } = await connect(ward.url('/v1/signal'), ['sip', 'chat'], auth());
  assert.equal(protocol, 'sip');
  ws.close();
  await closed(ws);
});

test('close codes and reasons pass through both ways', T, async () => {
  // client → upstream
  let up = echo.nextConnection();
  let { ws } = await connect(ward.url('/v1/signal'), [], auth());
  let upWs = await up;
  const upSaw = closed(upWs);
  const clientDone = closed(ws);
  ws.close(4001, 'client says bye');
  assert.deepEqual(await upSaw, { code: 4001, reason: 'client says bye' });
  await clientDone;

  // upstream → client, after the messages it sent first
  up = echo.nextConnection();
  ({ ws } = await connect(ward.url('/v1/signal'), [], auth()));
  upWs = await up;
  const got = messages(ws, 3);
  const clientSaw = closed(ws);
  upWs.send('one');
  upWs.send(Buffer.from([2]), { binary: true });
  upWs.send('three');
  upWs.close(4002, 'upstream says bye');
  assert.deepEqual((await got).map((m) => m.data.toString('latin1')), ['one', '\u0002', 'three']);
  assert.deepEqual(await clientSaw, { code: 4002, reason: 'upstream says bye' });

  // no code either way stays no code (1005)
  up = echo.nextConnection();
  ({ ws } = await connect(ward.url('/v1/signal'), [], auth()));
  upWs = await up;
  const noCode = closed(upWs);
  ws.close();
  assert.equal((await noCode).code, 1005);

  // an upstream that drops the connection: the client gets 1014 (bad gateway)
  up = echo.nextConnection();
  ({ ws } = await connect(ward.url('/v1/signal'), [], auth()));
  upWs = await up;
  const dropped = closed(ws);
  upWs.terminate();
  assert.deepEqual(await dropped, { code: 1014, reason: 'upstream_reset' });
});

test('a session holds one lease of its pool until either side closes', T, async () => {
  const inUse = () => ward.metric('ward_concurrency_in_use', { tenant: 'pooled', pool: 'sessions' });
  const up1 = echo.nextConnection();
  const a = await connect(ward.url('/v1/signal'), [], auth('pooled'));
  const b = await connect(ward.url('/v1/signal'), [], auth('pooled'));
  const held = await inUse();
  if (held !== 2) {
    // Seen once in many runs, not explained yet: before failing, tell a stale metric (the pool still
    // refuses a third session) from a lost lease (it admits one).
    const third = await connect(ward.url('/v1/signal'), [], auth('pooled')).then(
      (c) => (c.ws.close(), 'admitted'),
      (e: UpgradeRefused) => `refused with ${e.status}`,
    );
    assert.fail(`ward_concurrency_in_use read ${held} with two sessions open; a third session was then ${third}; the metric now reads ${await inUse()}`);
  }
  await assert.rejects(connect(ward.url('/v1/signal'), [], auth('pooled')), (e: UpgradeRefused) => {
    assert.equal(e.status, 429);
    assert.deepEqual({ ...JSON.parse(e.body), request_id: undefined }, { error: 'concurrency_limited', pool: 'sessions', request_id: undefined });
    return true;
  });
  // upstream side closes: the lease comes back
  (await up1).close(1000);
  await closed(a.ws);
  await eventually(inUse, (n) => n === 1);
  // client side drops: the lease comes back
  b.ws.terminate();
  await eventually(inUse, (n) => n === 0);
  const c = await connect(ward.url('/v1/signal'), [], auth('pooled'));
  c.ws.close();
  await closed(c.ws);
  await eventually(() => ward.metric('ward_ws_sessions_open', { tenant: 'pooled' }), (n) => n === 0);
});

test('upgrades are authenticated by header or access_token before any upstream connection', T, async () => {
  const before = echo.handshakes.length;
  await assert.rejects(connect(ward.url('/v1/signal')), (e: UpgradeRefused) => {
    assert.equal(e.status, 401);
    assert.equal(JSON.parse(e.body).error, 'unauthorized');
    assert.equal(e.headers['www-authenticate'], 'Bearer error="invalid_token"');
    return true;
  });
  await assert.rejects(connect(ward.url('/v1/signal'), [], { headers: { authorization: 'Bearer not.a.token' } }), (e: UpgradeRefused) => e.status === 401);
  await assert.rejects(connect(ward.url('/v1/signal?access_token=garbage')), (e: UpgradeRefused) => e.status === 401);
  assert.equal(echo.handshakes.length, before, 'no refused upgrade reached the upstream');
  const q = await connect(ward.url(`/v1/signal?access_token=${ward.token('acme')}`));
  q.ws.close();
  await closed(q.ws);
});

test('refused upgrades get the HTTP answers of the table', T, async () => {
  await assert.rejects(connect(ward.url('/v1/nowhere'), [], auth()), (e: UpgradeRefused) => e.status === 404 && JSON.parse(e.body).error === 'no_route');
  await assert.rejects(connect(ward.url('/v1/api'), [], auth()), (e: UpgradeRefused) => e.status === 404);
  // the tenant's bucket is charged per upgrade
  const ok = await connect(ward.url('/v1/signal'), [], auth('tiny'));
  await assert.rejects(connect(ward.url('/v1/signal'), [], auth('tiny')), (e: UpgradeRefused) => {
    assert.equal(e.status, 429);
    assert.equal(JSON.parse(e.body).error, 'rate_limited');
    assert.ok(Number(e.headers['retry-after']) >= 1);
    return true;
  });
  ok.ws.close();
  await closed(ok.ws);
  await assert.rejects(connect(ward.url('/v1/down'), [], auth()), (e: UpgradeRefused) => e.status === 502 && JSON.parse(e.body).error === 'upstream_unavailable');
  await assert.rejects(connect(ward.url('/v1/slow'), [], auth()), (e: UpgradeRefused) => e.status === 504 && JSON.parse(e.body).error === 'upstream_timeout');
  await eventually(() => ward.metric('ward_concurrency_in_use', { tenant: 'acme' }), (n) => n === 0);
});

test('an upstream that refuses the handshake answers 502, and the lease is not kept', T, async () => {
  const picky = await startUpstream({ protocols: () => false, onConnection: () => {} });
  const strict = await startWsWard({
    upstreams: { picky: { targets: [picky.url] } },
    routes: [{ name: 'sip', prefix: '/sip', websocket: true, sip: true, upstream: 'picky', concurrency: 'sessions' }],
    tenants: { '*': { buckets: {}, concurrency: { sessions: 1 } } },
  });
  try {
    const t = { headers: { authorization: `Bearer ${strict.token('acme')}` } };
    // The client offers `sip`; the upstream picks none, which a WebSocket client must refuse.
    await assert.rejects(connect(strict.url('/sip'), ['sip'], t), (e: UpgradeRefused) => e.status === 502);
    await assert.rejects(connect(strict.url('/sip'), ['sip'], t), (e: UpgradeRefused) => e.status === 502);
    assert.equal(await strict.metric('ward_concurrency_in_use', { tenant: 'acme', pool: 'sessions' }), 0);
  } finally {
    await strict.stop();
    await picky.close();
  }
});

test('a client that gives up while ward dials the upstream frees its lease and the upstream attempt', T, async () => {
  const inUse = () => ward.metric('ward_concurrency_in_use', { tenant: 'quitter', pool: 'sessions' });
  const sock = netConnect(ward.port, '127.0.0.1');
  sock.on('error', () => {});
  sock.write(
    'GET /v1/stuck HTTP/1.1\r\nHost: ward\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n' +
      `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nAuthorization: Bearer ${ward.token('quitter')}\r\n\r\n`,
  );
  await eventually(inUse, (n) => n === 1);
  await eventually(() => silentSockets.size, (n) => n >= 1);
  sock.destroy();
  await eventually(inUse, (n) => n === 0, 2000);
  await eventually(() => silentSockets.size, (n) => n === 0, 2000);
});
