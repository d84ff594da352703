// Backpressure both ways: a stalled reader on either side must not grow ward's memory without
// bound. Client slow: ward stops reading the upstream, whose writes then stall. Upstream slow:
// uWS cannot stop reading the client, so ward closes the session with 1013 past its bound.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { WebSocket } from 'ws';
import { startWsWard, startUpstream, connect, closed, eventually, type WsWard, type Upstream } from './support/ws-gateway.js';

const MiB = 1 << 20;
const T = { timeout: 60_000 };
let ward: WsWard;
let flood: Upstream;
let sink: Upstream;
/** Bytes the flooding upstream has handed to its kernel so far. */
let flushed = 0;
const FLOOD_MESSAGES = 256;

before(async () => {
  // On connect, sends 256 × 1 MiB, each stamped with its index, as fast as its socket takes them.
  flood = await startUpstream({
    onConnection: (ws) => {
      for (let i = 0; i < FLOOD_MESSAGES; i++) {
        const m = Buffer.alloc(MiB, i & 0xff);
        m.writeUInt32BE(i, 0);
        ws.send(m, { binary: true }, (err) => {
          if (!err) flushed += MiB;
        });
      }
    },
  });
  // Never reads: every byte sent to it stays in kernel buffers and in its sender.
  sink = await startUpstream({ onConnection: (ws) => ws.pause() });
  ward = await startWsWard({
    upstreams: { flood: { targets: [flood.url] }, sink: { targets: [sink.url] } },
    routes: [
      { name: 'flood', prefix: '/flood', websocket: true, upstream: 'flood', max_message_bytes: 2 * MiB },
      { name: 'sink', prefix: '/sink', websocket: true, upstream: 'sink', concurrency: 'sessions', max_message_bytes: 2 * MiB },
    ],
    tenants: { '*': { buckets: {}, concurrency: { sessions: 4 } } },
  });
});

after(async () => {
  await ward.stop();
  await flood.close();
  await sink.close();
});

const auth = () => ({ headers: { authorization: `Bearer ${ward.token('acme')}` } });
const rss = () => ward.metric('process_resident_memory_bytes');

/** Waits until `f()` has not changed for `quietMs`. */
async function settled(f: () => number, quietMs = 600): Promise<number> {
  let last = f();
  let since = Date.now();
  for (;;) {
    await new Promise((r) => setTimeout(r, 50));
    const v = f();
    if (v !== last) {
      last = v;
      since = Date.now();
    } else if (Date.now() - since >= quietMs) return v;
  }
}

test('a client that stops reading stalls its upstream instead of growing ward', T, async (t) => {
  const rssBefore = await rss();
  flushed = 0;
  const { ws } = await connect(ward.url('/flood'), [], auth());
  ws.pause();
  const stalledAt = await settled(() => flushed);
  const rssStalled = await rss();
  t.diagnostic(`upstream stalled after ${(stalledAt / MiB).toFixed(1)} MiB; ward grew ${((rssStalled - rssBefore) / MiB).toFixed(1)} MiB`);
  // 256 MiB were offered; only what kernel buffers and ward's bounded queue hold got through.
  assert.ok(stalledAt < 64 * MiB, `upstream flushed ${stalledAt / MiB} MiB before stalling`);
  assert.ok(rssStalled - rssBefore < 64 * MiB, `ward grew ${(rssStalled - rssBefore) / MiB} MiB`);

  // Once the client reads again every message arrives, whole and in order.
  const got: number[] = [];
  let bad = 0;
  const all = new Promise<void>((resolve) => {
    ws.on('message', (d: Buffer, isBinary) => {
      const i = d.readUInt32BE(0);
      if (!isBinary || d.length !== MiB || d[MiB - 1] !== (i & 0xff)) bad++;
      got.push(i);
      if (got.length === FLOOD_MESSAGES) resolve();
    });
  });
  ws.resume();
  await all;
  assert.equal(bad, 0);
  assert.deepEqual(got, Array.from({ length: FLOOD_MESSAGES }, (_, i) => i));
  ws.close();
  await closed(ws);
});

test('a client outpacing a stalled upstream is closed with 1013 and ward stays bounded', T, async (t) => {
  const rssBefore = await rss();
  const up = sink.nextConnection();
  const { ws } = await connect(ward.url('/sink'), [], auth());
  const upWs: WebSocket = await up;
  const c = closed(ws);
  const chunk = Buffer.alloc(MiB, 7);
  let sent = 0;
  // Offer up to 256 MiB; ward must give up long before that.
  const pump = setInterval(() => {
    for (let k = 0; k < 8 && sent < 256 && ws.readyState === ws.OPEN; k++, sent++) ws.send(chunk);
  }, 5);
  const { code, reason } = await c;
  clearInterval(pump);
  assert.deepEqual({ code, reason }, { code: 1013, reason: 'upstream_backpressure' });
  const grew = (await rss()) - rssBefore;
  t.diagnostic(`closed after the client sent ${sent} MiB; ward grew ${(grew / MiB).toFixed(1)} MiB`);
  assert.ok(grew < 64 * MiB, 'ward did not buffer what the upstream would not take');
  await eventually(() => ward.metric('ward_concurrency_in_use', { tenant: 'acme', pool: 'sessions' }), (n) => n === 0);

  // The upstream, reading again, gets a prefix of what was sent, then ward's 1013.
  let received = 0;
  upWs.on('message', (d: Buffer) => {
    assert.equal(d.length, MiB);
    received++;
  });
  const upClosed = closed(upWs);
  upWs.resume();
  assert.equal((await upClosed).code, 1013);
  t.diagnostic(`the upstream got ${received} of ${sent} messages`);
  assert.ok(received > 0 && received < sent, `upstream got ${received} of ${sent}`);
});
