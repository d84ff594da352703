import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { createLocalJWKSet, jwtVerify, type JSONWebKeySet } from 'jose';
import { AUDIENCE, ISSUER, mintToken, wardAvailable, wardCliPath, writeWardPolicy } from './ward.js';
import { mintTokensFast } from './scaling.js';

const body = {
  upstreams: { app: { targets: ['http://127.0.0.1:9'] } },
  routes: [{ name: 'api', prefix: '/v1/', upstream: 'app', bucket: 'api', concurrency: 'inflight' }],
  flood: { per_ip: { rate: 50, per_s: 1, ban_s: 60 }, allow: ['127.0.0.1/32'] },
  tenants: { '*': { buckets: { api: { rate: 10, per_s: 1 } }, concurrency: { inflight: 4 } } },
};

test('tokens minted for a scenario verify against the JWKS written into its policy', async () => {
  const p = await writeWardPolicy(body);
  try {
    const jwks = JSON.parse(readFileSync(join(p.dir, 'keys', 'jwks.json'), 'utf8')) as JSONWebKeySet;
    const keys = createLocalJWKSet(jwks);
    const { payload } = await jwtVerify(await mintToken(p.keys, 'acme'), keys, { issuer: ISSUER, audience: AUDIENCE, algorithms: ['EdDSA'] });
    assert.equal(payload.tenant, 'acme');
    const [fast] = mintTokensFast(p.keys, 1, () => 'bulk');
    assert.equal((await jwtVerify(fast, keys, { issuer: ISSUER, audience: AUDIENCE })).payload.tenant, 'bulk');
    assert.match(readFileSync(join(p.dir, 'gateway.yaml'), 'utf8'), new RegExp(`port: ${p.port}`));
  } finally {
    rmSync(p.dir, { recursive: true, force: true });
  }
});

test('ward policy check accepts the policy a scenario writes', { skip: wardAvailable() ? false : 'the gateway is not built' }, async () => {
  const p = await writeWardPolicy(body);
  try {
    const r = spawnSync(process.execPath, [wardCliPath(), 'policy', 'check', p.dir], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
  } finally {
    rmSync(p.dir, { recursive: true, force: true });
  }
});
