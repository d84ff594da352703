import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { openSession, runSessions, runSipCalls, sipRequest } from './calls-load.js';
import { sipReply, startUpstream } from './upstream.js';

test('sessions and SIP calls complete against the upstream, with their server CPU counted', async () => {
  const up = await startUpstream(0);
  try {
    const base = `ws://127.0.0.1:${up.port}`;
    const s = await runSessions({ base, path: '/v1/signal', token: 't', durationS: 0.4, loops: 4, pid: process.pid });
    assert.ok(s.done > 5, `${s.done} sessions`);
    assert.equal(s.failed, 0);
    assert.ok(s.cpuUs > 0);
    const c = await runSipCalls({ base, path: '/v1/sip', token: 't', durationS: 0.4, loops: 2 });
    assert.ok(c.done > 5, `${c.done} calls`);
    assert.equal(c.failed, 0, JSON.stringify(c.reasons));
  } finally {
    up.close();
  }
});

test('a refused upgrade rejects with its HTTP status', async () => {
  const server = createServer((_req, res) => res.writeHead(401, { 'content-type': 'application/json' }).end('{"error":"unauthorized"}'));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  try {
    await assert.rejects(openSession(`ws://127.0.0.1:${(server.address() as { port: number }).port}/v1/signal`, 'bad'), /upgrade answered HTTP 401/);
  } finally {
    server.close();
  }
});

test('the upstream answers a SIP request with 200 OK, tagging To, and leaves other text alone', () => {
  const r = sipReply(sipRequest('INVITE', 'c1', 1))!;
  assert.match(r, /^SIP\/2\.0 200 OK\r\n/);
  assert.match(r, /\r\nTo: <sip:bob@loadtest\.invalid>;tag=up\d+\r\n/);
  assert.match(r, /\r\nCSeq: 1 INVITE\r\n/);
  assert.equal(sipReply('hello'), undefined);
});
