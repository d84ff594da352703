// The proxy as a client and an upstream see it: method, path, query, headers and bodies pass
// through (streamed), hop-by-hop headers do not, and ward adds its own.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Agent, request as httpRequest } from 'node:http';
import { createHash, randomBytes } from 'node:crypto';
import { connect } from 'node:net';
import { policyDir, basePolicy, startWard, type WardProcess, type PolicyFiles } from './support/ward-process.js';
import { startUpstream, request, bearer, type TestUpstream } from './support/http.js';
import { signJwt, standardClaims } from './support/jwt.js';

let up: TestUpstream;
let pol: PolicyFiles;
let ward: WardProcess;
let auth: Record<string, string>;

before(async () => {
  up = await startUpstream();
  pol = policyDir();
  pol.write(basePolicy(up.url, { flood: { max_body_bytes: 64 * 1024 * 1024 } }));
  ward = await startWard(pol.dir);
  auth = bearer(signJwt(pol.key, standardClaims('acme')));
});

after(async () => {
  up.handle = undefined;
  await ward.stop();
  await up.close();
  pol.remove();
});

test('answers 404 no_route with a request_id when no route matches', async () => {
  const r = await request(`${ward.base}/nowhere`, { headers: auth });
  assert.equal(r.status, 404);
  assert.deepEqual(Object.keys(r.json()).sort(), ['error', 'request_id']);
  assert.equal(r.json().error, 'no_route');
});

test('route prefixes match on segment boundaries and methods', async () => {
  // /v1/calls is POST-only: a GET falls through to the /v1/ api route.
  const get = await request(`${ward.base}/v1/calls`, { headers: auth });
  assert.equal(get.status, 200);
  const post = await request(`${ward.base}/v1/calls/7`, { method: 'POST', headers: auth, body: 'x' });
  assert.equal(post.status, 200);
  const r = await request(`${ward.base}/v1x`, { headers: auth });
  assert.equal(r.status, 404);
});

test('keeps method, path, query and end-to-end headers; drops hop-by-hop ones; adds X-Forwarded-For and X-Request-Id', async () => {
  const r = await request(`${ward.base}/v1/things/9?a=1&b=%20x`, {
    method: 'PATCH',
    headers: { ...auth, 'x-custom': 'kept', connection: 'keep-alive, x-hop', 'x-hop': 'dropped', 'keep-alive': 'timeout=5', te: 'trailers', 'content-type': 'text/plain' },
    body: 'patch-body',
  });
  assert.equal(r.status, 200);
  const seen = up.seen.at(-1)!;
  assert.equal(seen.method, 'PATCH');
  assert.equal(seen.url, '/v1/things/9?a=1&b=%20x');
  assert.equal(seen.headers['x-custom'], 'kept');
  assert.equal(seen.headers['content-type'], 'text/plain');
  assert.equal(seen.headers['x-hop'], undefined);
  assert.equal(seen.headers['keep-alive'], undefined);
  assert.equal(seen.headers['te'], undefined);
  assert.equal(seen.bodyBytes, 10);
  assert.equal(seen.headers['x-forwarded-for'], '127.0.0.1');
  assert.ok(seen.headers['x-request-id']);
  assert.equal(r.headers['x-request-id'], seen.headers['x-request-id'], 'the client sees the same request id');
});

test('passes the upstream status, headers and body back, minus hop-by-hop headers', async () => {
  up.handle = (_req, res) => {
    res.writeHead(201, { 'x-upstream': 'yes', 'set-cookie': ['a=1', 'b=2'], 'content-type': 'application/json', connection: 'keep-alive', 'keep-alive': 'timeout=5' });
    res.end('{"made":true}');
  };
  const r = await request(`${ward.base}/v1/make`, { method: 'POST', headers: auth, body: '{}' });
  up.handle = undefined;
  assert.equal(r.status, 201);
  assert.equal(r.body, '{"made":true}');
  assert.equal(r.headers['x-upstream'], 'yes');
  assert.deepEqual(r.headers['set-cookie'], ['a=1', 'b=2']);
  assert.equal(r.headers['keep-alive'], undefined);
});

test('streams a 20 MB request body and a 20 MB chunked response intact', async () => {
  const big = randomBytes(20 * 1024 * 1024);
  const digest = createHash('sha256').update(big).digest('hex');
  up.handle = (req, res, body) => {
    res.writeHead(200, { 'x-digest': createHash('sha256').update(body).digest('hex') });
    // Chunked response (no content-length), written in pieces.
    let off = 0;
    const pump = () => {
      while (off < big.length) {
        const end = Math.min(off + 256 * 1024, big.length);
        const ok = res.write(big.subarray(off, end));
        off = end;
        if (!ok) return void res.once('drain', pump);
      }
      res.end();
    };
    pump();
  };
  const got = await new Promise<{ status: number; digest: string; upDigest: string }>((resolve, reject) => {
    const req = httpRequest(`${ward.base}/v1/upload`, { method: 'PUT', headers: { ...auth, 'content-length': String(big.length) }, agent: false }, (res) => {
      const h = createHash('sha256');
      res.on('data', (c: Buffer) => h.update(c));
      res.on('end', () => resolve({ status: res.statusCode!, digest: h.digest('hex'), upDigest: String(res.headers['x-digest']) }));
    });
    req.on('error', reject);
    req.end(big);
  });
  up.handle = undefined;
  assert.equal(got.status, 200);
  assert.equal(got.upDigest, digest, 'upstream received the body intact');
  assert.equal(got.digest, digest, 'client received the response intact');
});

test('many large answers at once, to clients that read slowly and pause, all arrive intact (one shared read buffer upstream)', async () => {
  // Six concurrent answers of ~12 MB (more than loopback's socket buffers hold), half with
  // Content-Length and half chunked, written by the upstream in uneven pieces; each client waits
  // before it reads and then pauses again and again, so ward holds data under backpressure on
  // several connections while it goes on reading the others into the same buffer.
  const bodies = Array.from({ length: 6 }, (_, i) => randomBytes(12 * 1024 * 1024 + i * 131_072 + (i % 5) * 17));
  up.handle = (req, res) => {
    const i = Number(new URL(req.url!, 'http://x').searchParams.get('i'));
    const body = bodies[i]!;
    res.writeHead(200, i % 2 === 0 ? { 'content-length': String(body.length) } : {});
    let off = 0;
    const pump = () => {
      while (off < body.length) {
        const end = Math.min(off + 1 + Math.floor(Math.random() * 90_000), body.length);
        const ok = res.write(body.subarray(off, end));
        off = end;
        if (!ok) return void res.once('drain', pump);
      }
      res.end();
    };
    pump();
  };
  const fetchOne = (i: number) =>
    new Promise<string>((resolve, reject) => {
      const req = httpRequest(`${ward.base}/v1/big?i=${i}`, { headers: auth, agent: false }, (res) => {
        const h = createHash('sha256');
        res.pause();
        setTimeout(() => res.resume(), 150);
        res.on('data', (c: Buffer) => {
          h.update(c);
          if (Math.random() < 0.05) {
            res.pause();
            setTimeout(() => res.resume(), Math.floor(Math.random() * 20));
          }
        });
        res.on('end', () => resolve(h.digest('hex')));
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end();
    });
  const got = await Promise.all(bodies.map((_, i) => fetchOne(i)));
  up.handle = undefined;
  assert.deepEqual(
    got,
    bodies.map((b) => createHash('sha256').update(b).digest('hex')),
  );
});

test('small answers arriving together are each written to their own client unchanged', async () => {
  // 32 keep-alive clients, 15 requests each: many small answers reach ward in the same turn of its
  // event loop and are written at its end, each from its own copy.
  up.handle = (req, res) => res.end(JSON.stringify({ url: req.url, pad: 'x'.repeat(req.url!.length * 7) }));
  const agent = new Agent({ keepAlive: true, maxSockets: 32 });
  try {
    const one = async (c: number) => {
      const wrong: string[] = [];
      for (let i = 0; i < 15; i++) {
        const url = `/v1/small/${c}/${i}`;
        const r = await request(`${ward.base}${url}`, { headers: auth, agent });
        if (r.status !== 200 || r.body !== JSON.stringify({ url, pad: 'x'.repeat(url.length * 7) })) wrong.push(`${url}: ${r.status} ${r.body.slice(0, 60)}`);
      }
      return wrong;
    };
    const wrong = (await Promise.all(Array.from({ length: 32 }, (_, c) => one(c)))).flat();
    assert.deepEqual(wrong, []);
  } finally {
    agent.destroy();
    up.handle = undefined;
  }
});

test('streams a chunked request body of unknown length', async () => {
  const parts = Array.from({ length: 50 }, (_, i) => Buffer.alloc(10_000, i));
  const got = await new Promise<number>((resolve, reject) => {
    const req = httpRequest(`${ward.base}/v1/stream`, { method: 'POST', headers: auth, agent: false }, (res) => {
      let body = '';
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve(JSON.parse(body).body_bytes));
    });
    req.on('error', reject);
    let i = 0;
    const next = () => {
      if (i === parts.length) return void req.end();
      req.write(parts[i++]);
      setImmediate(next);
    };
    next();
  });
  assert.equal(got, 500_000);
});

test('HEAD and 204 responses carry no body', async () => {
  up.handle = (req, res) => {
    if (req.method === 'HEAD') {
      res.writeHead(200, { 'content-length': '1234', 'x-head': '1' });
      res.end();
    } else {
      res.writeHead(204);
      res.end();
    }
  };
  const head = await request(`${ward.base}/v1/h`, { method: 'HEAD', headers: auth });
  assert.equal(head.status, 200);
  assert.equal(head.headers['x-head'], '1');
  assert.equal(head.body, '');
  const del = await request(`${ward.base}/v1/h`, { method: 'DELETE', headers: auth });
  assert.equal(del.status, 204);
  assert.equal(del.body, '');
  up.handle = undefined;
});

test('answers with heads and chunks larger than a uWS cork arrive whole (written uncorked)', async () => {
  // ward writes at most CORK_BUDGET bytes inside one uWS cork (http-exchange.ts): bigger heads and
  // chunks take the uncorked path. Heads of ~24 KB, with a Content-Length body, a chunked body of
  // 40 KB pieces, on HEAD and 204, must all reach the client exactly.
  const big = (c: string) => c.repeat(6000);
  const headers = { 'x-big-a': big('a'), 'x-big-b': big('b'), 'x-big-c': big('c'), 'x-big-d': big('d') };
  const piece = (i: number) => Buffer.alloc(40_000, 65 + i);
  up.handle = (req, res) => {
    const u = new URL(req.url!, 'http://x');
    if (u.pathname.endsWith('/cl')) {
      res.writeHead(200, { ...headers, 'content-length': '5' });
      res.end('hello');
    } else if (u.pathname.endsWith('/chunked')) {
      res.writeHead(200, headers);
      for (let i = 0; i < 5; i++) res.write(piece(i));
      res.end();
    } else if (req.method === 'HEAD') {
      res.writeHead(200, { ...headers, 'content-length': '7' });
      res.end();
    } else {
      res.writeHead(204, headers);
      res.end();
    }
  };
  try {
    const check = (r: { status: number; headers: Record<string, unknown> }, status: number) => {
      assert.equal(r.status, status);
      for (const [k, v] of Object.entries(headers)) assert.equal(r.headers[k], v, k);
    };
    const o = { headers: auth, maxHeaderSize: 64 * 1024 };
    const cl = await request(`${ward.base}/v1/big-head/cl`, o);
    check(cl, 200);
    assert.equal(cl.body, 'hello');
    const ch = await request(`${ward.base}/v1/big-head/chunked`, o);
    check(ch, 200);
    assert.equal(ch.body, Buffer.concat([0, 1, 2, 3, 4].map(piece)).toString());
    const head = await request(`${ward.base}/v1/big-head/x`, { ...o, method: 'HEAD' });
    check(head, 200);
    assert.equal(head.body, '');
    const none = await request(`${ward.base}/v1/big-head/x`, { ...o, method: 'DELETE' });
    check(none, 204);
  } finally {
    up.handle = undefined;
  }
});

test('public routes need no token', async () => {
  const r = await request(`${ward.base}/v1/status`);
  assert.equal(r.status, 200);
});

/** Writes raw HTTP on one connection; every status line that came back, and whether it closed. */
function rawExchange(text: string, after?: string): Promise<{ statuses: string[]; closed: boolean }> {
  return new Promise((resolve) => {
    const s = connect(ward.port, '127.0.0.1', () => {
      s.write(text);
      if (after !== undefined) setTimeout(() => s.writable && s.write(after), 100);
    });
    let got = '';
    const done = (closed: boolean) => resolve({ statuses: [...got.matchAll(/HTTP\/1\.1 \d{3} [A-Za-z ]+?\r\n/g)].map((m) => m[0].trim()), closed });
    s.on('data', (d) => (got += d));
    s.on('close', () => done(true));
    s.on('error', () => {});
    setTimeout(() => (s.destroy(), done(false)), 1500).unref();
  });
}

test('a path with a dot segment gets 400 bad_path and never reaches the upstream, however it is spelled', async () => {
  // Through the public /v1/status route, an upstream that resolves `..` would otherwise serve
  // /v1/calls to a caller with no token at all.
  const before = up.seen.length;
  for (const path of ['/v1/status/../calls', '/v1/status/%2e%2e/calls', '/v1/status/..%2Fcalls', '/v1/status/..\\calls', '/v1/./calls']) {
    const r = await rawExchange(`GET ${path} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n`);
    assert.deepEqual(r.statuses, ['HTTP/1.1 400 Bad Request'], path);
  }
  const r = await request(`${ward.base}/v1/status/..%2Fcalls`); // (a URL object would resolve a plain `..` itself)
  assert.equal(r.json().error, 'bad_path');
  assert.match(r.json().request_id, /\S/);
  assert.equal(up.seen.length, before, 'the upstream saw a refused path');
  // Dots inside names are ordinary.
  assert.equal((await request(`${ward.base}/v1/status/report.v2...json`)).status, 200);
  assert.equal(up.seen.at(-1)!.url, '/v1/status/report.v2...json');
});

test('a body whose length could be read two ways is refused and its connection closed; the upstream never sees it', async () => {
  const token = auth.authorization;
  const before = up.seen.length;
  const twoLengths = await rawExchange(`POST /v1/x HTTP/1.1\r\nHost: a\r\nAuthorization: ${token}\r\nContent-Length: 3\r\nContent-Length: 5\r\n\r\nabcde`);
  assert.deepEqual(twoLengths, { statuses: ['HTTP/1.1 400 Bad Request'], closed: true });
  for (const coding of ['gzip, chunked', 'xchunked']) {
    const r = await rawExchange(`POST /v1/x HTTP/1.1\r\nHost: a\r\nAuthorization: ${token}\r\nTransfer-Encoding: ${coding}\r\n\r\n3\r\nabc\r\n0\r\n\r\n`);
    assert.deepEqual(r, { statuses: ['HTTP/1.1 501 Not Implemented'], closed: true }, coding);
  }
  const twice = await rawExchange(`POST /v1/x HTTP/1.1\r\nHost: a\r\nAuthorization: ${token}\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n`);
  assert.deepEqual(twice, { statuses: ['HTTP/1.1 501 Not Implemented'], closed: true });
  assert.equal(up.seen.length, before, 'the upstream saw a refused request');
  // The same length twice is one length.
  const same = await rawExchange(`POST /v1/x HTTP/1.1\r\nHost: a\r\nAuthorization: ${token}\r\nContent-Length: 5\r\nContent-Length: 5\r\nConnection: close\r\n\r\nabcde`);
  assert.deepEqual(same.statuses, ['HTTP/1.1 200 OK']);
  assert.equal(up.seen.at(-1)!.bodyBytes, 5);
});

test('a refused request without a body keeps the connection for the next request', async () => {
  const r = await rawExchange('GET /v1/x HTTP/1.1\r\nHost: a\r\n\r\n', `GET /v1/status HTTP/1.1\r\nHost: a\r\n\r\n`);
  assert.deepEqual(r.statuses, ['HTTP/1.1 401 Unauthorized', 'HTTP/1.1 200 OK']);
});

test('a refused request whose body was not read closes the connection instead of misreading the body', async () => {
  // No token: refused at once. A bad token: refused after verification. Either way the body that
  // follows must not be parsed as a request.
  const smuggled = 'GET /v1/status HTTP/1.1\r\nHost: a\r\n\r\n';
  for (const auth of ['', `Authorization: Bearer ${signJwt(pol.key, standardClaims('acme', { aud: 'nope' }))}\r\n`]) {
    const r = await rawExchange(`POST /v1/x HTTP/1.1\r\nHost: a\r\n${auth}Content-Length: ${smuggled.length}\r\n\r\n`, smuggled);
    assert.deepEqual(r.statuses, ['HTTP/1.1 401 Unauthorized']);
    assert.equal(r.closed, true);
  }
});
