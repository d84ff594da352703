// Request heads written at the end of a batch (gateway/event-batch.ts), through the real client and real
// loopback servers: every request still arrives once, in more batches than one, and a request
// given up within its batch never reaches the upstream.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { TargetPool } from './http-client.js';
import { get, httpServer, recorder, send } from './http-client-fixtures.js';

test('40 GETs started at once (three batches) each reach the upstream once and get their own answer', async (t) => {
  const seen: string[] = [];
  const srv = await httpServer((req, res) => {
    seen.push(req.url!);
    res.end(`answer ${req.url}`);
  });
  const pool = new TargetPool(srv.origin);
  t.after(() => (pool.close(), srv.close()));
  const paths = Array.from({ length: 40 }, (_, i) => `/r/${i}`);
  const answers = await Promise.all(paths.map((p) => send(pool, get(p))));
  assert.deepEqual(
    answers.map((r) => [r.status, r.body(), r.error]),
    paths.map((p) => [200, `answer ${p}`, null]),
  );
  assert.deepEqual([...seen].sort(), [...paths].sort(), 'each request arrived exactly once');
  assert.equal(pool.inFlight, 0);
});

test('a GET aborted in the same batch it started never reaches the upstream, and the next one is served', async (t) => {
  const seen: string[] = [];
  const srv = await httpServer((req, res) => {
    seen.push(req.url!);
    res.end('ok');
  });
  const pool = new TargetPool(srv.origin);
  t.after(() => (pool.close(), srv.close()));
  assert.equal((await send(pool, get('/first'))).status, 200); // leaves a connected keep-alive connection
  const { sink, rec } = recorder();
  pool.request(get('/abandoned'), sink).abort(); // the client went away at once
  await sleep(100);
  assert.deepEqual(seen, ['/first'], 'the abandoned request was not sent');
  assert.equal(rec.status, 0);
  assert.equal(rec.error, null, 'an aborted call gets no callback');
  assert.equal(pool.inFlight, 0);
  assert.equal((await send(pool, get('/next'))).body(), 'ok');
  assert.deepEqual(seen, ['/first', '/next']);
});
