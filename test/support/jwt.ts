// Test tokens made WITHOUT jose (node:crypto only), so the gateway is checked against another
// implementation of JWS, and so tests can forge every malformed kind of token.

import { createHmac, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';

export interface TestKey {
  readonly kid: string;
  readonly privateKey: KeyObject;
  /** Public JWK with kid/alg/use, for the policy's JWKS. */
  readonly publicJwk: Record<string, unknown>;
  readonly privateJwk: Record<string, unknown>;
}

const b64u = (b: Buffer | string) => Buffer.from(b).toString('base64url');

export function ed25519Key(kid: string): TestKey {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const pub = { ...(publicKey.export({ format: 'jwk' }) as Record<string, unknown>), kid, alg: 'EdDSA', use: 'sig' };
  const priv = { ...(privateKey.export({ format: 'jwk' }) as Record<string, unknown>), kid, alg: 'EdDSA' };
  return { kid, privateKey, publicJwk: pub, privateJwk: priv };
}

export function es256Key(kid: string): TestKey {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const pub = { ...(publicKey.export({ format: 'jwk' }) as Record<string, unknown>), kid, alg: 'ES256', use: 'sig' };
  const priv = { ...(privateKey.export({ format: 'jwk' }) as Record<string, unknown>), kid, alg: 'ES256' };
  return { kid, privateKey, publicJwk: pub, privateJwk: priv };
}

export interface Claims {
  [k: string]: unknown;
}

/** Signs a JWT with an Ed25519 or P-256 key (JOSE signature encoding for ES256: raw r||s). */
export function signJwt(key: TestKey, claims: Claims, header: Record<string, unknown> = {}): string {
  const alg = key.publicJwk.alg as string;
  const h = b64u(JSON.stringify({ alg, typ: 'JWT', kid: key.kid, ...header }));
  const p = b64u(JSON.stringify(claims));
  const data = Buffer.from(`${h}.${p}`);
  const sig = alg === 'EdDSA' ? sign(null, data, key.privateKey) : sign('sha256', data, { key: key.privateKey, dsaEncoding: 'ieee-p1363' });
  return `${h}.${p}.${b64u(sig)}`;
}

export function unsignedJwt(claims: Claims): string {
  return `${b64u(JSON.stringify({ alg: 'none', typ: 'JWT' }))}.${b64u(JSON.stringify(claims))}.`;
}

/** The classic confusion attack: HS256 keyed with the server's public key material. */
export function hs256WithPublicKey(key: TestKey, claims: Claims): string {
  const h = b64u(JSON.stringify({ alg: 'HS256', typ: 'JWT', kid: key.kid }));
  const p = b64u(JSON.stringify(claims));
  const secret = JSON.stringify(key.publicJwk);
  return `${h}.${p}.${b64u(createHmac('sha256', secret).update(`${h}.${p}`).digest())}`;
}

export function standardClaims(tenant: string, extra: Claims = {}): Claims {
  const now = Math.floor(Date.now() / 1000);
  return { iss: 'https://id.test', aud: 'ward', tenant, sub: 'user-1', iat: now, exp: now + 600, ...extra };
}
