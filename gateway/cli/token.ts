// `ward token`: mints a JWT with the development key the policy names (auth.dev_signing_key).
// For demos and tests only: a production policy names no signing key, and ward never accepts a
// token whose key is not in the policy's JWKS.

import { SignJWT, importJWK, type JWK } from 'jose';
import type { Policy } from '../policy/types.js';

const UNITS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400 };

/** "90s", "30m", "1h", "2d" → seconds. */
export function parseTtl(ttl: string): number {
  const m = /^(\d+)([smhd])$/.exec(ttl.trim());
  if (!m) throw new Error(`bad --ttl "${ttl}": use a number and a unit, e.g. 90s, 30m, 1h, 2d`);
  return Number(m[1]) * UNITS[m[2]!]!;
}

export async function mintToken(policy: Policy, opts: { tenant: string; sub?: string; ttl?: string }): Promise<string> {
  const jwk = policy.auth.dev_signing_key as (JWK & { alg?: string; kid?: string }) | undefined;
  if (!jwk) throw new Error(`the policy in ${policy.dir} names no auth.dev_signing_key: ward token only signs with a development key`);
  const alg = jwk.alg ?? (jwk.crv === 'Ed25519' ? 'EdDSA' : jwk.crv === 'P-256' ? 'ES256' : undefined);
  if (!alg) throw new Error('auth.dev_signing_key has no alg');
  const key = await importJWK(jwk, alg);
  const now = Math.floor(Date.now() / 1000);
  const jwt = new SignJWT({ [policy.auth.tenant_claim]: opts.tenant })
    .setProtectedHeader({ alg, kid: jwk.kid, typ: 'JWT' })
    .setIssuer(policy.auth.issuer)
    .setAudience(policy.auth.audience)
    .setIssuedAt(now)
    .setExpirationTime(now + parseTtl(opts.ttl ?? '1h'));
  if (opts.sub) jwt.setSubject(opts.sub);
  return jwt.sign(key);
}
