// Insurance limits: what one instance grants on its own while Redis is unreachable.
//
// Scaling a plan by the outage share s (0 < s <= 1):
//   burst' = max(1, floor(s * burst))   rate' = s * rate (same per_s)   limit' = max(1, floor(s * limit))
// floor keeps each instance at or under its share; the minimum of 1 keeps a small limit (a burst of
// 1, a pool of 1) from becoming "refuse everything", which would turn a Redis outage into a tenant
// outage. The rate needs no rounding: a bucket refills at any real rate.
//
// Worst case for a tenant (bucket of rate r per p seconds, capacity b; pool of limit L), with I
// instances of which any number lose Redis, over any interval of t seconds of which t_o are outage:
//   admitted <= (b + r*t/p)                            what the shared bucket grants (it bounds any interval)
//             + I * (max(1, floor(s*b)) + s*r*t_o/p)   what the insurance buckets grant
// A whole-outage interval: I * (max(1, floor(s*b)) + s*r*t/p), so s = 1/I keeps the contract bound.
// Concurrency: <= leases held in Redis when it went away + I * max(1, floor(s*L)). On recovery the
// local leases still held are copied into Redis, so the shared count is exact again and new
// admissions wait until the pool is really under L.
//
// Why fail open with insurance, for an ingress: failing closed turns a Redis blip into a total
// outage of every tenant (and a load balancer emptying itself if readiness failed); failing open
// without limits hands an abusive tenant the upstreams exactly when the shared defences are down.
// Insurance keeps serving and keeps each tenant inside a bound the operator chose in advance.

import type { AdmitPlan } from '../types.js';

export function scalePlan(plan: AdmitPlan, share: number): AdmitPlan {
  const { bucket, pool } = plan;
  return Object.freeze({
    tenant: plan.tenant,
    enforce: plan.enforce,
    bucket: bucket && Object.freeze({
      name: bucket.name,
      key: bucket.key,
      perS: bucket.perS,
      rate: bucket.rate * share,
      burst: Math.max(1, Math.floor(bucket.burst * share + 1e-9)),
    }),
    pool: pool && Object.freeze({ name: pool.name, key: pool.key, limit: Math.max(1, Math.floor(pool.limit * share + 1e-9)) }),
  });
}
