import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { policyCheck } from './check.js';

const policies = fileURLToPath(new URL('../../../policies/', import.meta.url));

test('a valid policy gives exit 0 and one summary line', async () => {
  const r = await policyCheck(policies);
  assert.equal(r.code, 0);
  assert.equal(r.lines.length, 1);
  assert.match(r.lines[0]!, /^.*policies\/: ok — 4 routes, 1 upstream, 2 tenants, 2 buckets, 2 pools \(sha256 [0-9a-f]{12}\)$/);
});

test('an invalid policy gives exit 1 and one FILE:LINE:COL line per problem', async () => {
  const dir = join(policies, 'fixtures/invalid/unknown-upstream');
  const r = await policyCheck(dir);
  assert.equal(r.code, 1);
  assert.deepEqual(r.lines, [
    `${dir}/gateway.yaml:10:42: unknown upstream "apii" (did you mean "api"?)`,
    `${dir}/gateway.yaml:11:49: unknown upstream "mainframe" (defined: api, billing)`,
  ]);
});
