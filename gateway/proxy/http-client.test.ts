import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { TargetPool, type OutgoingRequest, type UpstreamCall } from './http-client.js';
import { get, httpServer, rawServer, recorder, send } from './http-client-fixtures.js';

test('sequential GETs reuse one keep-alive connection, with Host added and hop-by-hop fields removed', async () => {
  const srv = await httpServer((req, res) => {
    res.setHeader('Keep-Alive', 'timeout=5');
    res.setHeader('X-Seen', JSON.stringify({ host: req.headers.host, xff: req.headers['x-forwarded-for'], conn: req.headers.connection, raw: req.rawHeaders }));
    res.end(`hello ${req.url}`);
  });
  const pool = new TargetPool(srv.origin);
  for (let i = 0; i < 3; i++) {
    const r = await send(pool, get(`/a?i=${i}`));
    assert.equal(r.status, 200);
    assert.equal(r.body(), `hello /a?i=${i}`);
    const seen = JSON.parse(r.header('x-seen')!);
    assert.equal(seen.host, `127.0.0.1:${srv.port}`);
    assert.equal(seen.xff, '192.0.2.1');
    assert.equal(seen.conn, 'keep-alive');
    for (const h of ['connection', 'keep-alive', 'transfer-encoding']) assert.equal(r.header(h), undefined, h);
    assert.equal(pool.inFlight, 0);
  }
  const own = await send(pool, get('/', { headers: 'host: tenant.example\r\n' }));
  const seen = JSON.parse(own.header('x-seen')!);
  assert.equal(seen.host, 'tenant.example');
  assert.equal(seen.raw.filter((h: string) => h.toLowerCase() === 'host').length, 1, 'a caller-given Host is not doubled');
  assert.deepEqual(srv.conns, [1, 1, 1, 1]);
  assert.equal(pool.idleCount, 1);
  pool.close();
  await srv.close();
});

for (const framing of ['Content-Length', 'chunked'] as const) {
  test(`a 20 MB ${framing} body streams through a slow reader without being buffered whole`, async () => {
    const total = 20 * 1024 * 1024;
    let writtenWhenServerStarted = -1;
    let written = 0;
    const srv = await httpServer((req, res) => {
      req.pause();
      setTimeout(() => {
        writtenWhenServerStarted = written;
        const h = createHash('sha256');
        let n = 0;
        req.on('data', (d: Buffer) => (h.update(d), (n += d.length)));
        req.on('end', () => res.end(JSON.stringify({ n, sha: h.digest('hex'), cl: req.headers['content-length'] ?? req.headers['transfer-encoding'] })));
        req.resume();
      }, 300);
    });
    const pool = new TargetPool(srv.origin);
    const { sink, rec } = recorder();
    const call = pool.request({ method: 'POST', path: '/upload', headers: '', bodyLength: framing === 'chunked' ? -1 : total, timeoutMs: 10000 }, sink);
    const sent = createHash('sha256');
    let refusals = 0;
    const pump = () => {
      while (written < total) {
        const c = Buffer.alloc(64 * 1024, written / 65536);
        written += c.length;
        sent.update(c);
        if (!call.write(c)) return void refusals++;
      }
      call.end();
    };
    call.onDrain(pump);
    pump();
    await rec.done;
    assert.equal(rec.error, null);
    const got = JSON.parse(rec.body());
    assert.deepEqual(got, { n: total, sha: sent.digest('hex'), cl: framing === 'chunked' ? 'chunked' : String(total) });
    assert.ok(refusals > 0, 'write() reported a full socket');
    assert.ok(writtenWhenServerStarted < total / 2, `the writer was held back (${writtenWhenServerStarted} bytes written before the server read)`);
    assert.equal(pool.inFlight, 0);
    pool.close();
    await srv.close();
  });
}

test('a body of unknown length is sent chunked, empty writes included, and an empty one too', async () => {
  const srv = await httpServer((req, res) => {
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => res.end(JSON.stringify({ te: req.headers['transfer-encoding'], body })));
  });
  const pool = new TargetPool(srv.origin);
  const req: OutgoingRequest = { method: 'PUT', path: '/x', headers: '', bodyLength: -1, timeoutMs: 5000 };
  const r = await send(pool, req, [Buffer.from('one,'), Buffer.alloc(0), new Uint8Array([116, 119, 111]), Buffer.from(',three')]);
  assert.deepEqual(JSON.parse(r.body()), { te: 'chunked', body: 'one,two,three' });
  const empty = await send(pool, req, []);
  assert.deepEqual(JSON.parse(empty.body()), { te: 'chunked', body: '' });
  const post = await send(pool, { method: 'POST', path: '/x', headers: '', bodyLength: 0, timeoutMs: 5000 });
  assert.equal(JSON.parse(post.body()).body, '');
  assert.deepEqual(srv.conns, [1, 1, 1]);
  pool.close();
  await srv.close();
});

test('a chunked response with extensions and trailers written byte by byte arrives intact', async () => {
  const response =
    'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\nX-A: 1\r\n\r\n' +
    '5;a=b;c="d;e"\r\nhello\r\n7\r\n, world\r\n0;end\r\nX-Sum: 12\r\n\r\n';
  const srv = await rawServer((s) => {
    let i = 0;
    const next = () => {
      if (i === response.length) return;
      s.write(response[i++], 'latin1');
      setImmediate(next);
    };
    next();
  });
  const pool = new TargetPool(srv.origin);
  for (let n = 0; n < 2; n++) {
    const r = await send(pool, get('/'));
    assert.equal(r.body(), 'hello, world');
    assert.deepEqual(r.headers, ['x-a', '1']);
  }
  assert.deepEqual(srv.conns, [1, 1], 'the connection is reused after a chunked response');
  pool.close();
  await srv.close();
});

test('a client that stops reading stops the upstream socket being read, and the response completes after resume', async () => {
  const total = 16 * 1024 * 1024;
  let serverWrote = 0;
  const srv = await httpServer((_req, res) => {
    const chunk = Buffer.alloc(64 * 1024, 7);
    const pump = () => {
      while (serverWrote < total) {
        serverWrote += chunk.length;
        if (!res.write(chunk)) return void res.once('drain', pump);
      }
      res.end();
    };
    pump();
  });
  const pool = new TargetPool(srv.origin);
  let blocked = true;
  let received = 0;
  const { sink, rec } = recorder((c) => ((received += c.length), !blocked));
  rec.chunks = { push: () => 0 } as unknown as Buffer[]; // count only, do not keep 16 MB
  const call: UpstreamCall = pool.request(get('/big'), sink);
  await sleep(300);
  const first = serverWrote;
  const receivedWhilePaused = received;
  await sleep(200);
  assert.equal(serverWrote, first, 'the server is blocked while the client does not read');
  assert.ok(first < total / 2, `server wrote ${first} of ${total}`);
  assert.equal(received, receivedWhilePaused, 'no data is delivered while paused');
  blocked = false;
  call.resume();
  await rec.done;
  assert.equal(rec.error, null);
  assert.equal(received, total);
  assert.equal(pool.inFlight, 0);
  pool.close();
  await srv.close();
});

test('HEAD, 204 and 304 responses end without a body and keep the connection', async () => {
  const srv = await httpServer((req, res) => {
    if (req.url === '/204') res.writeHead(204).end();
    else if (req.url === '/304') res.writeHead(304, { ETag: '"x"' }).end();
    else res.writeHead(200, { 'Content-Length': 5 }).end(req.method === 'HEAD' ? undefined : 'hello');
  });
  const pool = new TargetPool(srv.origin);
  const head = await send(pool, get('/', { method: 'HEAD' }));
  assert.equal(head.status, 200);
  assert.equal(head.header('content-length'), '5');
  assert.equal(head.body(), '');
  const nc = await send(pool, get('/204'));
  assert.equal(nc.status, 204);
  assert.equal(nc.body(), '');
  const nm = await send(pool, get('/304'));
  assert.equal(nm.status, 304);
  assert.equal(nm.header('etag'), '"x"');
  const after = await send(pool, get('/'));
  assert.equal(after.body(), 'hello');
  assert.deepEqual(srv.conns, [1, 1, 1, 1]);
  pool.close();
  await srv.close();
});

test('interim 100 Continue responses are skipped', async () => {
  const srv = await httpServer((req, res) => {
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => res.end(`got ${body}`));
  });
  const pool = new TargetPool(srv.origin);
  // node's server answers "Expect: 100-continue" with an interim 100 before the final response.
  const r = await send(pool, { method: 'POST', path: '/', headers: 'Expect: 100-continue\r\n', bodyLength: 4, timeoutMs: 5000 }, [Buffer.from('ping')]);
  assert.equal(r.status, 200);
  assert.equal(r.body(), 'got ping');
  pool.close();
  await srv.close();
  const raw = await rawServer((s) => {
    s.write('HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\n');
    setTimeout(() => s.write('HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok'), 20);
  });
  const pool2 = new TargetPool(raw.origin);
  const r2 = await send(pool2, get('/'));
  assert.equal(r2.status, 201);
  assert.equal(r2.body(), 'ok');
  pool2.close();
  await raw.close();
});

test('Connection: close from upstream: the connection is closed, and the next request opens another', async () => {
  const srv = await httpServer((_req, res) => res.setHeader('Connection', 'close').end('bye'));
  const pool = new TargetPool(srv.origin);
  assert.equal((await send(pool, get('/'))).body(), 'bye');
  assert.equal(pool.idleCount, 0);
  assert.equal((await send(pool, get('/'))).body(), 'bye');
  assert.deepEqual(srv.conns, [1, 2]);
  await sleep(50);
  assert.ok(srv.closedConns.has(1));
  pool.close();
  await srv.close();
});

test('a body delimited by the end of the connection is read to its end', async () => {
  const srv = await rawServer((s) => {
    s.write('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nfirst ');
    setTimeout(() => s.end('second'), 20);
  });
  const pool = new TargetPool(srv.origin);
  const r = await send(pool, get('/'));
  assert.equal(r.error, null);
  assert.equal(r.body(), 'first second');
  assert.equal(pool.idleCount, 0);
  assert.equal(pool.inFlight, 0);
  pool.close();
  await srv.close();
});

test('a response that ends before the request body does ends the call, and the connection is not reused', async () => {
  const srv = await httpServer((_req, res) => res.writeHead(413).end('too big'));
  const pool = new TargetPool(srv.origin);
  const { sink, rec } = recorder();
  const call = pool.request({ method: 'POST', path: '/', headers: '', bodyLength: 1000, timeoutMs: 5000 }, sink);
  call.write(Buffer.alloc(10));
  await rec.done;
  assert.equal(rec.status, 413);
  assert.equal(rec.body(), 'too big');
  assert.equal(call.write(Buffer.alloc(10)), true, 'later writes are ignored');
  call.end();
  assert.equal(pool.idleCount, 0);
  assert.equal(pool.inFlight, 0);
  assert.equal((await send(pool, get('/'))).status, 413);
  assert.deepEqual(srv.conns, [1, 2]);
  assert.deepEqual(rec.late, []);
  pool.close();
  await srv.close();
});

test('a sink that pauses on every chunk gets the whole body, and the connection is reused after', async () => {
  const srv = await rawServer((s) => s.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n2\r\ncd\r\n1\r\ne\r\n0\r\n\r\n'));
  const pool = new TargetPool(srv.origin);
  for (let i = 0; i < 2; i++) {
    let call!: UpstreamCall;
    let pauses = 0;
    const { sink, rec } = recorder(() => (pauses++, setImmediate(() => call.resume()), false));
    call = pool.request(get('/'), sink);
    await rec.done;
    assert.equal(rec.body(), 'abcde');
    assert.equal(pauses, 3);
  }
  assert.deepEqual(srv.conns, [1, 1]);
  pool.close();
  await srv.close();
});

test('a response followed at once by the server closing is delivered whole to a sink that pauses', async () => {
  const srv = await rawServer((s) => {
    s.end('HTTP/1.1 200 OK\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n2\r\ncd\r\n0\r\n\r\n');
  });
  const pool = new TargetPool(srv.origin);
  let call!: UpstreamCall;
  const { sink, rec } = recorder(() => (setTimeout(() => call.resume(), 50), false));
  call = pool.request(get('/'), sink);
  await rec.done;
  assert.equal(rec.error, null);
  assert.equal(rec.body(), 'abcd');
  assert.equal(pool.inFlight, 0);
  pool.close();
  await srv.close();
});
