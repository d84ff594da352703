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

export class TokenVerifier {
  private readonly keys: ReturnType<typeof createLocalJWKSet>;
  private readonly cache = new Map<string, Identity>();
  /** Recently rejected tokens: a replayed bad token costs a lookup, not a verify. */
  private readonly rejected = new Map<string, number>();

  constructor(
    private readonly auth: AuthSpec,
    private readonly maxEntries = 100_000,
  ) {
    this.keys = createLocalJWKSet(auth.jwks);
  }

  /** The cached identity for this token if it is valid now; undefined = unknown (verify it), null = known bad. */
  lookup(token: string, nowMs: number): Identity | null | undefined {
    const id = this.cache.get(token);
    if (id !== undefined) {
      if (nowMs < id.validUntil && nowMs >= id.validFrom) return id;
      if (nowMs >= id.validUntil) this.cache.delete(token);
      return null;
    }
    const until = this.rejected.get(token);
    if (until !== undefined) {
      if (nowMs < until) return null;
      this.rejected.delete(token);
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
    if (map.size >= this.maxEntries) {
      // Oldest first: Map iterates in insertion order.
      const oldest = map.keys().next().value;
      if (oldest !== undefined) map.delete(oldest);
    }
    if (id) this.cache.set(token, id);
    else this.rejected.set(token, Date.now() + NEGATIVE_TTL_MS);
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
