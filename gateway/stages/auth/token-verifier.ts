// Tenant identity from a bearer JWT. Verifying a signature is the costliest step at the edge, so
// verified tokens are cached (bounded, until they expire): a tenant's repeated token costs one Map
// lookup. Algorithms are pinned by the policy ("none" and HMAC never pass: the loader rejects them
// and jose is told the list). One verifier per policy version, so a key rotation empties the cache.

import { createLocalJWKSet, jwtVerify, type JWTPayload } from 'jose';
import type { AuthSpec } from '../../policy/types.js';

/** A verified token. `attached` is per-policy data the pipeline hangs on it (the tenant's plans). */
export interface Identity {
  readonly tenant: string;
  readonly sub: string | undefined;
  /** ms epoch after which the token is no longer accepted (exp + tolerance), Infinity if no exp. */
  readonly validUntil: number;
  /** ms epoch before which it is not yet valid (nbf - tolerance). */
  readonly validFrom: number;
  attached: unknown;
}

/** Tenant names become store keys and metric labels: keep them plain. */
const TENANT_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
const NEGATIVE_TTL_MS = 5_000;
/** Caches are keyed by the token's last characters (its signature's end): hashing a whole
 * several-hundred-character token on every request costs more than the rest of the lookup. The
 * full token is kept and compared, so two tokens sharing a tail only ever share a cache slot. */
const KEY_CHARS = 32;

interface Cached<T> {
  readonly token: string;
  readonly value: T;
}

function cacheKey(token: string): string {
  return token.length <= KEY_CHARS ? token : token.slice(-KEY_CHARS);
}

export class TokenVerifier {
  private readonly keys: ReturnType<typeof createLocalJWKSet>;
  private readonly cache = new Map<string, Cached<Identity>>();
  /** Recently rejected tokens (until when): a replayed bad token costs a lookup, not a verify. */
  private readonly rejected = new Map<string, Cached<number>>();

  constructor(
    private readonly auth: AuthSpec,
    private readonly maxEntries = 100_000,
  ) {
    this.keys = createLocalJWKSet(auth.jwks);
  }

  /** The cached identity for this token if it is valid now; undefined = unknown (verify it), null = known bad. */
  lookup(token: string, nowMs: number): Identity | null | undefined {
    const key = cacheKey(token);
    const hit = this.cache.get(key);
    if (hit !== undefined && hit.token === token) {
      const id = hit.value;
      if (nowMs < id.validUntil && nowMs >= id.validFrom) return id;
      if (nowMs >= id.validUntil) this.cache.delete(key);
      return null;
    }
    const bad = this.rejected.get(key);
    if (bad !== undefined && bad.token === token) {
      if (nowMs < bad.value) return null;
      this.rejected.delete(key);
    }
    return undefined;
  }

  /** Verifies the token's signature and claims; null when it must be refused (reason in `onReject`). */
  async verify(token: string, onReject?: (reason: string) => void): Promise<Identity | null> {
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, this.keys, {
        issuer: this.auth.issuer,
        audience: this.auth.audience,
        algorithms: this.auth.algorithms as string[],
        clockTolerance: this.auth.clock_tolerance_s,
        requiredClaims: ['exp'],
      }));
    } catch (err) {
      this.remember(token, null);
      onReject?.((err as { code?: string }).code ?? 'ERR_JWT_INVALID');
      return null;
    }
    const tenant = payload[this.auth.tenant_claim];
    if (typeof tenant !== 'string' || !TENANT_NAME.test(tenant)) {
      this.remember(token, null);
      onReject?.('ERR_NO_TENANT_CLAIM');
      return null;
    }
    const tol = this.auth.clock_tolerance_s * 1000;
    const id: Identity = {
      tenant,
      sub: typeof payload.sub === 'string' ? payload.sub : undefined,
      validUntil: typeof payload.exp === 'number' ? payload.exp * 1000 + tol : Infinity,
      validFrom: typeof payload.nbf === 'number' ? payload.nbf * 1000 - tol : -Infinity,
      attached: undefined,
    };
    this.remember(token, id);
    return id;
  }

  private remember(token: string, id: Identity | null): void {
    const map: Map<string, unknown> = id ? this.cache : this.rejected;
    const key = cacheKey(token);
    if (!map.has(key) && map.size >= this.maxEntries) {
      // Oldest first: Map iterates in insertion order.
      const oldest = map.keys().next().value;
      if (oldest !== undefined) map.delete(oldest);
    }
    if (id) this.cache.set(key, { token, value: id });
    else this.rejected.set(key, { token, value: Date.now() + NEGATIVE_TTL_MS });
  }
}

/** The bearer token of an Authorization header value, or undefined. */
export function bearerToken(authorization: string): string | undefined {
  if (authorization.length > 7 && authorization.charCodeAt(6) === 32 && authorization.slice(0, 6).toLowerCase() === 'bearer') {
    const t = authorization.slice(7).trim();
    return t.length > 0 ? t : undefined;
  }
  return undefined;
}
