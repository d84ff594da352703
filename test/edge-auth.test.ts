// Tenant identity at the edge: only a well-formed, correctly signed, unexpired token for this
// issuer and audience, naming a tenant, gets through. Tokens are minted with node:crypto.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { policyDir, basePolicy, startWard, type WardProcess, type PolicyFiles } from './support/ward-process.js';
import { startUpstream, request, bearer, type TestUpstream } from './support/http.js';
import { ed25519Key, es256Key, signJwt, unsignedJwt, hs256WithPublicKey, standardClaims } from './support/jwt.js';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

let up: TestUpstream;
let pol: PolicyFiles;
let ward: WardProcess;
const es = es256Key('es-key');

before(async () => {
  up = await startUpstream();
  pol = policyDir();
  writeFileSync(join(pol.dir, 'keys', 'jwks.json'), JSON.stringify({ keys: [pol.key.publicJwk, es.publicJwk] }));
  pol.write(basePolicy(up.url));
  ward = await startWard(pol.dir);
});

after(async () => {
  await ward.stop();
  await up.close();
  pol.remove();
});

async function expect401(token: string | undefined, label: string) {
  const before = up.seen.length;
  const r = await request(`${ward.base}/v1/things`, { headers: token === undefined ? {} : bearer(token) });
  assert.equal(r.status, 401, `${label}: status`);
  assert.equal(r.headers['www-authenticate'], 'Bearer error="invalid_token"', `${label}: WWW-Authenticate`);
  assert.equal(r.json().error, 'unauthorized', label);
  assert.match(r.json().request_id, /\S+/, `${label}: request_id`);
  assert.equal(up.seen.length, before, `${label}: must not reach the upstream`);
}

test('accepts EdDSA and ES256 tokens and tells the upstream the tenant', async () => {
  for (const key of [pol.key, es]) {
    const r = await request(`${ward.base}/v1/things`, { headers: bearer(signJwt(key, standardClaims('acme'))) });
    assert.equal(r.status, 200);
    assert.equal(up.seen.at(-1)!.headers['x-ward-tenant'], 'acme');
  }
});

test('refuses a request with no token, a garbage token, or a non-bearer scheme', async () => {
  await expect401(undefined, 'no token');
  await expect401('garbage', 'garbage');
  await expect401('a.b.c', 'three garbage parts');
  const r = await request(`${ward.base}/v1/things`, { headers: { authorization: `Basic ${Buffer.from('a:b').toString('base64')}` } });
  assert.equal(r.status, 401);
});

test('refuses alg none', async () => {
  await expect401(unsignedJwt(standardClaims('acme')), 'alg none');
});

test('refuses HS256 keyed with the public key (algorithm confusion)', async () => {
  await expect401(hs256WithPublicKey(pol.key, standardClaims('acme')), 'HS256 confusion');
});

test('refuses a token signed by a key not in the JWKS, even with a known kid', async () => {
  const foreign = ed25519Key('test-key');
  await expect401(signJwt(foreign, standardClaims('acme')), 'foreign key');
});

test('refuses expired, not-yet-valid, wrong audience, wrong issuer and tenant-less tokens', async () => {
  const now = Math.floor(Date.now() / 1000);
  await expect401(signJwt(pol.key, standardClaims('acme', { exp: now - 3600 })), 'expired');
  await expect401(signJwt(pol.key, standardClaims('acme', { nbf: now + 3600 })), 'not yet valid');
  await expect401(signJwt(pol.key, standardClaims('acme', { aud: 'someone-else' })), 'wrong aud');
  await expect401(signJwt(pol.key, standardClaims('acme', { iss: 'https://evil.example' })), 'wrong iss');
  const noTenant = standardClaims('acme');
  delete noTenant.tenant;
  await expect401(signJwt(pol.key, noTenant), 'no tenant claim');
  await expect401(signJwt(pol.key, standardClaims('acme', { tenant: 42 })), 'tenant not a string');
  const noExp = standardClaims('acme');
  delete noExp.exp;
  await expect401(signJwt(pol.key, noExp), 'no exp');
});

test('a tampered payload fails even when the same token was accepted before (cache keyed by the whole token)', async () => {
  const good = signJwt(pol.key, standardClaims('acme'));
  assert.equal((await request(`${ward.base}/v1/things`, { headers: bearer(good) })).status, 200);
  const [h, , s] = good.split('.');
  const forged = `${h}.${Buffer.from(JSON.stringify(standardClaims('globex'))).toString('base64url')}.${s}`;
  await expect401(forged, 'tampered payload');
  // The good token keeps working from the cache.
  assert.equal((await request(`${ward.base}/v1/things`, { headers: bearer(good) })).status, 200);
});

test('never passes a client-supplied X-Ward-Tenant or forwarding headers upstream', async () => {
  const r = await request(`${ward.base}/v1/things`, {
    headers: { ...bearer(signJwt(pol.key, standardClaims('acme'))), 'x-ward-tenant': 'globex', 'x-forwarded-for': '6.6.6.6', 'x-request-id': 'mine' },
  });
  assert.equal(r.status, 200);
  const seen = up.seen.at(-1)!.headers;
  assert.equal(seen['x-ward-tenant'], 'acme');
  assert.equal(seen['x-forwarded-for'], '127.0.0.1');
  assert.notEqual(seen['x-request-id'], 'mine');
  // A public route has no tenant: the spoofed header is still stripped.
  await request(`${ward.base}/v1/status`, { headers: { 'x-ward-tenant': 'globex' } });
  assert.equal(up.seen.at(-1)!.headers['x-ward-tenant'], undefined);
});

test('the access_token query parameter is not accepted on plain HTTP requests', async () => {
  const t = signJwt(pol.key, standardClaims('acme'));
  const r = await request(`${ward.base}/v1/things?access_token=${t}`);
  assert.equal(r.status, 401);
});
