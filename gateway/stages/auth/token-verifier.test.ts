// The verified-token cache is keyed by a token's tail: a token that shares that tail with a cached
// one must never be taken for it.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ed25519Key, signJwt, standardClaims } from '../../../test/support/jwt.js';
import { TokenVerifier } from './token-verifier.js';

const key = ed25519Key('k1');
const auth = { jwks: { keys: [key.publicJwk] }, issuer: 'https://id.test', audience: 'ward', algorithms: ['EdDSA'], tenant_claim: 'tenant', clock_tolerance_s: 0 } as never;

function forgedPayload(token: string, tenant: string): string {
  const [h, p, s] = token.split('.');
  const claims = JSON.parse(Buffer.from(p!, 'base64url').toString());
  return `${h}.${Buffer.from(JSON.stringify({ ...claims, tenant })).toString('base64url')}.${s}`;
}

test('a cached token is a lookup; a forged token with the same signature tail is verified, and refused', async () => {
  const v = new TokenVerifier(auth);
  const good = signJwt(key, standardClaims('acme'));
  const now = Date.now();
  assert.equal(v.lookup(good, now), undefined);
  assert.equal((await v.verify(good))?.tenant, 'acme');
  assert.equal(v.lookup(good, now)?.tenant, 'acme');

  const forged = forgedPayload(good, 'globex');
  assert.equal(forged.slice(-32), good.slice(-32));
  assert.equal(v.lookup(forged, now), undefined, 'the forged token is not found in the cache');
  assert.equal(await v.verify(forged), null, 'and its signature does not verify');
  assert.equal(v.lookup(forged, now), null, 'it is remembered as bad');
  assert.equal(v.lookup(good, now)?.tenant, 'acme', 'the good token still verifies from the cache');
});

test('the cache holds at most maxEntries tokens, oldest out first', async () => {
  const v = new TokenVerifier(auth, 2);
  const tokens = ['a', 'b', 'c'].map((t) => signJwt(key, standardClaims(t)));
  for (const t of tokens) await v.verify(t);
  const now = Date.now();
  assert.equal(v.lookup(tokens[0]!, now), undefined);
  assert.equal(v.lookup(tokens[1]!, now)?.tenant, 'b');
  assert.equal(v.lookup(tokens[2]!, now)?.tenant, 'c');
});
