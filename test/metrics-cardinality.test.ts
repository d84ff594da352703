// Many tenants must not become many metric series: past WARD_METRICS_MAX_TENANTS, new tenants
// are counted under tenant="_other", and every request is still counted.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { policyDir, basePolicy, startWard } from './support/ward-process.js';
import { request, bearer, startUpstream } from './support/http.js';
import { signJwt, standardClaims } from './support/jwt.js';
import { metric, scrape } from './support/observe.js';

test('tenants past the label cap are counted as _other', async () => {
  const up = await startUpstream();
  const pol = policyDir();
  pol.write(basePolicy(up.url));
  const ward = await startWard(pol.dir, { env: { WARD_METRICS_MAX_TENANTS: '3' } });
  try {
    for (let i = 0; i < 6; i++) {
      const r = await request(`${ward.base}/v1/x`, { headers: bearer(signJwt(pol.key, standardClaims(`t${i}`))) });
      assert.equal(r.status, 200);
    }
    const text = await scrape(ward);
    const tenants = new Set([...text.matchAll(/^ward_requests_total\{tenant="([^"]*)"/gm)].map((m) => m[1]));
    assert.deepEqual([...tenants].sort(), ['_other', 't0', 't1', 't2']);
    assert.equal(metric(text, 'ward_requests_total', { tenant: '_other', outcome: 'ok' }), 3);
    assert.equal(metric(text, 'ward_requests_total', { route: 'api', outcome: 'ok' }), 6);
  } finally {
    await ward.stop();
    await up.close();
    pol.remove();
  }
});
