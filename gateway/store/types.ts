// The limit store port: token buckets and concurrency leases. The pipeline calls only this
// interface; memory/ (the single-node default, shared by worker threads through a
// SharedArrayBuffer) and redis/ (many instances, one Lua round trip) implement it.

/** What one request of one tenant on one route asks for. Built once per (policy version, tenant,
 * route) and reused for every request, so the hot path allocates no keys. */
export interface AdmitPlan {
  readonly tenant: string;
  readonly bucket?: BucketPlan;
  readonly pool?: PoolPlan;
  /** false = shadow mode: never refuse, report what would have been refused in `shadow`. */
  readonly enforce: boolean;
}

export interface BucketPlan {
  readonly name: string;
  /** Store key, unique per (tenant, bucket name); stable across policy versions. */
  readonly key: string;
  /** Tokens added every `per_s` seconds. */
  readonly rate: number;
  readonly perS: number;
  /** Capacity. */
  readonly burst: number;
}

export interface PoolPlan {
  readonly name: string;
  /** Store key, unique per (tenant, pool name). */
  readonly key: string;
  readonly limit: number;
}

export type Refusal = 'bucket' | 'pool';

export interface Admission {
  /** true when the request may go on (always true in shadow mode). */
  readonly ok: boolean;
  /** What refused (or, in shadow mode, would have refused). */
  readonly refused?: Refusal;
  /** Bucket refusals: ms until one token is available. */
  readonly retryAfterMs: number;
  /** Tokens left in the bucket after this request (floor), for the RateLimit header. */
  readonly remaining: number;
  /** ms until the bucket is full again, for the RateLimit header's reset. */
  readonly resetMs: number;
  /** Held lease, when a pool was asked for and granted. Release it exactly once. */
  readonly lease?: Lease;
}

export interface Lease {
  readonly poolKey: string;
  readonly id: string;
}

export interface StoreStatus {
  /** `ok`, or `degraded` while the shared store is unreachable and local insurance limits apply. */
  readonly state: 'ok' | 'degraded';
  readonly reason?: string;
}

export interface LimitStore {
  /** Takes a token from the plan's bucket and a lease of its pool, atomically: both or neither. */
  admit(plan: AdmitPlan, nowMs: number): Admission | Promise<Admission>;
  /** Frees a lease taken by admit. Idempotent per lease; never throws. */
  release(lease: Lease): void;
  /** Leases currently held in a pool (all instances, as far as the store knows). */
  inUse(poolKey: string): number | Promise<number>;
  status(): StoreStatus;
  close(): Promise<void>;
}

/** Store keys: one tenant's keys share a Redis Cluster slot through the `{tenant}` hash tag. */
export function bucketKey(tenant: string, bucket: string): string {
  return `{${tenant}}:b:${bucket}`;
}
export function poolKey(tenant: string, pool: string): string {
  return `{${tenant}}:p:${pool}`;
}
