import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseWrkOutput, runWrk, wrkScript } from './wrk.js';
import { findBinary } from './references.js';
import { startUpstream } from './upstream.js';

test('the Lua script sends the bearer token and prints a JSON summary', () => {
  const one = wrkScript({ url: 'http://x/', connections: 1, durationS: 1, token: 'abc"d' });
  assert.ok(one.includes('wrk.headers["Authorization"] = "Bearer abc\\"d"'));
  assert.ok(one.includes('done = function(summary, latency, requests)'));
  assert.ok(!one.includes('request = function'), 'one token needs no per-request Lua');
  const many = wrkScript({ url: 'http://x/', connections: 1, durationS: 1, tokens: ['a', 'b'] }, '/tmp/t.txt');
  assert.ok(many.includes('io.lines("/tmp/t.txt")'));
  assert.ok(many.includes('request = function()'));
});

test('reads the summary line among wrk\'s own output', () => {
  const out = 'Running 1s test @ http://127.0.0.1:1/\n  1 threads and 2 connections\nWRK_JSON {"requests":1000,"duration_us":2000000,"non2xx":3,"connect":0,"read":1,"write":0,"timeout":2,"mean":250.5,"p50":200,"p90":400,"p99":900,"p999":1500,"max":2000}\nRequests/sec: 500\n';
  const r = parseWrkOutput(out);
  assert.equal(r.rps, 500);
  assert.equal(r.non2xx, 3);
  assert.deepEqual(r.errors, { connect: 0, read: 1, write: 0, timeout: 2 });
  assert.equal(r.latency.p99_us, 900);
  assert.throws(() => parseWrkOutput('wrk: connection refused'), /no summary/);
});

test('a 1-second wrk run against the upstream completes', { skip: findBinary('wrk') || process.env.CI ? false : 'wrk is not installed' }, async () => {
  const up = await startUpstream(0);
  try {
    const r = await runWrk({ url: `http://127.0.0.1:${up.port}/v1/x`, connections: 4, durationS: 1, token: 't' });
    assert.ok(r.requests > 100, `${r.requests} requests`);
    assert.equal(r.non2xx, 0);
    assert.ok(r.latency.p99_us > 0);
  } finally {
    up.close();
  }
});
