// Per-session limits of WebSocket routes: message_bucket (1008), max_message_bytes (1009), and the
// idle timeout with pings (1001), plus shadow mode for the message bucket.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { WebSocketServer } from 'ws';
import { startWsWard, startUpstream, connect, closed, messages, eventually, type WsWard, type Upstream } from './support/ws-gateway.js';

const T = { timeout: 30_000 };
let echo: Upstream;
let deaf: WebSocketServer;
let ward: WsWard;

before(async () => {
  echo = await startUpstream();
  // An upstream whose peer never answers pings: a dead upstream, as far as ward can tell.
  deaf = new WebSocketServer({ host: '127.0.0.1', port: 0, autoPong: false });
  await new Promise<void>((r) => deaf.once('listening', () => r()));
  ward = await startWsWard({
    upstreams: { echo: { targets: [echo.url] }, deaf: { targets: [`ws://127.0.0.1:${(deaf.address() as { port: number }).port}`] } },
    routes: [
      { name: 'metered', prefix: '/metered', websocket: true, upstream: 'echo', message_bucket: 'msgs' },
      { name: 'trial', prefix: '/trial', websocket: true, upstream: 'echo', message_bucket: 'msgs', enforce: false },
      { name: 'small', prefix: '/small', websocket: true, upstream: 'echo', max_message_bytes: 1024 },
      { name: 'idle', prefix: '/idle', websocket: true, upstream: 'echo', idle_timeout_s: 1 },
      { name: 'deaf', prefix: '/deaf', websocket: true, upstream: 'deaf', idle_timeout_s: 1 },
    ],
    tenants: { '*': { buckets: { msgs: { rate: 5, per_s: 3600 } }, concurrency: {} } },
  });
});

after(async () => {
  await ward.stop();
  await echo.close();
  for (const ws of deaf.clients) ws.terminate();
  deaf.close();
});

const auth = (tenant: string) => ({ headers: { authorization: `Bearer ${ward.token(tenant)}` } });

test('the message bucket is charged per client message; over it the session closes with 1008', T, async () => {
  const up = echo.nextConnection();
  const { ws } = await connect(ward.url('/metered'), [], auth('chatty'));
  const upWs = await up;
  const upGot: string[] = [];
  upWs.on('message', (d) => upGot.push(d.toString()));
  const upClosed = closed(upWs);
  const back = messages(ws, 5);
  const clientClosed = closed(ws);
  for (let i = 1; i <= 5; i++) ws.send(`m${i}`);
  assert.deepEqual((await back).map((m) => m.data.toString()), ['m1', 'm2', 'm3', 'm4', 'm5']);
  ws.send('m6');
  ws.send('m7');
  assert.deepEqual(await clientClosed, { code: 1008, reason: 'rate_limited:msgs' });
  assert.equal((await upClosed).code, 1008);
  assert.deepEqual(upGot, ['m1', 'm2', 'm3', 'm4', 'm5'], 'nothing over the bucket reached the upstream');
  assert.equal(await ward.metric('ward_ws_messages_total', { tenant: 'chatty', direction: 'client_to_upstream', outcome: 'dropped' }), 1);
});

test('the message bucket is the tenant\'s, across its sessions', T, async () => {
  const a = await connect(ward.url('/metered'), [], auth('shared'));
  const b = await connect(ward.url('/metered'), [], auth('shared'));
  const backA = messages(a.ws, 3);
  for (let i = 0; i < 3; i++) a.ws.send('a');
  await backA;
  const backB = messages(b.ws, 2);
  const bClosed = closed(b.ws);
  b.ws.send('b');
  b.ws.send('b');
  await backB;
  b.ws.send('b');
  assert.equal((await bClosed).code, 1008);
  a.ws.close();
  await closed(a.ws);
});

test('in shadow mode (enforce: false) messages over the bucket still flow and are counted', T, async () => {
  const { ws } = await connect(ward.url('/trial'), [], auth('trialist'));
  const back = messages(ws, 8);
  for (let i = 0; i < 8; i++) ws.send(`t${i}`);
  assert.equal((await back).length, 8);
  assert.equal(await ward.metric('ward_shadow_refusals_total', { rule: 'route:trial', reason: 'message_rate_limited' }), 3);
  ws.close();
  await closed(ws);
});

test('a client message over max_message_bytes closes the session with 1009 and is not relayed', T, async () => {
  const up = echo.nextConnection();
  const { ws } = await connect(ward.url('/small'), [], auth('big'));
  const upWs = await up;
  const upGot: number[] = [];
  upWs.on('message', (d: Buffer) => upGot.push(d.length));
  const back = messages(ws, 1);
  ws.send(Buffer.alloc(1024), { binary: true });
  assert.equal((await back)[0]!.data.length, 1024);
  const c = closed(ws);
  const upClosed = closed(upWs);
  ws.send(Buffer.alloc(1025), { binary: true });
  assert.deepEqual(await c, { code: 1009, reason: 'message_too_big' });
  assert.equal((await upClosed).code, 1009);
  assert.deepEqual(upGot, [1024]);
});

test('an upstream message over max_message_bytes closes the session with 1009 too', T, async () => {
  const up = echo.nextConnection();
  const { ws } = await connect(ward.url('/small'), [], auth('big'));
  const c = closed(ws);
  (await up).send(Buffer.alloc(4096));
  assert.deepEqual(await c, { code: 1009, reason: 'message_too_big' });
});

test('idle timeout: a client that answers pings stays, one that does not is closed with 1001', T, async () => {
  const live = await connect(ward.url('/idle'), [], auth('idler'));
  const mute = await connect(ward.url('/idle'), [], { ...auth('idler'), autoPong: false });
  let liveClosed = false;
  live.ws.once('close', () => (liveClosed = true));
  let pings = 0;
  live.ws.on('ping', () => pings++);
  const started = Date.now();
  const muteClosed = await closed(mute.ws);
  assert.deepEqual(muteClosed, { code: 1001, reason: 'idle_timeout' });
  assert.ok(Date.now() - started < 4500, 'closed within the idle timeout plus the sweep');
  await new Promise((r) => setTimeout(r, 1500));
  assert.equal(liveClosed, false, 'a live but quiet client is kept');
  assert.ok(pings >= 1, 'ward pinged the quiet client');
  live.ws.close();
  await closed(live.ws);
});

test('idle timeout: an upstream that stops answering pings ends the session with 1001', T, async () => {
  const { ws } = await connect(ward.url('/deaf'), [], auth('idler'));
  assert.deepEqual(await closed(ws), { code: 1001, reason: 'idle_timeout' });
  await eventually(() => ward.metric('ward_ws_sessions_open', { route: 'deaf' }), (n) => n === 0);
});
