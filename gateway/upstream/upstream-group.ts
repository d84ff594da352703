// One upstream's targets as the proxy sees them: pick a target per request (least_request by
// power of two choices, round_robin, or a bounded-load hash ring), learn from each outcome
// (passive outlier detection), and honour what probes and operators decided. All state lives in
// a TargetTable shared by every thread; a group object itself is cheap and per thread.
//
// Protocol for the caller, per request or session: `pick` (counts one in flight on the target),
// then `report` once with the outcome (response head or failure), then `release` once when the
// exchange or session has ended. A retry picks again with `exclude` set to the failed target.

import type { UpstreamSpec } from '../policy/types.js';
import { HashRing } from './hash-ring.js';
import { sharedLoopWatch, type LoopWatch } from './loop-watch.js';
import {
  clockNow,
  FLAG_DRAIN,
  FLAG_MAINT,
  I_EJ_ACTIVE,
  I_EJ_PASSIVE,
  I_EJECTED,
  I_FAILS,
  I_FLAGS,
  I_INFLIGHT,
  I_LAST_FAIL,
  I_MULT,
  I_PROBE,
  I_VOIDED,
  FAILURE_KINDS,
  T_EJ_UNTIL,
  T_PROBE_OK,
  T_RETURNED,
  T_SINCE,
  TargetTable,
  type FailureKind,
  type TableEvent,
} from './target-table.js';

export type Outcome = 'ok' | '4xx' | '5xx' | 'connect' | 'reset' | 'timeout' | 'protocol';
export type TargetState = 'healthy' | 'slow_start' | 'ejected' | 'down' | 'draining' | 'maint';
export const TARGET_STATES: readonly TargetState[] = ['healthy', 'slow_start', 'ejected', 'down', 'draining', 'maint'];

// Health codes, in TARGET_STATES order.
const HEALTHY = 0;
const SLOW_START = 1;
const EJECTED = 2;
const DOWN = 3;
/** Slow start never sends less than this share of a full target's traffic (Envoy's min_weight_percent). */
const MIN_WEIGHT = 0.1;

export interface Target<P = unknown> {
  readonly url: string;
  readonly index: number;
  /** What createPool made for this URL (the keep-alive pool to send through). */
  readonly pool: P;
  readonly upstream: string;
  /** The shared state this target lives in (a retired group's targets keep theirs). */
  readonly table: TargetTable;
}

export interface TargetView {
  url: string;
  state: TargetState;
  in_flight: number;
  /** Passive ejections so far. */
  ejections: number;
  /** Times active probes marked it down. */
  downs: number;
  consecutive_failures: number;
  /** Failures voided by the stall guard. */
  voided: number;
  ejected_until?: number;
  reason?: FailureKind;
  /** Drain or maintenance: since when (epoch ms). */
  since?: number;
  /** Slow start: the share of full traffic it currently gets. */
  weight?: number;
}

export interface UpstreamView {
  name: string;
  balance: string;
  panic: boolean;
  health: boolean;
  frozen: boolean;
  targets: TargetView[];
  events: TableEvent[];
}

export interface UpstreamGroupOptions<P> {
  /** The keep-alive pool for a target URL; called once per target per group (cache it for reuse across reloads). */
  createPool?: (url: string) => P;
  /** Shared state (from the main thread); a fresh table when absent. */
  table?: TargetTable;
  loopWatch?: LoopWatch;
  random?: () => number;
}

export class UpstreamGroup<P = undefined> {
  readonly name: string;
  readonly table: TargetTable;
  readonly targets: readonly Target<P>[];
  private readonly ring: HashRing | undefined;
  private readonly watch: LoopWatch;
  private readonly random: () => number;
  private readonly codes: Uint8Array;
  private readonly eligible: Uint8Array;
  private readonly loads: Int32Array;
  private readonly cand: Int32Array;
  private rr = 0;
  /** Passive failures overlapping a stall at least this long are voided. */
  readonly voidStallMs: number;

  constructor(
    readonly spec: UpstreamSpec,
    opts: UpstreamGroupOptions<P> = {},
  ) {
    this.name = spec.name;
    if (opts.table !== undefined && opts.table.targets.join('\n') !== spec.targets.join('\n')) {
      throw new Error(`upstream ${spec.name}: the shared table was built for other targets; build one table per target list`);
    }
    this.table = opts.table ?? TargetTable.create(spec.targets);
    this.targets = spec.targets.map((url, index) => ({ url, index, pool: opts.createPool?.(url) as P, upstream: spec.name, table: this.table }));
    this.ring = spec.balance === 'hash' ? new HashRing(spec.targets) : undefined;
    this.watch = opts.loopWatch ?? sharedLoopWatch();
    this.random = opts.random ?? Math.random;
    const n = spec.targets.length;
    this.codes = new Uint8Array(n);
    this.eligible = new Uint8Array(n);
    this.loads = new Int32Array(n);
    this.cand = new Int32Array(n);
    const probeTimeout = spec.health?.active?.timeout_ms ?? Infinity;
    this.voidStallMs = Math.min(1000, spec.timeout_ms / 2, probeTimeout / 2);
  }

  get timeoutMs(): number {
    return this.spec.timeout_ms;
  }

  /** Health of target i ignoring drain/maint; moves an ejection that has ended back in. */
  private healthCode(i: number, now: number): number {
    const h = this.spec.health;
    if (h === undefined) return HEALTHY;
    const t = this.table;
    if (h.active !== undefined && t.get(i, I_PROBE) === 2) return DOWN;
    if (t.get(i, I_EJECTED) === 1) {
      const until = t.time(i, T_EJ_UNTIL);
      if (now < until) return EJECTED;
      // With active checks the target comes back only after a probe passed since the ejection ended.
      if (h.active !== undefined && t.probing && t.time(i, T_PROBE_OK) < until) return EJECTED;
      if (t.cas(i, I_EJECTED, 1, 0)) {
        t.setTime(i, T_RETURNED, now);
        t.set(i, I_FAILS, 0);
        t.push('returned', i);
      }
    }
    if (h.slow_start_ms > 0 && now - t.time(i, T_RETURNED) < h.slow_start_ms) return SLOW_START;
    return HEALTHY;
  }

  private weight(i: number, now: number): number {
    if (this.codes[i] !== SLOW_START) return 1;
    return Math.max(MIN_WEIGHT, (now - this.table.time(i, T_RETURNED)) / this.spec.health!.slow_start_ms);
  }

  /** Set by scan(): whether the last scan found the upstream in panic. */
  private panicNow = false;

  /** Fills codes/eligible/loads/cand and panicNow; returns the number of candidates (no allocation: it runs per pick). */
  private scan(now: number, exclude: number): number {
    const n = this.targets.length;
    let up = 0;
    for (let i = 0; i < n; i++) {
      const c = this.healthCode(i, now);
      this.codes[i] = c;
      if (c !== DOWN && c !== EJECTED) up++;
    }
    const h = this.spec.health;
    const panic = h !== undefined && up * 100 < h.panic_threshold_percent * n;
    let count = 0;
    for (let i = 0; i < n; i++) {
      const c = this.codes[i]!;
      const ok = i !== exclude && this.table.get(i, I_FLAGS) === 0 && (panic || (c !== DOWN && c !== EJECTED));
      this.eligible[i] = ok ? 1 : 0;
      this.loads[i] = this.table.get(i, I_INFLIGHT);
      if (ok) this.cand[count++] = i;
    }
    this.panicNow = panic;
    return count;
  }

  /**
   * A target for one request or session, counted in flight until `release`. `key` places it on
   * the hash ring (balance: hash); `exclude` is a target already tried. undefined: no target can
   * take it (all drained, or only the excluded one left).
   */
  pick(key?: string, exclude?: Target<P>): Target<P> | undefined {
    const now = this.spec.health === undefined ? 0 : clockNow(); // time matters only to health
    const count = this.scan(now, exclude === undefined || exclude.table !== this.table ? -1 : exclude.index);
    if (count === 0) return undefined;
    let chosen: number;
    if (this.ring !== undefined && key !== undefined) {
      chosen = this.ring.lookup(key, this.eligible, this.loads, (this.spec.hash?.balance_factor ?? 0) / 100);
      if (chosen < 0) return undefined;
    } else if (this.spec.balance === 'round_robin') {
      const start = this.rr++ % count;
      chosen = this.cand[start]!;
      for (let k = 0; k < count; k++) {
        const i = this.cand[(start + k) % count]!;
        const w = this.weight(i, now);
        if (w >= 1 || this.random() < w) {
          chosen = i;
          break;
        }
      }
    } else {
      chosen = this.leastRequest(count, now);
    }
    this.table.add(chosen, I_INFLIGHT, 1);
    return this.targets[chosen];
  }

  /** Power of two random choices on in-flight count, scaled by slow-start weight. */
  private leastRequest(count: number, now: number): number {
    if (count === 1) return this.cand[0]!;
    const ai = Math.floor(this.random() * count);
    let bi = Math.floor(this.random() * (count - 1));
    if (bi >= ai) bi++;
    const a = this.cand[ai]!;
    const b = this.cand[bi]!;
    const sa = (this.loads[a]! + 1) / this.weight(a, now);
    const sb = (this.loads[b]! + 1) / this.weight(b, now);
    return sb < sa ? b : a;
  }

  /** The end of a picked request or session: no longer in flight. Call exactly once per pick. */
  release(target: Target<P>): void {
    target.table.add(target.index, I_INFLIGHT, -1);
  }

  /**
   * The outcome of an exchange with `target`. Only upstream-attributable failures (5xx, connect,
   * reset, timeout, protocol) count towards ejection; ok and 4xx end a failure streak. A failure
   * other than an answered 5xx is void when this thread's loop stalled while it was pending.
   */
  report(target: Target<P>, outcome: Outcome, latencyMs: number): void {
    const p = this.spec.health?.passive;
    if (p === undefined) return;
    const t = target.table;
    const i = target.index;
    if (outcome === 'ok' || outcome === '4xx') {
      if (t.get(i, I_FAILS) !== 0) t.set(i, I_FAILS, 0);
      return;
    }
    if (outcome !== '5xx' && outcome !== 'protocol') {
      const now = clockNow();
      if (this.watch.stallWithin(now - latencyMs - 1, now) >= this.voidStallMs) {
        t.add(i, I_VOIDED, 1);
        return;
      }
    }
    const c = t.add(i, I_FAILS, 1);
    if (c >= p.consecutive_failures && t === this.table) this.eject(i, c, outcome);
  }

  private eject(i: number, streak: number, why: FailureKind): void {
    const h = this.spec.health!;
    const p = h.passive!;
    const t = this.table;
    if (t.frozen || t.get(i, I_EJECTED) === 1) return;
    const now = clockNow();
    let ejected = 0;
    for (let j = 0; j < this.targets.length; j++) if (this.healthCode(j, now) === EJECTED && t.get(j, I_EJECTED) === 1) ejected++;
    const limit = Math.max(1, Math.floor((this.targets.length * h.max_ejection_percent) / 100));
    if (ejected >= limit) return; // the streak stays, so the next failure tries again
    if (!t.cas(i, I_FAILS, streak, 0) || !t.cas(i, I_EJECTED, 0, 1)) return; // another thread decided
    // The multiplier decays by one per max_ejection_ms the target stayed in since its last return.
    let mult = t.get(i, I_MULT);
    const back = t.time(i, T_RETURNED);
    if (mult > 0 && back > 0) mult = Math.max(0, mult - Math.floor((now - back) / p.max_ejection_ms));
    const ms = Math.min(p.max_ejection_ms, p.base_ejection_ms * 2 ** mult * (1 + 0.1 * this.random()));
    const until = now + ms;
    t.setTime(i, T_EJ_UNTIL, until);
    t.set(i, I_MULT, Math.min(mult + 1, 30));
    t.set(i, I_LAST_FAIL, FAILURE_KINDS.indexOf(why));
    t.add(i, I_EJ_PASSIVE, 1);
    t.push('ejected', i, until, why, now);
  }

  private indexOf(url: string): number {
    return this.spec.targets.indexOf(url);
  }

  /** Operator actions; false when the URL is not a target of this upstream. */
  drain(url: string): boolean {
    return this.setFlags(url, FLAG_DRAIN, 'drain');
  }
  maint(url: string): boolean {
    return this.setFlags(url, FLAG_MAINT, 'maint');
  }
  undrain(url: string): boolean {
    return this.setFlags(url, 0, 'undrain');
  }

  private setFlags(url: string, flags: number, kind: 'drain' | 'maint' | 'undrain'): boolean {
    const i = this.indexOf(url);
    if (i < 0) return false;
    const before = this.table.get(i, I_FLAGS);
    if (before !== flags) {
      this.table.set(i, I_FLAGS, flags);
      this.table.setTime(i, T_SINCE, clockNow());
      this.table.push(kind, i);
    }
    return true;
  }

  /** Current state of the target with this URL (undefined if it is not one). */
  stateOf(url: string): TargetState | undefined {
    const i = this.indexOf(url);
    if (i < 0) return undefined;
    return this.states(clockNow())[i];
  }

  private states(now: number): TargetState[] {
    return this.targets.map((_, i) => {
      const f = this.table.get(i, I_FLAGS);
      if (f & FLAG_MAINT) return 'maint';
      if (f & FLAG_DRAIN) return 'draining';
      return TARGET_STATES[this.healthCode(i, now)]!;
    });
  }

  /** Below the panic threshold health is ignored and every target not drained gets traffic. */
  panic(): boolean {
    this.scan(clockNow(), -1);
    return this.panicNow;
  }

  view(): UpstreamView {
    const now = clockNow();
    this.scan(now, -1);
    const panic = this.panicNow;
    const states = this.states(now);
    const t = this.table;
    return {
      name: this.name,
      balance: this.spec.balance,
      panic,
      health: this.spec.health !== undefined,
      frozen: t.frozen,
      targets: this.targets.map((x, i) => {
        const v: TargetView = {
          url: x.url,
          state: states[i]!,
          in_flight: Math.max(0, t.get(i, I_INFLIGHT)),
          ejections: t.get(i, I_EJ_PASSIVE),
          downs: t.get(i, I_EJ_ACTIVE),
          consecutive_failures: t.get(i, I_FAILS),
          voided: t.get(i, I_VOIDED),
        };
        if (t.get(i, I_EJECTED) === 1) {
          v.ejected_until = t.time(i, T_EJ_UNTIL);
          v.reason = FAILURE_KINDS[t.get(i, I_LAST_FAIL)];
        }
        if (states[i] === 'draining' || states[i] === 'maint') v.since = t.time(i, T_SINCE);
        if (this.codes[i] === SLOW_START) v.weight = Math.round(this.weight(i, now) * 100) / 100;
        return v;
      }),
      events: t.events(),
    };
  }
}
