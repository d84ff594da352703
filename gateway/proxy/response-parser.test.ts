import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ResponseParser, MAX_HEAD_BYTES, type ResponseHandler } from './response-parser.js';

interface Parsed {
  status: number;
  headers: string[];
  body: string;
  complete: boolean;
  error: string;
  keepAlive: boolean;
  /** Bytes left unconsumed after the response completed. */
  rest: number;
}

/** Feeds `parts` in order, as a socket would deliver them. */
function parse(parts: Buffer[], opts: { head?: boolean; eof?: boolean } = {}): Parsed {
  const out: Parsed = { status: 0, headers: [], body: '', complete: false, error: '', keepAlive: false, rest: 0 };
  const chunks: Buffer[] = [];
  const handler: ResponseHandler = {
    onResponseHead(status, headers) {
      assert.equal(out.status, 0, 'one final head per response');
      out.status = status;
      out.headers = [...headers];
      return true;
    },
    onResponseData(chunk) {
      assert.ok(chunk.length > 0, 'no empty data chunks');
      chunks.push(Buffer.from(chunk));
      return true;
    },
    onResponseComplete() {
      out.complete = true;
    },
  };
  const p = new ResponseParser(handler);
  p.reset(opts.head === true);
  for (const part of parts) {
    const off = p.execute(part);
    if (off < 0) {
      out.error = p.error;
      break;
    }
    if (out.complete) {
      out.rest += part.length - off;
    }
  }
  if (opts.eof && !out.error && !out.complete && p.finish()) out.complete = true;
  out.body = Buffer.concat(chunks).toString('latin1');
  out.keepAlive = p.keepAlive;
  return out;
}

const one = (s: string, opts?: { head?: boolean; eof?: boolean }) => parse([Buffer.from(s, 'latin1')], opts);

const CHUNKED =
  'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n' +
  '5;name=value;q="quoted; still ext"\r\nhello\r\n' +
  '1\r\n,\r\n' +
  'A \t;ext\r\n world!!!!\r\n' +
  '0;last\r\nX-Sum: 42\r\nX-Other: y\r\n\r\n';

test('a chunked response with extensions and trailers parses identically at every pair of split points', () => {
  const buf = Buffer.from(CHUNKED, 'latin1');
  const whole = parse([buf]);
  assert.equal(whole.error, '');
  assert.equal(whole.status, 200);
  assert.deepEqual(whole.headers, ['content-type', 'text/plain']);
  assert.equal(whole.body, 'hello, world!!!!');
  assert.ok(whole.complete);
  assert.ok(whole.keepAlive);
  for (let i = 0; i <= buf.length; i++) {
    for (let j = i; j <= buf.length; j++) {
      const r = parse([buf.subarray(0, i), buf.subarray(i, j), buf.subarray(j)]);
      assert.deepEqual(r, whole, `split at ${i},${j}`);
    }
  }
  const bytes: Buffer[] = [];
  for (let i = 0; i < buf.length; i++) bytes.push(buf.subarray(i, i + 1));
  assert.deepEqual(parse(bytes), whole);
});

test('a content-length body split anywhere is delivered exactly, and bytes after it are left over', () => {
  const buf = Buffer.from('HTTP/1.1 201 Created\r\nContent-Length: 10\r\nX-A: 1\r\n\r\n0123456789EXTRA', 'latin1');
  for (let i = 0; i <= buf.length; i++) {
    const r = parse([buf.subarray(0, i), buf.subarray(i)]);
    assert.equal(r.status, 201);
    assert.deepEqual(r.headers, ['content-length', '10', 'x-a', '1']);
    assert.equal(r.body, '0123456789');
    assert.ok(r.complete);
    assert.equal(r.rest, 5, `split at ${i}`);
  }
});

test('header names are lower-cased, values trimmed, hop-by-hop fields and Connection-named fields dropped', () => {
  const r = one(
    'HTTP/1.1 200 OK\r\nX-Case:  padded value \t\r\nConnection: keep-alive, X-Secret\r\nKeep-Alive: timeout=5\r\n' +
      'X-Secret: s\r\nProxy-Authenticate: Basic\r\nUpgrade: h2c\r\nTE: trailers\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n' +
      'X-Empty:\r\nContent-Length: 0\r\n\r\n',
  );
  assert.equal(r.error, '');
  assert.deepEqual(r.headers, ['x-case', 'padded value', 'set-cookie', 'a=1', 'set-cookie', 'b=2', 'x-empty', '', 'content-length', '0']);
  assert.ok(r.complete);
});

test('UTF-8 header values come out as the same characters, so they re-encode to the same bytes', () => {
  const raw = Buffer.concat([Buffer.from('HTTP/1.1 200 OK\r\nContent-Disposition: attachment; filename="'), Buffer.from('naïve ☃.txt', 'utf8'), Buffer.from('"\r\nContent-Length: 0\r\n\r\n')]);
  const r = parse([raw]);
  assert.equal(r.headers[1], 'attachment; filename="naïve ☃.txt"');
  for (let i = 0; i <= raw.length; i++) assert.deepEqual(parse([raw.subarray(0, i), raw.subarray(i)]).headers, r.headers, `split at ${i}`);
});

test('HEAD responses, 204 and 304 have no body whatever their Content-Length says', () => {
  const head = one('HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n', { head: true });
  assert.ok(head.complete);
  assert.deepEqual(head.headers, ['content-length', '100']);
  assert.equal(head.body, '');
  for (const s of ['204 No Content', '304 Not Modified']) {
    const r = one(`HTTP/1.1 ${s}\r\nContent-Length: 7\r\n\r\n`);
    assert.ok(r.complete, s);
    assert.equal(r.body, '');
    assert.equal(r.rest, 0);
  }
});

test('interim 1xx responses are skipped', () => {
  const r = one('HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
  assert.equal(r.status, 200);
  assert.equal(r.body, 'ok');
  assert.ok(r.complete);
});

test('a body without length is read until close and the connection is not kept', () => {
  const r = parse([Buffer.from('HTTP/1.1 200 OK\r\n\r\nsome'), Buffer.from(' bytes')], { eof: true });
  assert.equal(r.body, 'some bytes');
  assert.ok(r.complete);
  assert.equal(r.keepAlive, false);
  const cut = parse([Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nsome')], { eof: true });
  assert.equal(cut.complete, false, 'EOF inside a content-length body is not an end');
});

test('keep-alive follows the version and Connection', () => {
  assert.equal(one('HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n').keepAlive, true);
  assert.equal(one('HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n').keepAlive, false);
  assert.equal(one('HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n').keepAlive, false);
  assert.equal(one('HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n').keepAlive, true);
});

test('Transfer-Encoding wins over Content-Length, which is dropped, and the connection is closed after', () => {
  const r = one('HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n');
  assert.equal(r.body, 'hello');
  assert.deepEqual(r.headers, []);
  assert.ok(r.complete);
  assert.equal(r.keepAlive, false);
});

test('identical repeated Content-Length values are accepted once', () => {
  const r = one('HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok');
  assert.equal(r.body, 'ok');
  assert.deepEqual(r.headers, ['content-length', '2']);
});

test('the status line may omit the reason phrase', () => {
  assert.equal(one('HTTP/1.1 404 \r\nContent-Length: 0\r\n\r\n').status, 404);
  assert.equal(one('HTTP/1.1 404\r\nContent-Length: 0\r\n\r\n').status, 404);
});

const malformed: Array<[string, string]> = [
  ['HTTP/2 200 OK\r\n\r\n', 'bad status line'],
  ['HTTP/1.1 20 OK\r\n\r\n', 'bad status line'],
  ['HTTP/1.1 2000 OK\r\n\r\n', 'bad status line'],
  ['HTTP/1.1 099 OK\r\n\r\n', 'bad status line'],
  ['HTTP/1.1 600 OK\r\n\r\n', 'bad status line'],
  ['HTTP/1.1 200 O\x01K\r\n\r\n', 'bad status line'],
  ['ICY 200 OK\r\n\r\n', 'bad status line'],
  ['\r\nHTTP/1.1 200 OK\r\n\r\n', 'bad status line'],
  ['HTTP/1.1 200 OK\r\nNo colon here\r\n\r\n', 'bad header line'],
  ['HTTP/1.1 200 OK\r\n: empty name\r\n\r\n', 'bad header line'],
  ['HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n', 'bad header name'],
  ['HTTP/1.1 200 OK\r\nX-A: 1\r\n folded\r\n\r\n', 'bad header line'],
  ['HTTP/1.1 200 OK\r\nX-A: a\nb\r\n\r\n', 'bad header value'],
  ['HTTP/1.1 200 OK\r\nX-A: a\rb\r\n\r\n', 'bad header value'],
  ['HTTP/1.1 200 OK\r\nX-A: a\x01b\r\n\r\n', 'bad header value'],
  ['HTTP/1.1 200 OK\r\nX-B: ok\r\nX-A: a\x7f\r\n\r\n', 'bad header value'],
  ['HTTP/1.1 200 OK\r\nX-\x01A: b\r\n\r\n', 'bad header name'],
  ['HTTP/1.1 200 OK\r\nX-\rA: b\r\n\r\n', 'bad header name'],
  ['HTTP/1.1 200 O\nK\r\n\r\n', 'bad status line'],
  ['HTTP/1.1 200 OK\r\nX-A: b\r\r\n\r\n', 'bad header value'],
  ['HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok', 'conflicting content-length'],
  ['HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\n\r\nok', 'bad content-length'],
  ['HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n', 'bad content-length'],
  ['HTTP/1.1 200 OK\r\nContent-Length: +2\r\n\r\nok', 'bad content-length'],
  ['HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n', 'unsupported transfer-encoding'],
  ['HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n', 'unsupported transfer-encoding'],
  ['HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n', 'unsupported transfer-encoding'],
  ['HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n', 'transfer-encoding in an HTTP/1.0 response'],
  ['HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n', 'unexpected 101 Switching Protocols'],
  ['HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n', 'bad chunk size'],
  ['HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\r\n', 'bad chunk size'],
  ['HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\n', 'bad chunk size'],
  ['HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\r\n', 'bad chunk size'],
  ['HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\rhello\r\n', 'bad chunk size line'],
  ['HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nhello\r\n', 'chunk data longer than its size'],
  ['HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1;a\x00b\r\n', 'bad chunk extension'],
  ['HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffff\r\n', 'chunk size too large'],
  ['HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n folded: x\r\n\r\n', 'bad trailer line'],
  ['HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: 1\n\r\n', 'bad trailer line'],
];

test('malformed responses are refused with a reason, whole or split', () => {
  for (const [text, reason] of malformed) {
    assert.equal(one(text).error, reason, JSON.stringify(text));
    const buf = Buffer.from(text, 'latin1');
    for (let i = 1; i < buf.length; i++) {
      assert.equal(parse([buf.subarray(0, i), buf.subarray(i)]).error, reason, `${JSON.stringify(text)} split at ${i}`);
    }
  }
});

test('a response head over 64 KiB is refused, whether it arrives at once or in pieces', () => {
  const big = 'HTTP/1.1 200 OK\r\nX-Big: ' + 'a'.repeat(MAX_HEAD_BYTES) + '\r\n\r\n';
  assert.equal(one(big).error, 'response head too large');
  const parts: Buffer[] = [];
  for (let i = 0; i < big.length; i += 1000) parts.push(Buffer.from(big.slice(i, i + 1000)));
  assert.equal(parse(parts).error, 'response head too large');
  const endless = Buffer.from('HTTP/1.1 200 OK\r\n' + 'X-A: b\r\n'.repeat(10000));
  assert.equal(parse([endless]).error, 'response head too large');
  const fits = 'HTTP/1.1 200 OK\r\nX-Big: ' + 'a'.repeat(MAX_HEAD_BYTES - 100) + '\r\nContent-Length: 0\r\n\r\n';
  assert.equal(one(fits).error, '');
});

test('a handler returning false stops parsing right after that data, and the rest parses later', () => {
  const buf = Buffer.from('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n2\r\ncd\r\n0\r\n\r\n');
  const seen: string[] = [];
  let done = false;
  const p = new ResponseParser({
    onResponseHead: () => true,
    onResponseData: (c) => (seen.push(c.toString()), false),
    onResponseComplete: () => (done = true),
  });
  p.reset(false);
  let rest = buf;
  while (!done) {
    const off = p.execute(rest);
    assert.ok(off > 0);
    rest = rest.subarray(off);
  }
  assert.deepEqual(seen, ['ab', 'cd']);
  assert.equal(rest.length, 0);
});

test('a connection answering with the same head again gets the same parse, and a different head of the same length is parsed anew', () => {
  // One parser, as one keep-alive connection: the second identical head comes from the parser's
  // cache of the last head (compared byte for byte), which must not change any outcome.
  const seen: { status: number; headers: readonly string[]; body: string; complete: boolean }[] = [];
  let cur: { status: number; headers: readonly string[]; body: string; complete: boolean };
  const p = new ResponseParser({
    onResponseHead(status, headers) {
      cur = { status, headers, body: '', complete: false };
      seen.push(cur);
      return true;
    },
    onResponseData(chunk) {
      cur.body += chunk.toString('latin1');
      return true;
    },
    onResponseComplete() {
      cur.complete = true;
    },
  });
  const send = (raw: string, head = false) => {
    p.reset(head);
    const buf = Buffer.from(raw, 'latin1');
    assert.equal(p.execute(buf), buf.length, p.error);
  };
  const a = 'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\nConnection: x-hop\r\nX-Hop: 1\r\n\r\n';
  send(a + 'hello');
  send(a + 'world');
  send(a, true); // HEAD: the same head, no body this time
  // Same length as `a`, other bytes: status 404, Content-Length 7.
  const b = 'HTTP/1.1 404 No\r\nContent-Type: text/plain\r\nContent-Length: 7\r\nConnection: x-hop\r\nX-Hop: 1\r\n\r\n';
  assert.equal(b.length, a.length);
  send(b + 'missing');
  send(a + 'again');
  assert.deepEqual(
    seen.map((r) => [r.status, r.body, r.complete]),
    [
      [200, 'hello', true],
      [200, 'world', true],
      [200, '', true],
      [404, 'missing', true],
      [200, 'again', true],
    ],
  );
  for (const r of seen) assert.deepEqual(r.headers, ['content-type', 'text/plain', 'content-length', r.status === 404 ? '7' : '5']);
  // Shared between responses, so nobody may change them: they are frozen, and a write throws.
  assert.ok(Object.isFrozen(seen[1].headers));
  assert.throws(() => (seen[1].headers as string[]).push('x'));
  // A chunked head that also has Content-Length: stripped for every response that reuses it.
  const c = 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n';
  send(c + '3\r\nabc\r\n0\r\n\r\n');
  assert.equal(p.keepAlive, false);
  send(c + '2\r\nde\r\n0\r\n\r\n');
  assert.equal(p.keepAlive, false);
  assert.deepEqual(seen.slice(5).map((r) => [r.headers, r.body, r.complete]), [
    [[], 'abc', true],
    [[], 'de', true],
  ]);
});
