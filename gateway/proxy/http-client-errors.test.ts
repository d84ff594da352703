import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect, createServer as createNetServer, type Socket } from 'node:net';
import { Worker } from 'node:worker_threads';
import { setTimeout as sleep } from 'node:timers/promises';
import { TargetPool } from './http-client.js';
import { get, httpServer, rawServer, recorder, send, type Rec } from './http-client-fixtures.js';

async function freePort(): Promise<number> {
  const s = createNetServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address() as { port: number };
  await new Promise((r) => s.close(r));
  return port;
}

/** No callback may follow the terminal one, even a while later. */
async function settled(rec: Rec, pool: TargetPool): Promise<void> {
  await sleep(30);
  assert.deepEqual(rec.late, []);
  assert.equal(pool.inFlight, 0);
}

test('malformed responses are reported as protocol errors and the connection is dropped', async () => {
  const responses: Record<string, string> = {
    '/status': 'HTTP/1.1 2x0 OK\r\nContent-Length: 0\r\n\r\n',
    '/chunk': 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nnope\r\n',
    '/cl': 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!',
    '/big': 'HTTP/1.1 200 OK\r\nX-Big: ' + 'a'.repeat(70 * 1024) + '\r\n\r\n',
  };
  const srv = await rawServer((s, head) => s.write(responses[head.split(' ')[1]]));
  const pool = new TargetPool(srv.origin);
  for (const path of Object.keys(responses)) {
    const r = await send(pool, get(path));
    assert.deepEqual(r.error, { kind: 'protocol', bodySent: false, responseStarted: true }, path);
    assert.equal(pool.idleCount, 0);
    await settled(r, pool);
  }
  const chunk = await send(pool, get('/chunk'));
  assert.equal(chunk.status, 200, 'the head was delivered before the bad chunk');
  assert.equal(chunk.body(), 'hello');
  pool.close();
  await srv.close();
});

test('a refused connection is a connect error, with no body counted as sent', async () => {
  const pool = new TargetPool(`http://127.0.0.1:${await freePort()}`);
  const { sink, rec } = recorder();
  const call = pool.request({ method: 'POST', path: '/', headers: '', bodyLength: 5, timeoutMs: 5000 }, sink);
  assert.equal(pool.inFlight, 1);
  call.write(Buffer.from('hello'));
  call.end();
  await rec.done;
  assert.deepEqual(rec.error, { kind: 'connect', bodySent: false, responseStarted: false });
  await settled(rec, pool);
  pool.close();
});

/** A listener that never accepts: its thread is blocked, so once its accept queue is full the
 * kernel drops further SYNs and connecting hangs, as with a black-holed host. */
async function blackHole(): Promise<{ port: number; close(): Promise<void> }> {
  const wake = new Int32Array(new SharedArrayBuffer(4));
  const worker = new Worker(
    `const { parentPort, workerData } = require('node:worker_threads');
     const s = require('node:net').createServer().listen({ port: 0, host: '127.0.0.1', backlog: 1 }, () => {
       parentPort.postMessage(s.address().port);
       Atomics.wait(workerData, 0, 0, 10000);
       process.exit(0);
     });`,
    { eval: true, workerData: wake },
  );
  const port: number = await new Promise((r) => worker.once('message', r));
  // Fill the accept queue (backlog 1 holds two): later SYNs are dropped.
  const fillers = [0, 1, 2].map(() => connect(port, '127.0.0.1').on('error', () => {}));
  await Promise.all(fillers.slice(0, 2).map((f) => new Promise((r) => f.once('connect', r))));
  return {
    port,
    close: async () => {
      for (const f of fillers) f.destroy();
      Atomics.store(wake, 0, 1);
      Atomics.notify(wake, 0);
      await new Promise((r) => worker.once('exit', r));
    },
  };
}

test('a connection that cannot be established in connectTimeoutMs is a connect error', async () => {
  const hole = await blackHole();
  const pool = new TargetPool(`http://127.0.0.1:${hole.port}`, { connectTimeoutMs: 150 });
  const t0 = Date.now();
  const r = await send(pool, { method: 'POST', path: '/', headers: '', bodyLength: 2, timeoutMs: 0 }, [Buffer.from('hi')]);
  const took = Date.now() - t0;
  assert.deepEqual(r.error, { kind: 'connect', bodySent: false, responseStarted: false });
  assert.ok(took >= 145 && took < 1000, `gave up after ${took} ms`);
  await settled(r, pool);
  pool.close();
  await hole.close();
});

test('a server resetting mid-response is a reset with responseStarted', async () => {
  const srv = await rawServer((s) => {
    s.write('HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial');
    setTimeout(() => s.resetAndDestroy(), 30);
  });
  const pool = new TargetPool(srv.origin);
  const r = await send(pool, get('/'));
  assert.equal(r.status, 200);
  assert.equal(r.body(), 'partial');
  assert.deepEqual(r.error, { kind: 'reset', bodySent: false, responseStarted: true });
  await settled(r, pool);
  pool.close();
  await srv.close();
});

test('a connection closed inside the response head or a content-length body is a reset', async () => {
  const srv = await rawServer((s, head) => {
    s.end(head.includes('/head') ? 'HTTP/1.1 200 OK\r\nX-A:' : 'HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort');
  });
  const pool = new TargetPool(srv.origin);
  for (const path of ['/head', '/body']) {
    const r = await send(pool, get(path));
    assert.deepEqual(r.error, { kind: 'reset', bodySent: false, responseStarted: true }, path);
    await settled(r, pool);
  }
  pool.close();
  await srv.close();
});

test('a reset after the request body was written reports bodySent', async () => {
  const srv = await rawServer((s) => setTimeout(() => s.resetAndDestroy(), 50));
  const pool = new TargetPool(srv.origin);
  const r = await send(pool, { method: 'POST', path: '/', headers: '', bodyLength: 5, timeoutMs: 5000 }, [Buffer.from('hello')]);
  assert.deepEqual(r.error, { kind: 'reset', bodySent: true, responseStarted: false });
  await settled(r, pool);
  pool.close();
  await srv.close();
});

test('a server slower than timeoutMs is a timeout at about timeoutMs, and its connection is closed', async () => {
  const srv = await rawServer(() => {});
  const pool = new TargetPool(srv.origin);
  const t0 = Date.now();
  const r = await send(pool, get('/', { timeoutMs: 200 }));
  const took = Date.now() - t0;
  assert.deepEqual(r.error, { kind: 'timeout', bodySent: false, responseStarted: false });
  assert.ok(took >= 195 && took < 600, `timed out after ${took} ms`);
  await settled(r, pool);
  assert.ok(srv.closedConns.has(1));
  pool.close();
  await srv.close();
});

test('each call keeps its own deadline: answered calls leave the queue, later ones still time out on time', async () => {
  // /fast is answered at once, /slow never: the slow calls time out timeoutMs after each started,
  // whatever happened to the calls before them.
  const srv = await rawServer((s, head) => {
    if (head.startsWith('GET /fast')) s.write('HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n');
  });
  const pool = new TargetPool(srv.origin);
  const t0 = Date.now();
  const fast = send(pool, get('/fast', { timeoutMs: 300 }));
  await sleep(100);
  const slowA = send(pool, get('/slow', { timeoutMs: 300 }));
  await sleep(100);
  const slowB = send(pool, get('/slow', { timeoutMs: 300 }));
  assert.equal((await fast).status, 200);
  const a = await slowA;
  const tookA = Date.now() - t0;
  const b = await slowB;
  const tookB = Date.now() - t0;
  assert.equal(a.error?.kind, 'timeout');
  assert.equal(b.error?.kind, 'timeout');
  assert.ok(tookA >= 390 && tookA < 700, `first slow call timed out at ${tookA} ms (due at 400)`);
  assert.ok(tookB >= 490 && tookB < 800, `second slow call timed out at ${tookB} ms (due at 500)`);
  await settled(b, pool);
  pool.close();
  await srv.close();
});

test('the timeout counts to the final head: interim 100 Continue does not stop it', async () => {
  const srv = await rawServer((s) => s.write('HTTP/1.1 100 Continue\r\n\r\n'));
  const pool = new TargetPool(srv.origin);
  const r = await send(pool, get('/', { timeoutMs: 100 }));
  assert.deepEqual(r.error, { kind: 'timeout', bodySent: false, responseStarted: true });
  await settled(r, pool);
  pool.close();
  await srv.close();
});

test('abort mid-response closes the upstream connection and no sink callback follows', async () => {
  const srv = await rawServer((s) => {
    s.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n');
    const t = setInterval(() => s.write('5\r\nmore!\r\n'), 10);
    s.on('close', () => clearInterval(t));
  });
  const pool = new TargetPool(srv.origin);
  const { sink, rec } = recorder();
  const call = pool.request(get('/'), sink);
  while (rec.chunks.length === 0) await sleep(5);
  call.abort();
  call.abort();
  assert.equal(pool.inFlight, 0);
  await sleep(100);
  assert.ok(srv.closedConns.has(1), 'the server saw the connection closed');
  assert.equal(rec.ended || rec.error !== null, false);
  assert.equal(rec.chunks.length, 1);
  assert.equal(pool.idleCount, 0);
  pool.close();
  await srv.close();
});

test('abort before the connection is up reports nothing and leaves nothing open', async () => {
  const srv = await rawServer(() => {});
  const pool = new TargetPool(srv.origin);
  const { sink, rec } = recorder();
  const call = pool.request({ method: 'POST', path: '/', headers: '', bodyLength: -1, timeoutMs: 100 }, sink);
  call.write(Buffer.from('x'));
  call.abort();
  call.write(Buffer.from('y'));
  call.end();
  call.resume();
  await sleep(200); // past timeoutMs: the timer must be gone too
  assert.equal(rec.ended || rec.error !== null, false);
  assert.equal(pool.inFlight, 0);
  assert.equal(pool.idleCount, 0);
  pool.close();
  await srv.close();
});

test('abort from inside onHead stops everything at once', async () => {
  const srv = await httpServer((_req, res) => res.end('body'));
  const pool = new TargetPool(srv.origin);
  let call!: ReturnType<TargetPool['request']>;
  const { sink, rec } = recorder();
  const onHead = sink.onHead;
  sink.onHead = (st, h) => (onHead(st, h), call.abort());
  call = pool.request(get('/'), sink);
  await sleep(100);
  assert.equal(rec.status, 200);
  assert.equal(rec.chunks.length, 0);
  assert.equal(rec.ended || rec.error !== null, false);
  assert.equal(pool.inFlight, 0);
  pool.close();
  await srv.close();
});

for (const how of ['FIN', 'RST'] as const) {
  test(`a reused connection the server closed (${how}) as the request went out is retried once on a fresh one`, async () => {
    const served = new Map<Socket, number>();
    const srv = await rawServer((s) => {
      const n = (served.get(s) ?? 0) + 1;
      served.set(s, n);
      // The first request on a connection is answered; the next one meets the close race.
      if (n === 1) s.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
      else if (how === 'FIN') s.end();
      else s.resetAndDestroy();
    });
    const pool = new TargetPool(srv.origin);
    assert.equal((await send(pool, get('/1'))).body(), 'ok');
    const r = await send(pool, get('/2'));
    assert.equal(r.error, null);
    assert.equal(r.body(), 'ok');
    assert.deepEqual(srv.conns, [1, 1, 2]);
    assert.equal(pool.inFlight, 0);
    // A request whose body reached the stale connection is not sent again.
    const post = await send(pool, { method: 'POST', path: '/3', headers: '', bodyLength: 4, timeoutMs: 5000 }, [Buffer.from('data')]);
    assert.deepEqual(post.error, { kind: 'reset', bodySent: true, responseStarted: false });
    assert.deepEqual(srv.conns, [1, 1, 2, 2]);
    await settled(post, pool);
    pool.close();
    await srv.close();
  });
}

test('an idle connection the server closes is dropped, and the next request opens a fresh one', async () => {
  const srv = await rawServer((s) => {
    s.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
    setTimeout(() => s.end(), 30);
  });
  const pool = new TargetPool(srv.origin);
  await send(pool, get('/'));
  assert.equal(pool.idleCount, 1);
  await sleep(100);
  assert.equal(pool.idleCount, 0);
  assert.equal((await send(pool, get('/'))).body(), 'ok');
  assert.deepEqual(srv.conns, [1, 2]);
  pool.close();
  await srv.close();
});

test("ward closes connections idle longer than idleTimeoutMs or the server's Keep-Alive timeout", async () => {
  const srv = await httpServer((req, res) => {
    if (req.url === '/short') res.setHeader('Keep-Alive', 'timeout=1');
    res.end('ok');
  });
  const pool = new TargetPool(srv.origin, { idleTimeoutMs: 150 });
  await send(pool, get('/'));
  assert.equal(pool.idleCount, 1);
  await sleep(400);
  assert.equal(pool.idleCount, 0);
  assert.ok(srv.closedConns.has(1), 'the server saw the idle connection closed');
  await send(pool, get('/short'));
  assert.equal(pool.idleCount, 0, 'a 1 s server keep-alive leaves no safe idle time');
  assert.deepEqual(srv.conns, [1, 2]);
  pool.close();
  await srv.close();
});

test('at most maxIdle connections are kept, and the newest is reused first', async () => {
  const srv = await httpServer((_req, res) => {
    const id = srv.conns.at(-1);
    setTimeout(() => res.end(String(id)), 20);
  });
  const pool = new TargetPool(srv.origin, { maxIdle: 2 });
  const released: string[] = [];
  const one = () => send(pool, get('/')).then((r) => void released.push(r.body()));
  await Promise.all([one(), one(), one()]);
  assert.equal(pool.idleCount, 2);
  await sleep(30);
  assert.deepEqual([...srv.closedConns], [Number(released[2])], 'the one over maxIdle is closed');
  await one();
  assert.equal(released[3], released[1], 'LIFO: the most recently pooled connection is reused');
  pool.close();
  await srv.close();
});

test('close() closes idle connections and refuses new requests with a connect error', async () => {
  const srv = await httpServer((_req, res) => res.end('ok'));
  const pool = new TargetPool(srv.origin);
  await send(pool, get('/'));
  pool.close();
  await sleep(30);
  assert.ok(srv.closedConns.has(1));
  const r = await send(pool, get('/'));
  assert.deepEqual(r.error, { kind: 'connect', bodySent: false, responseStarted: false });
  await settled(r, pool);
  const { sink, rec } = recorder();
  pool.request(get('/'), sink).abort();
  await settled(rec, pool);
  assert.equal(rec.error, null, 'an aborted refusal is not reported');
  await srv.close();
});

test('the constructor refuses what it cannot serve, saying what is expected', () => {
  assert.throws(() => new TargetPool('https://127.0.0.1:9001'), /plain http origin, e\.g\. "http:\/\/127\.0\.0\.1:9001"/);
  assert.throws(() => new TargetPool('http://127.0.0.1:9001/api'), /plain http origin/);
  assert.throws(() => new TargetPool('127.0.0.1:9001'), /plain http origin|not a URL/);
  assert.throws(() => new TargetPool('http://127.0.0.1:9001', { connectTimeoutMs: 0 }), /connectTimeoutMs must be a positive/);
});

test('an error thrown while handling an answer (a bug) fails that call only: protocol error, connection closed, fault reported, pool still serves', async (t) => {
  const srv = await httpServer((req, res) => res.end(`answer ${req.url}`));
  const faults: unknown[] = [];
  const pool = new TargetPool(srv.origin, { onFault: (err) => faults.push(err) });
  t.after(() => (pool.close(), srv.close()));
  const { sink, rec } = recorder();
  const onHead = sink.onHead.bind(sink);
  sink.onHead = (status, headers) => {
    onHead(status, headers);
    throw new Error('bug in the sink');
  };
  pool.request(get('/first'), sink);
  await rec.done;
  assert.deepEqual(rec.error, { kind: 'protocol', bodySent: false, responseStarted: true });
  assert.equal((faults[0] as Error)?.message, 'bug in the sink');
  await settled(rec, pool);
  assert.equal(pool.idleCount, 0, 'the connection the error happened on is not reused');
  const next = await send(pool, get('/next'));
  assert.equal(next.body(), 'answer /next');
  assert.equal(faults.length, 1);
});

test('without onFault such an error is thrown on (fail fast), as before', { timeout: 10_000 }, async () => {
  // In a worker: the uncaught error ends that thread, which is what the listener's supervisor sees.
  const url = new URL('./http-client.js', import.meta.url).href;
  const srv = await httpServer((_req, res) => res.end('x'));
  try {
    const w = new Worker(
      `const { TargetPool } = await import(${JSON.stringify(url)});
       const pool = new TargetPool(${JSON.stringify(srv.origin)});
       pool.request({ method: 'GET', path: '/', headers: '', bodyLength: 0, timeoutMs: 5000 },
         { onHead() { throw new Error('bug in the sink'); }, onData() { return true; }, onEnd() {}, onError() {} });`,
      { eval: true, type: 'module' } as never,
    );
    const err = await new Promise<Error>((resolve) => w.once('error', resolve));
    assert.equal(err.message, 'bug in the sink');
  } finally {
    await srv.close();
  }
});
