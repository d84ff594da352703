// Slow and bloated clients at the edge: a request head that never completes (slowloris) and an
// oversized head are cut off before any per-tenant work.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { policyDir, basePolicy, startWard, type WardProcess, type PolicyFiles } from './support/ward-process.js';
import { startUpstream, type TestUpstream } from './support/http.js';

let up: TestUpstream;
let pol: PolicyFiles;
let ward: WardProcess;

before(async () => {
  up = await startUpstream();
  pol = policyDir();
  pol.write(basePolicy(up.url, { flood: { max_header_bytes: 4096 } }));
  ward = await startWard(pol.dir);
});

after(async () => {
  await ward.stop();
  await up.close();
  pol.remove();
});

/** Writes raw bytes, returns what came back before the connection closed. */
function raw(head: string): Promise<string> {
  return new Promise((resolve) => {
    const s = connect(ward.port, '127.0.0.1', () => s.write(head));
    let got = '';
    s.on('data', (d) => (got += d));
    s.on('close', () => resolve(got));
    s.on('error', () => {});
  });
}

test('answers 431 headers_too_large for a head over max_header_bytes, before auth', async () => {
  const got = await raw(`GET /v1/x HTTP/1.1\r\nHost: a\r\nX-Pad: ${'p'.repeat(5000)}\r\n\r\n`);
  assert.match(got, /^HTTP\/1\.1 431 /);
  assert.match(got, /"error":"headers_too_large"/);
  assert.equal(up.seen.length, 0);
});

test('a head under the limit goes through to auth', async () => {
  const got = await raw(`GET /v1/x HTTP/1.1\r\nHost: a\r\nConnection: close\r\nX-Pad: ${'p'.repeat(1000)}\r\n\r\n`);
  assert.match(got, /^HTTP\/1\.1 401 /);
});

test('a huge head (1 MB) is cut off without an answer and without buffering it', async () => {
  const got = await raw(`GET /v1/x HTTP/1.1\r\nHost: a\r\nX-Pad: ${'p'.repeat(1 << 20)}\r\n\r\n`);
  assert.equal(got, '');
});

test('closes a slowloris connection (a head trickling in) within about 10 s', async () => {
  const t0 = Date.now();
  const closedAfter = await new Promise<number>((resolve) => {
    const s = connect(ward.port, '127.0.0.1', () => s.write('GET /v1/x HTTP/1.1\r\nHost: a\r\n'));
    const drip = setInterval(() => s.writable && s.write('X-Drip: 1\r\n'), 1000);
    s.on('close', () => {
      clearInterval(drip);
      resolve(Date.now() - t0);
    });
    s.on('error', () => {});
  });
  assert.ok(closedAfter >= 8000 && closedAfter <= 16000, `closed after ${closedAfter} ms`);
});
