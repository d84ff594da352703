// Pipelining (OutgoingRequest.pipelineKey) through the real client and real loopback servers: one
// key's GETs of one turn share a connection and come back in order; keys never share; a server that
// closes, resets or is slow, a paused reader and a client that goes away each cost only the calls
// they concern, and every call is counted out.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Socket } from 'node:net';
import { TargetPool } from './http-client.js';
import { get, httpServer, rawServer, recorder, send, type Rec } from './http-client-fixtures.js';

const answer = (body: string, extra = ''): string => `HTTP/1.1 200 OK\r\nContent-Length: ${Buffer.byteLength(body)}\r\n${extra}\r\n${body}`;
const pathOf = (head: string): string => head.split(' ')[1]!;

async function until(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 200 && !cond(); i++) await sleep(10);
  assert.ok(cond(), what);
}

test("one key's GETs and HEADs started in one turn share one connection and get their own answers, in order", async (t) => {
  const srv = await httpServer((req, res) => {
    const n = Number(req.url!.split('/')[2]);
    if (n % 3 === 0) {
      res.write(`chunked ${req.url}`); // no length: chunked
      res.end();
    } else {
      res.end(`answer ${req.url} ${'x'.repeat(n * 500)}`);
    }
  });
  const pool = new TargetPool(srv.origin);
  t.after(() => (pool.close(), srv.close()));
  const reqs = Array.from({ length: 12 }, (_, i) => get(`/r/${i}`, { pipelineKey: 'tenant-a', method: i === 5 ? 'HEAD' : 'GET' }));
  const answers = await Promise.all(reqs.map((r) => send(pool, r)));
  answers.forEach((r, i) => {
    assert.equal(r.error, null, `request ${i}`);
    assert.equal(r.status, 200);
    const want = i === 5 ? '' : i % 3 === 0 ? `chunked /r/${i}` : `answer /r/${i} ${'x'.repeat(i * 500)}`;
    assert.equal(r.body(), want, `body of request ${i}`);
    assert.deepEqual(r.late, []);
  });
  assert.deepEqual(srv.conns, Array(12).fill(1), 'all twelve went on one connection');
  assert.equal(pool.inFlight, 0);
  assert.equal(pool.idleCount, 1, 'the connection is kept for reuse');
  assert.equal((await send(pool, get('/again', { pipelineKey: 'tenant-a' }))).status, 200);
  assert.deepEqual(srv.conns.slice(-1), [1], 'and reused');
});

test("two keys' requests never share a connection; without a key every request has its own, as before", async (t) => {
  const ids = new WeakMap<object, number>();
  let n = 0;
  const srv = await httpServer((req, res) => {
    if (!ids.has(req.socket)) ids.set(req.socket, ++n);
    res.end(`${req.url} on ${ids.get(req.socket)}`);
  });
  const pool = new TargetPool(srv.origin);
  t.after(() => (pool.close(), srv.close()));
  const keys = Array.from({ length: 10 }, (_, i) => (i % 2 === 0 ? 'a' : 'b'));
  const answers = await Promise.all(keys.map((k, i) => send(pool, get(`/${k}/${i}`, { pipelineKey: k }))));
  const connOf = (r: Rec): string => r.body().split(' on ')[1]!;
  answers.forEach((r, i) => assert.equal(r.body().split(' on ')[0], `/${keys[i]}/${i}`));
  const aConns = new Set(answers.filter((_, i) => keys[i] === 'a').map(connOf));
  const bConns = new Set(answers.filter((_, i) => keys[i] === 'b').map(connOf));
  assert.equal(aConns.size, 1, "a's five requests shared one connection");
  assert.equal(bConns.size, 1, "b's five requests shared one connection");
  assert.notDeepEqual([...aConns], [...bConns], 'a and b never shared one');
  pool.close();
  const plain = new TargetPool(srv.origin);
  t.after(() => plain.close());
  const solo = await Promise.all([0, 1, 2, 3].map((i) => send(plain, get(`/plain/${i}`))));
  assert.equal(new Set(solo.map(connOf)).size, 4, 'without a key, four requests at once took four connections');
  const posts = await Promise.all([0, 1].map((i) => send(plain, get(`/post/${i}`, { method: 'POST', pipelineKey: 'a' }))));
  assert.equal(new Set(posts.map(connOf)).size, 2, 'a POST is never pipelined');
  assert.equal(pool.inFlight + plain.inFlight, 0);
});

test('a server that closes after its first answer: the pipelined rest are sent again, once each, and answered', async (t) => {
  const seen: string[] = [];
  const srv = await rawServer((s, head) => {
    seen.push(pathOf(head));
    if (s.writableEnded) return;
    s.end(answer(`got ${pathOf(head)}`, 'Connection: close\r\n'));
  });
  const pool = new TargetPool(srv.origin);
  t.after(() => (pool.close(), srv.close()));
  const answers = await Promise.all([0, 1, 2, 3].map((i) => send(pool, get(`/c/${i}`, { pipelineKey: 't' }))));
  assert.deepEqual(
    answers.map((r) => [r.status, r.body(), r.error]),
    [0, 1, 2, 3].map((i) => [200, `got /c/${i}`, null]),
  );
  for (let i = 1; i < 4; i++) assert.ok(seen.filter((p) => p === `/c/${i}`).length <= 2, `request ${i} sent at most twice`);
  assert.equal(pool.inFlight, 0);
});

test('a connection reset mid-answer fails the call being answered; the calls behind it go again and are answered', async (t) => {
  let connections = 0;
  const perConn = new WeakMap<Socket, number>();
  const srv = await rawServer((s, head) => {
    if (!perConn.has(s)) perConn.set(s, ++connections);
    if (perConn.get(s) === 1) {
      // First connection: half an answer to the first request, then a reset.
      if (pathOf(head) === '/x/0') {
        s.write('HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial');
        setTimeout(() => s.resetAndDestroy(), 50);
      }
      return;
    }
    s.write(answer(`fresh ${pathOf(head)}`));
  });
  const pool = new TargetPool(srv.origin);
  t.after(() => (pool.close(), srv.close()));
  const answers = await Promise.all([0, 1, 2].map((i) => send(pool, get(`/x/${i}`, { pipelineKey: 't' }))));
  assert.equal(answers[0]!.error?.kind, 'reset');
  assert.equal(answers[0]!.error?.responseStarted, true, 'not sent again: its answer had begun');
  assert.deepEqual(
    answers.slice(1).map((r) => [r.status, r.body(), r.error]),
    [1, 2].map((i) => [200, `fresh /x/${i}`, null]),
  );
  assert.equal(pool.inFlight, 0);
});

test("a call timing out behind a slow answer gets its timeout; the others get their answers; the late answer is dropped", async (t) => {
  const srv = await rawServer((s, head) => {
    const p = pathOf(head);
    if (p === '/s/2') setTimeout(() => s.write(answer('slow 0') + answer('slow 1') + answer('slow 2')), 300);
  });
  const pool = new TargetPool(srv.origin);
  t.after(() => (pool.close(), srv.close()));
  const [a, b, c] = await Promise.all([
    send(pool, get('/s/0', { pipelineKey: 't', timeoutMs: 2000 })),
    send(pool, get('/s/1', { pipelineKey: 't', timeoutMs: 100 })),
    send(pool, get('/s/2', { pipelineKey: 't', timeoutMs: 2000 })),
  ]);
  assert.equal(a!.body(), 'slow 0');
  assert.equal(b!.error?.kind, 'timeout');
  assert.equal(b!.status, 0, 'the timed-out call hears nothing of its late answer');
  assert.equal(c!.body(), 'slow 2');
  await sleep(20);
  for (const r of [a, b, c]) assert.deepEqual(r!.late, []);
  assert.equal(pool.inFlight, 0);
});

for (const which of ['middle', 'last'] as const) {
  test(`a pipelined call whose client goes away (${which}): the others are answered, it hears nothing, nothing leaks`, async (t) => {
    const srv = await rawServer((s, head) => {
      if (pathOf(head) === '/g/2') setTimeout(() => s.write(answer('g0') + answer('g1') + answer('g2')), 100);
    });
    const pool = new TargetPool(srv.origin);
    t.after(() => (pool.close(), srv.close()));
    const recs: Rec[] = [];
    const calls = [0, 1, 2].map((i) => {
      const { sink, rec } = recorder();
      recs.push(rec);
      return pool.request(get(`/g/${i}`, { pipelineKey: 't' }), sink);
    });
    await sleep(30); // sent, not yet answered
    const gone = which === 'middle' ? 1 : 2;
    calls[gone]!.abort();
    const kept = [0, 1, 2].filter((i) => i !== gone);
    await Promise.all(kept.map((i) => recs[i]!.done));
    for (const i of kept) assert.equal(recs[i]!.body(), `g${i}`);
    await sleep(50);
    assert.equal(recs[gone]!.status, 0);
    assert.equal(recs[gone]!.error, null, 'an aborted call gets no callback');
    assert.equal(pool.inFlight, 0);
    // In the middle, its answer was read and dropped, so the connection is clean and kept; at the
    // end, its answer may still come, so the connection is closed instead of reused.
    if (which === 'middle') assert.equal(pool.idleCount, 1);
    else await until(() => srv.closedConns.size === 1 && pool.idleCount === 0, 'the connection is closed, not reused');
  });
}

test('a paused reader holds up only the calls pipelined behind it, which are answered once it resumes; aborting it while paused frees them too', async (t) => {
  const big = 'b'.repeat(4 << 20);
  const srv = await httpServer((req, res) => res.end(req.url === '/p/0' ? big : `small ${req.url}`));
  const pool = new TargetPool(srv.origin);
  t.after(() => (pool.close(), srv.close()));
  for (const ending of ['resume', 'abort'] as const) {
    let paused = false;
    const first = recorder(() => ((paused = true), false));
    const rest = [1, 2].map(() => recorder());
    const call = pool.request(get('/p/0', { pipelineKey: ending }), first.sink);
    rest.forEach((r, i) => pool.request(get(`/p/${i + 1}`, { pipelineKey: ending }), r.sink));
    await until(() => paused, 'the first answer paused its reader');
    await sleep(50);
    assert.equal(rest[0]!.rec.status, 0, 'the next answer waits behind the paused one');
    if (ending === 'resume') {
      // Resume on every chunk until the big answer is whole.
      const pump = setInterval(() => call.resume(), 1);
      await first.rec.done;
      clearInterval(pump);
      assert.equal(first.rec.body().length, big.length);
    } else {
      call.abort();
    }
    await Promise.all(rest.map((r) => r.rec.done));
    rest.forEach((r, i) => assert.equal(r.rec.body(), `small /p/${i + 1}`));
    assert.equal(pool.inFlight, 0);
  }
});

test('a target that keeps breaking pipelines gets one request per connection for a while, and says so once', async (t) => {
  const seen: string[] = [];
  const srv = await rawServer((s, head) => {
    seen.push(pathOf(head));
    if (!s.writableEnded) s.end(answer(`got ${pathOf(head)}`, 'Connection: close\r\n'));
  });
  const offs: Array<[string, number]> = [];
  const pool = new TargetPool(srv.origin, { onPipeliningOff: (origin, ms) => offs.push([origin, ms]) });
  t.after(() => (pool.close(), srv.close()));
  for (let round = 0; round < 3; round++) {
    const answers = await Promise.all([0, 1, 2].map((i) => send(pool, get(`/b${round}/${i}`, { pipelineKey: 't' }))));
    assert.deepEqual(answers.map((r) => r.body()), [0, 1, 2].map((i) => `got /b${round}/${i}`));
  }
  assert.deepEqual(offs, [[srv.origin, 60_000]], 'the third broken pipeline turned pipelining off');
  const before = seen.length;
  const conns = srv.conns.length;
  const answers = await Promise.all([0, 1, 2].map((i) => send(pool, get(`/after/${i}`, { pipelineKey: 't' }))));
  assert.deepEqual(answers.map((r) => r.body()), ['got /after/0', 'got /after/1', 'got /after/2']);
  assert.deepEqual(seen.slice(before).sort(), ['/after/0', '/after/1', '/after/2'], 'each sent once: nothing pipelined, nothing resent');
  assert.equal(new Set(srv.conns.slice(conns)).size, 3, 'on three connections');
  assert.equal(offs.length, 1);
  assert.equal(pool.inFlight, 0);
});
