// The shared limit store: every ward instance on one Redis (or Redis Cluster) and prefix shares each
// tenant's buckets and pools. One script call per request (./scripts.ts), auto-pipelined.
//
// Outage: any failed or timed-out command, or a client that is not connected, switches the store to
// local insurance limits (`fallback`, the plan scaled by outage_share, see ./insurance.ts) and
// `status()` to degraded; a background ping switches back by itself. Nothing here throws to a request.
//
// Leases: a ZSET per tenant pool, member = lease id, score = expiry (Redis time + ttl). Holders renew
// their live leases every ttl/3, so only a dead (or cut off) instance's leases expire, within ttl.
// Where a lease goes back:
// - taken in Redis: ZREM in Redis; if Redis is unreachable then, the ZREM is queued and sent on
//   recovery (and the lease, no longer renewed, expires within ttl anyway);
// - taken locally during an outage: released locally; if Redis came back meanwhile, the lease was
//   also copied into Redis on recovery, and is removed from both.
// - an admit whose script failed (say, timed out after Redis ran it) may hold a lease nobody knows
//   of: its member is queued for ZREM like a failed release.

import { randomBytes } from 'node:crypto';
import type { StoreSpec } from '../../policy/types.js';
import type { Admission, AdmitPlan, Lease, LimitStore, Refusal, StoreStatus } from '../types.js';
import { createWardClient, pingAll, validateRedisSpec, type WardClient } from './client.js';
import { scalePlan } from './insurance.js';
import { RENEW_BATCH } from './scripts.js';

export interface RedisLimitStoreOptions {
  /** Lease lifetime without renewal: how soon a dead instance's leases free up. Default 30000. */
  leaseTtlMs?: number;
  /** Default leaseTtlMs / 3. */
  renewIntervalMs?: number;
  /** Longest a request waits on Redis before the insurance limits answer. Default 100. */
  commandTimeoutMs?: number;
  /** How often a degraded store checks whether Redis is back. Default 500. */
  probeIntervalMs?: number;
  /** Called on every switch between shared and local limits (for logs). */
  onStateChange?: (status: StoreStatus, cause?: Error) => void;
}

export interface RedisLimitStoreStats {
  readonly state: 'ok' | 'degraded';
  /** Admissions answered by the local insurance limits (Envoy's fail-open counter). */
  readonly failOpenTotal: number;
  /** Switches from shared to local limits. */
  readonly outagesTotal: number;
  /** Redis commands that failed or timed out. */
  readonly commandErrorsTotal: number;
  /** Admit scripts completed, and their summed latency (ms), for a mean. */
  readonly scriptCalls: number;
  readonly scriptMsSum: number;
  /** Leases this instance holds in Redis, and locally taken ones. */
  readonly leasesHeld: number;
  readonly localLeasesHeld: number;
  /** Lease removals waiting for Redis to come back. */
  readonly pendingReleases: number;
}

/** What a plan needs per call, built once per plan (plans are reused for every request). */
interface PlanKeys {
  readonly mode: 'b' | 'p' | 'bp';
  readonly bucketKey: string;
  readonly poolKey: string;
  readonly interval: string;
  readonly burst: string;
  readonly limit: string;
  local?: AdmitPlan;
}

/** A lease taken in Redis doubles as its own record; `adopted` marks a local lease copied into Redis. */
interface Held {
  readonly key: string;
  readonly member: string;
  readonly adopted: boolean;
}

const STATUS_OK: StoreStatus = Object.freeze({ state: 'ok' });
const STATUS_DEGRADED: StoreStatus = Object.freeze({ state: 'degraded', reason: 'store_unreachable' });
const UNLIMITED: Admission = Object.freeze({ ok: true, retryAfterMs: 0, remaining: 0, resetMs: 0 });
const REFUSALS: readonly (Refusal | undefined)[] = [undefined, 'bucket', 'pool'];
/** Beyond this many queued removals, expiry alone cleans up. */
const MAX_PENDING = 100_000;

export class RedisLimitStore implements LimitStore {
  private readonly client: WardClient;
  private readonly prefix: string;
  private readonly share: number;
  private readonly ttl: number;
  private readonly ttlArg: string;
  private readonly instanceId = randomBytes(9).toString('base64url');
  private seq = 0;
  private shared = false;
  private closed = false;
  private probing = false;
  private readonly plans = new WeakMap<AdmitPlan, PlanKeys>();
  private readonly held = new Map<Lease, Held>();
  /** Local leases → their Redis pool key (for adoption on recovery). */
  private readonly localHeld = new Map<Lease, string>();
  private pending: [key: string, member: string][] = [];
  private readonly renewTimer: NodeJS.Timeout;
  private readonly probeTimer: NodeJS.Timeout;
  private readonly onStateChange?: (status: StoreStatus, cause?: Error) => void;
  private failOpen = 0;
  private outages = 0;
  private commandErrors = 0;
  private scriptCalls = 0;
  private scriptMs = 0;

  /** `spec.kind` is `redis` or `redis-cluster`; `fallback` is this instance's local store (the
   * memory store), which answers with the plan scaled by `spec.outage_share` during an outage.
   * Throws RedisStoreConfigError on a spec it cannot run with. Starts degraded until connected. */
  constructor(
    spec: StoreSpec,
    private readonly fallback: LimitStore,
    opts: RedisLimitStoreOptions = {},
  ) {
    validateRedisSpec(spec);
    this.prefix = spec.prefix;
    this.share = spec.outage_share;
    this.ttl = opts.leaseTtlMs ?? 30_000;
    this.ttlArg = String(this.ttl);
    this.onStateChange = opts.onStateChange;
    this.client = createWardClient(spec, { commandTimeoutMs: opts.commandTimeoutMs ?? 100, connectTimeoutMs: 1000 });
    const lost = (err?: Error) => this.toLocal(err);
    this.client.on('error', lost);
    this.client.on('close', () => lost());
    this.client.on('ready', () => void this.probe());
    this.renewTimer = setInterval(() => void this.renewTick(), opts.renewIntervalMs ?? this.ttl / 3);
    this.probeTimer = setInterval(() => void this.probe(), opts.probeIntervalMs ?? 500);
    this.renewTimer.unref();
    this.probeTimer.unref();
  }

  static create(spec: StoreSpec, fallback: LimitStore, opts?: RedisLimitStoreOptions): RedisLimitStore {
    return new RedisLimitStore(spec, fallback, opts);
  }

  /** Resolves once shared (true), or after timeoutMs still degraded (false): start-up may wait on it,
   * never has to. */
  async ready(timeoutMs = 2000): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (!this.shared && !this.closed && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    return this.shared;
  }

  admit(plan: AdmitPlan, nowMs: number): Admission | Promise<Admission> {
    if (!plan.bucket && !plan.pool) return UNLIMITED;
    if (!this.shared) return this.admitLocal(plan, nowMs);
    const c = this.client;
    if (c.status !== 'ready') {
      this.toLocal();
      return this.admitLocal(plan, nowMs);
    }
    const k = this.plans.get(plan) ?? this.keysOf(plan);
    const member = k.mode === 'b' ? '' : `${this.instanceId}.${(++this.seq).toString(36)}`;
    const started = performance.now();
    const call =
      k.mode === 'bp'
        ? c.wardAdmit2(k.bucketKey, k.poolKey, 'bp', k.interval, k.burst, k.limit, this.ttlArg, member)
        : c.wardAdmit1(k.mode === 'b' ? k.bucketKey : k.poolKey, k.mode, k.interval, k.burst, k.limit, this.ttlArg, member);
    return call.then(
      (r) => {
        this.scriptCalls++;
        this.scriptMs += performance.now() - started;
        return this.decided(plan, k, member, r);
      },
      (err: Error) => {
        this.commandErrors++;
        if (member) this.queueRemoval(k.poolKey, member);
        this.toLocal(err);
        // The caller's clock, moved on by the time spent waiting.
        return this.admitLocal(plan, nowMs + (performance.now() - started));
      },
    );
  }

  release(lease: Lease): void {
    const h = this.held.get(lease);
    if (h) {
      this.held.delete(lease);
      if (h.adopted) this.fallback.release(lease);
      this.remove(h.key, h.member);
      return;
    }
    if (this.localHeld.delete(lease)) this.fallback.release(lease);
  }

  inUse(poolKey: string): Promise<number> {
    if (!this.shared || this.client.status !== 'ready') return Promise.resolve(this.fallback.inUse(poolKey));
    return this.client.wardCount(this.prefix + poolKey).then(
      (n) => n,
      () => this.fallback.inUse(poolKey),
    );
  }

  status(): StoreStatus {
    return this.shared ? STATUS_OK : STATUS_DEGRADED;
  }

  stats(): RedisLimitStoreStats {
    return {
      state: this.status().state,
      failOpenTotal: this.failOpen,
      outagesTotal: this.outages,
      commandErrorsTotal: this.commandErrors,
      scriptCalls: this.scriptCalls,
      scriptMsSum: this.scriptMs,
      leasesHeld: this.held.size,
      localLeasesHeld: this.localHeld.size,
      pendingReleases: this.pending.length,
    };
  }

  /** Gives this instance's leases back (best effort, bounded) and disconnects. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.renewTimer);
    clearInterval(this.probeTimer);
    for (const [lease, h] of this.held) {
      if (h.adopted) this.fallback.release(lease);
      this.queueRemoval(h.key, h.member);
    }
    this.held.clear();
    if (this.shared) await this.flushRemovals().catch(() => undefined);
    this.shared = false;
    this.client.disconnect();
  }

  private keysOf(plan: AdmitPlan): PlanKeys {
    const { bucket, pool } = plan;
    const k: PlanKeys = {
      mode: bucket && pool ? 'bp' : bucket ? 'b' : 'p',
      bucketKey: bucket ? this.prefix + bucket.key : '',
      poolKey: pool ? this.prefix + pool.key : '',
      interval: bucket ? String((bucket.perS * 1000) / bucket.rate) : '0',
      burst: bucket ? String(bucket.burst) : '0',
      limit: pool ? String(pool.limit) : '0',
    };
    this.plans.set(plan, k);
    return k;
  }

  private decided(plan: AdmitPlan, k: PlanKeys, member: string, r: number[]): Admission {
    const refused = REFUSALS[r[0]!];
    if (refused) {
      return { ok: !plan.enforce, refused, retryAfterMs: r[1]!, remaining: r[2]!, resetMs: r[3]! };
    }
    let lease: Lease | undefined;
    if (member) {
      const h = { poolKey: plan.pool!.key, id: member, key: k.poolKey, member, adopted: false };
      this.held.set(h, h);
      lease = h;
    }
    return { ok: true, retryAfterMs: 0, remaining: r[2]!, resetMs: r[3]!, lease };
  }

  private admitLocal(plan: AdmitPlan, nowMs: number): Admission | Promise<Admission> {
    this.failOpen++;
    const k = this.plans.get(plan) ?? this.keysOf(plan);
    const local = (k.local ??= scalePlan(plan, this.share));
    const a = this.fallback.admit(local, nowMs);
    if (a instanceof Promise) return a.then((x) => this.heldLocally(x, k));
    return this.heldLocally(a, k);
  }

  private heldLocally(a: Admission, k: PlanKeys): Admission {
    if (a.lease) this.localHeld.set(a.lease, k.poolKey);
    return a;
  }

  private toLocal(cause?: Error): void {
    if (!this.shared) return;
    this.shared = false;
    this.outages++;
    this.onStateChange?.(STATUS_DEGRADED, cause);
  }

  /** While degraded: is Redis back? Then count every lease this instance holds in Redis again
   * (local ones included, they are real concurrency), send queued removals, and share again. */
  private async probe(): Promise<void> {
    if (this.shared || this.probing || this.closed) return;
    this.probing = true;
    try {
      if (!(await pingAll(this.client))) return;
      this.adoptLocal();
      await this.renewAll();
      await this.flushRemovals();
      if (this.closed) return;
      // Local leases taken while the renewal was in flight: copy them too (their first renewal,
      // at most renewIntervalMs away, re-adds them if this one is lost).
      if (this.adoptLocal()) void this.renewAll().catch(() => undefined);
      this.shared = true;
      this.onStateChange?.(STATUS_OK);
    } catch {
      // Still unreachable: stay local, try again next tick.
    } finally {
      this.probing = false;
    }
  }

  private async renewTick(): Promise<void> {
    if (!this.shared) return; // recovery renews everything before sharing again
    try {
      await this.renewAll();
      await this.flushRemovals();
    } catch (err) {
      this.toLocal(err as Error);
    }
  }

  private adoptLocal(): boolean {
    if (this.localHeld.size === 0) return false;
    for (const [lease, key] of this.localHeld) {
      this.held.set(lease, { key, member: `${this.instanceId}.${(++this.seq).toString(36)}`, adopted: true });
    }
    this.localHeld.clear();
    return true;
  }

  /** One renew script per pool (chunked), auto-pipelined: resets every held lease's expiry. */
  private async renewAll(): Promise<void> {
    if (this.held.size === 0 || this.client.status !== 'ready') return;
    const byKey = new Map<string, string[]>();
    for (const h of this.held.values()) {
      const list = byKey.get(h.key);
      if (list) list.push(h.member);
      else byKey.set(h.key, [h.member]);
    }
    const calls: Promise<number>[] = [];
    for (const [key, members] of byKey) {
      for (let i = 0; i < members.length; i += RENEW_BATCH) {
        calls.push(this.client.wardRenew(key, this.ttlArg, ...members.slice(i, i + RENEW_BATCH)));
      }
    }
    try {
      await Promise.all(calls);
    } catch (err) {
      this.commandErrors++;
      throw err;
    }
  }

  private remove(key: string, member: string): void {
    if (!this.shared || this.client.status !== 'ready') {
      this.queueRemoval(key, member);
      return;
    }
    this.client.zrem(key, member).catch((err: Error) => {
      this.commandErrors++;
      this.queueRemoval(key, member);
      this.toLocal(err);
    });
  }

  private queueRemoval(key: string, member: string): void {
    if (this.pending.length < MAX_PENDING) this.pending.push([key, member]);
  }

  private async flushRemovals(): Promise<void> {
    if (this.pending.length === 0) return;
    const batch = this.pending;
    this.pending = [];
    const byKey = new Map<string, string[]>();
    for (const [key, member] of batch) {
      const list = byKey.get(key);
      if (list) list.push(member);
      else byKey.set(key, [member]);
    }
    try {
      await Promise.all([...byKey].map(([key, members]) => this.client.zrem(key, ...members)));
    } catch (err) {
      this.commandErrors++;
      // ZREM is idempotent: put the whole batch back and retry on the next recovery.
      this.pending = batch.concat(this.pending).slice(0, MAX_PENDING);
      throw err;
    }
  }
}
