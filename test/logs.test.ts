// Logs are pino JSON lines an operator can search, and never carry a secret.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { REDACT_PATHS } from '../gateway/log.js';
import { policyDir, basePolicy, startWard } from './support/ward-process.js';
import { request, bearer, startUpstream } from './support/http.js';
import { signJwt, standardClaims } from './support/jwt.js';

test('the logger redacts authorization headers, cookies and tokens wherever they sit', () => {
  const lines: string[] = [];
  const sink = new Writable({ write: (c, _e, cb) => (lines.push(String(c)), cb()) });
  const log = pino({ redact: { paths: REDACT_PATHS, censor: '[redacted]' } }, sink);
  log.info({ authorization: 'Bearer a.b.c', req: { headers: { authorization: 'Bearer d.e.f', cookie: 's=1' } }, token: 'tok', access_token: 'qs' }, 'x');
  const out = lines.join('');
  for (const secret of ['a.b.c', 'd.e.f', 's=1', '"tok"', '"qs"']) assert.ok(!out.includes(secret), `${secret} leaked: ${out}`);
  assert.ok(out.includes('[redacted]'));
});

test('ward logs upstream failures with request id, tenant and path, and no token or query string', async () => {
  const up = await startUpstream();
  up.handle = (_req, res) => res.socket!.destroy();
  const pol = policyDir();
  pol.write(basePolicy(up.url));
  const ward = await startWard(pol.dir, { env: { WARD_ACCESS_LOG_SAMPLE: '1' } });
  try {
    const token = signJwt(pol.key, standardClaims('acme'));
    const r = await request(`${ward.base}/v1/calls/9?access_token=QUERYSECRET`, { method: 'POST', headers: bearer(token), body: 'x' });
    assert.equal(r.status, 502);
    const line = await ward.waitForLog(/"msg":"upstream failure"/);
    const j = JSON.parse(line);
    assert.equal(j.request_id, r.json().request_id);
    assert.equal(j.tenant, 'acme');
    assert.equal(j.path, '/v1/calls/9');
    assert.equal(j.outcome, 'upstream_unavailable');
    // A sampled success line too (sample every 1 request here).
    up.handle = undefined;
    assert.equal((await request(`${ward.base}/v1/x`, { headers: bearer(token) })).status, 200);
    await ward.waitForLog(/"outcome":"ok".*"msg":"request"/);
    const all = ward.logs.join('\n');
    assert.ok(!all.includes(token), 'the bearer token is in the logs');
    assert.ok(!all.includes(token.split('.')[2]!), 'the token signature is in the logs');
    assert.ok(!all.includes('QUERYSECRET'), 'the query string is in the logs');
  } finally {
    await ward.stop();
    await up.close();
    pol.remove();
  }
});
