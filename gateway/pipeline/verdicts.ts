// The edge's refusals, as values. Static ones are frozen singletons (no allocation per refusal).

import type { Admission, BucketPlan } from '../store/types.js';
import type { Verdict } from './types.js';

const v = (status: number, error: string, headers?: string[]): Verdict => Object.freeze({ status, error, headers: headers && Object.freeze(headers) });

export const DROP: Verdict = Object.freeze({ status: 0, error: 'dropped', drop: true });
export const NO_ROUTE = v(404, 'no_route');
export const BAD_PATH = v(400, 'bad_path');
export const BAD_REQUEST = v(400, 'bad_request');
export const UNSUPPORTED_TRANSFER_CODING = v(501, 'unsupported_transfer_coding');
export const UNAUTHORIZED = v(401, 'unauthorized', ['WWW-Authenticate', 'Bearer error="invalid_token"']);
export const BODY_TOO_LARGE = v(413, 'body_too_large');
export const HEADERS_TOO_LARGE = v(431, 'headers_too_large');
export const UPGRADE_REQUIRED = v(426, 'upgrade_required', ['Upgrade', 'websocket']);
export const UPSTREAM_UNAVAILABLE = v(502, 'upstream_unavailable');
export const UPSTREAM_TIMEOUT = v(504, 'upstream_timeout');
export const SHUTTING_DOWN = v(503, 'shutting_down', ['Retry-After', '1']);

/**
 * 429 for an empty bucket, with the IETF httpapi ratelimit-headers draft's fields:
 *   RateLimit-Policy: "api";q=40;w=2   (quota = burst, window = seconds to refill it)
 *   RateLimit: "api";r=0;t=1           (remaining tokens, seconds until one is available)
 */
export function rateLimited(b: BucketPlan, a: Admission): Verdict {
  const retry = Math.max(1, Math.ceil(a.retryAfterMs / 1000));
  const remaining = Math.max(0, a.remaining);
  // Refusals of one bucket repeat the same few answers: keep them, frozen, per bucket plan.
  let byRetry = rateLimitedCache.get(b);
  if (byRetry === undefined) rateLimitedCache.set(b, (byRetry = new Map()));
  const key = retry * 65536 + Math.min(remaining, 65535);
  let v = byRetry.get(key);
  if (v === undefined) {
    const window = Math.max(1, Math.ceil((b.burst * b.perS) / b.rate));
    v = Object.freeze({
      status: 429,
      error: 'rate_limited',
      extra: Object.freeze({ bucket: b.name }),
      headers: Object.freeze(['Retry-After', String(retry), 'RateLimit-Policy', `"${b.name}";q=${b.burst};w=${window}`, 'RateLimit', `"${b.name}";r=${remaining};t=${retry}`]),
    });
    if (byRetry.size < 256) byRetry.set(key, v);
  }
  return v;
}

const rateLimitedCache = new WeakMap<BucketPlan, Map<number, Verdict>>();

const poolVerdicts = new Map<string, Verdict>();
export function concurrencyLimited(pool: string): Verdict {
  let r = poolVerdicts.get(pool);
  if (r === undefined) {
    r = Object.freeze({ status: 429, error: 'concurrency_limited', extra: Object.freeze({ pool }), headers: Object.freeze(['Retry-After', '1']) });
    poolVerdicts.set(pool, r);
  }
  return r;
}
