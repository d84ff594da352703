// The single-node limit store: token buckets and concurrency pools in SharedArrayBuffer tables, so
// the N worker threads of one `ward serve` share one budget. The main thread `create()`s it and
// passes `shared()` to each worker in `workerData`; a worker calls `MemoryLimitStore.attach()`.
//
// Buckets are GCRA (the generic cell rate algorithm): one number per key, the theoretical arrival
// time `tat`. With emission interval T = per_s*1000/rate ms, a request at `now` is admitted iff
// max(tat, now) - now <= (burst - 1) * T, and then tat = max(tat, now) + T. At one instant that
// admits exactly `burst`; after that one more every T, so over any interval t at most
// burst + rate*t/per_s are admitted, which is the contract's bound. rate-limiter-flexible's fixed
// windows reset the count at each window edge, so `burst` just before an edge plus `burst` just
// after it admits 2×burst in a moment; GCRA has no edges.

import { threadId } from 'node:worker_threads';
import type { Admission, AdmitPlan, Lease, LimitStore, StoreStatus } from '../types.js';
import { IDLE, NEVER, SharedTable, type SharedTableHandle } from './shared-table.js';

/** What `shared()` returns: structured-cloneable, pass it in `workerData`. */
export interface MemoryLimitStoreHandle {
  readonly buckets: SharedTableHandle;
  readonly pools: SharedTableHandle;
}

export interface MemoryLimitStoreStats {
  /** Live buckets forgotten (reset to full) because their table group was full. */
  readonly bucketEvictions: number;
  /** Leases refused because the pool table group held only pools with live leases. */
  readonly poolTableFull: number;
}

/** Float slack for tat comparisons: sums of non-integer intervals must not lose a token. */
const EPS = 1e-6;

// A full bucket (tat <= now) holds no state worth keeping. When a whole group is live, the bucket
// closest to full is forgotten: it restarts full, over-admitting at most what it was short of.
function bucketRank(vals: Float64Array, base: number, nowMs: number): number {
  const tat = vals[base]!;
  return tat <= nowMs ? IDLE : tat - nowMs;
}
// A pool with leases out is never forgotten (its count would drop and admit too many);
// a group of only such pools refuses new pool keys instead (reported as a pool refusal).
function poolRank(vals: Float64Array, base: number): number {
  return vals[base]! > 0 ? NEVER : IDLE;
}

let leaseSeq = 0;

class MemoryLease implements Lease {
  // Private fields stay out of logs and JSON: only poolKey and id are shown.
  #pools: SharedTable | undefined;
  readonly #seq: number;
  constructor(
    readonly poolKey: string,
    pools: SharedTable,
    seq: number,
  ) {
    this.#pools = pools;
    this.#seq = seq;
  }
  /** Built only when asked for (logs): admit allocates no string. */
  get id(): string {
    return `${threadId}:${this.#seq}`;
  }
  /** The lease's pool table the first time, undefined after: what makes release idempotent. */
  take(): SharedTable | undefined {
    const t = this.#pools;
    this.#pools = undefined;
    return t;
  }
  toJSON(): Lease {
    return { poolKey: this.poolKey, id: this.id };
  }
}

export class MemoryLimitStore implements LimitStore {
  private constructor(
    private readonly buckets: SharedTable,
    private readonly pools: SharedTable,
  ) {}

  /**
   * bucketSlots (default 65536, 1.25 MiB) and poolSlots (default 16384, 0.3 MiB): powers of two,
   * each table's whole memory (`SharedTable.bytes`), fixed at creation.
   */
  static create(opts: { bucketSlots?: number; poolSlots?: number } = {}): MemoryLimitStore {
    return new MemoryLimitStore(
      SharedTable.create({ slots: opts.bucketSlots ?? 1 << 16, fields: 1 }),
      SharedTable.create({ slots: opts.poolSlots ?? 1 << 14, fields: 1 }),
    );
  }

  static attach(h: MemoryLimitStoreHandle): MemoryLimitStore {
    return new MemoryLimitStore(SharedTable.attach(h.buckets), SharedTable.attach(h.pools));
  }

  shared(): MemoryLimitStoreHandle {
    return { buckets: this.buckets.shared(), pools: this.pools.shared() };
  }

  admit(plan: AdmitPlan, nowMs: number): Admission {
    const b = plan.bucket;
    const p = plan.pool;
    const bt = this.buckets;
    const pt = this.pools;
    let bg = -1;
    let bs = -1;
    let tat = nowMs;
    let T = 0;
    if (b) {
      bt.hashString(b.key);
      bg = bt.lock();
      bs = bt.find(bg);
      if (bs >= 0 && bt.vals[bs]! > nowMs) tat = bt.vals[bs]!;
      T = (b.perS * 1000) / b.rate;
      // A bucket whose rate was raised by a policy edit may hold debt measured at the old rate:
      // cap it at "empty under the new settings" and keep that, so the edit applies at once.
      if (bs >= 0 && tat > nowMs + b.burst * T) bt.vals[bs] = tat = nowMs + b.burst * T;
      const excess = tat - nowMs - (b.burst - 1) * T;
      if (excess > EPS || !(b.burst >= 1)) {
        bt.unlock(bg);
        return {
          ok: !plan.enforce,
          refused: 'bucket',
          retryAfterMs: Math.max(1, Math.ceil(excess)),
          remaining: 0,
          resetMs: Math.ceil(tat - nowMs),
        };
      }
    }
    let lease: MemoryLease | undefined;
    if (p) {
      pt.hashString(p.key);
      const pg = pt.lock();
      let ps = pt.find(pg);
      const count = ps >= 0 ? pt.vals[ps]! : 0;
      if (count < p.limit && ps < 0) ps = pt.claim(pg, poolRank, nowMs);
      if (count >= p.limit || ps < 0) {
        pt.unlock(pg);
        if (bg >= 0) bt.unlock(bg);
        return {
          ok: !plan.enforce,
          refused: 'pool',
          retryAfterMs: 0,
          remaining: b ? remainingAfter(tat, nowMs, T, b.burst) : 0,
          resetMs: Math.ceil(tat - nowMs),
        };
      }
      pt.vals[ps] = count + 1;
      pt.unlock(pg);
      lease = new MemoryLease(p.key, pt, ++leaseSeq);
    }
    if (!b) return { ok: true, retryAfterMs: 0, remaining: 0, resetMs: 0, lease };
    if (bs < 0) bs = bt.claim(bg, bucketRank, nowMs);
    tat += T;
    bt.vals[bs] = tat;
    bt.unlock(bg);
    return { ok: true, retryAfterMs: 0, remaining: remainingAfter(tat, nowMs, T, b.burst), resetMs: Math.ceil(tat - nowMs), lease };
  }

  release(lease: Lease): void {
    // Only leases this store kind handed out, and each once: a count never goes negative.
    const pt = lease instanceof MemoryLease ? lease.take() : undefined;
    if (!pt) return;
    pt.hashString(lease.poolKey);
    const g = pt.lock();
    const s = pt.find(g);
    if (s >= 0) {
      const count = pt.vals[s]! - 1;
      if (count > 0) pt.vals[s] = count;
      else pt.free(s);
    }
    pt.unlock(g);
  }

  inUse(poolKey: string): number {
    const pt = this.pools;
    pt.hashString(poolKey);
    const g = pt.lock();
    const s = pt.find(g);
    const count = s >= 0 ? pt.vals[s]! : 0;
    pt.unlock(g);
    return count;
  }

  status(): StoreStatus {
    return { state: 'ok' };
  }

  stats(): MemoryLimitStoreStats {
    return { bucketEvictions: this.buckets.evictions, poolTableFull: this.pools.unplaced };
  }

  async close(): Promise<void> {}
}

/** Whole tokens left once the bucket's arrival time is `tat`: floor((burst*T - (tat-now)) / T). */
function remainingAfter(tat: number, nowMs: number, T: number, burst: number): number {
  return Math.max(0, Math.floor(burst - (tat - nowMs) / T + EPS));
}
