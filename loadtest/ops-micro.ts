// In-process measurements for issue 7's report: what one pick (+ report + release) costs per
// balancer, with and without a health block, and how the consistent-hash ring compares with the
// 1/N ideal (keys moved when a target goes, max/avg load with uniform and Zipf keys, bounded loads).

import type { UpstreamSpec } from '../gateway/policy/types.js';
import { compileHashKey } from '../gateway/upstream/hash-key.js';
import { HashRing } from '../gateway/upstream/hash-ring.js';
import { LoopWatch } from '../gateway/upstream/loop-watch.js';
import { UpstreamGroup } from '../gateway/upstream/upstream-group.js';
import type { Table } from './report.js';

/** Five targets (never contacted: picks only). */
const TARGETS = Array.from({ length: 5 }, (_, i) => `http://127.0.1.${i + 1}:${9000 + i}`);
const HEALTH: NonNullable<UpstreamSpec['health']> = {
  active: { path: '/healthz', interval_ms: 2000, timeout_ms: 1000, rise: 2, fall: 3 },
  passive: { consecutive_failures: 5, base_ejection_ms: 30000, max_ejection_ms: 300000 },
  max_ejection_percent: 50,
  panic_threshold_percent: 50,
  slow_start_ms: 10000,
};

export interface PickCost {
  balancer: string;
  health: boolean;
  ns: number;
}

/** ns per pick + report + release, median of `rounds` rounds of `n` picks each. */
export function pickCosts(n = 300_000, rounds = 5): PickCost[] {
  const watch = new LoopWatch();
  const users = Array.from({ length: 1000 }, (_, i) => ({ tenant: `tenant-${i % 50}`, sub: `user-${i}` }));
  const key = compileHashKey({ key: 'tenant_sub', balance_factor: 125 });
  const src = { tenant: '', sub: undefined as string | undefined, header: () => undefined };
  const out: PickCost[] = [];
  for (const balance of ['least_request', 'round_robin', 'hash'] as const) {
    for (const health of [false, true]) {
      const spec: UpstreamSpec = { name: 'api', targets: TARGETS, timeout_ms: 30000, balance, ...(balance === 'hash' ? { hash: { key: 'tenant_sub', balance_factor: 125 } } : {}), ...(health ? { health: HEALTH } : {}) };
      const g = new UpstreamGroup(spec, { loopWatch: watch });
      const once = (i: number): void => {
        let k: string | undefined;
        if (balance === 'hash') {
          const u = users[i % users.length]!;
          src.tenant = u.tenant;
          src.sub = u.sub;
          k = key(src);
        }
        const t = g.pick(k)!;
        g.report(t, 'ok', 1);
        g.release(t);
      };
      for (let i = 0; i < 50_000; i++) once(i); // JIT warm-up
      const samples: number[] = [];
      for (let r = 0; r < rounds; r++) {
        const t0 = process.hrtime.bigint();
        for (let i = 0; i < n; i++) once(i);
        samples.push(Number(process.hrtime.bigint() - t0) / n);
      }
      samples.sort((a, b) => a - b);
      out.push({ balancer: balance, health, ns: Math.round(samples[samples.length >> 1]!) });
    }
  }
  return out;
}

export function pickTable(costs: readonly PickCost[]): Table {
  return {
    title: 'Pick cost per balancer (one pick + report + release, 5 targets, in process)',
    columns: ['balancer', 'no health block: ns', 'health block: ns'],
    rows: ['least_request', 'round_robin', 'hash'].map((b) => [
      b === 'hash' ? 'hash (tenant_sub, bounded loads 125)' : b,
      costs.find((c) => c.balancer === b && !c.health)!.ns,
      costs.find((c) => c.balancer === b && c.health)!.ns,
    ]),
    note: 'hash includes building the tenant\\0sub key and hashing it; health adds reading each target\'s shared state (Atomics) and the clock.',
  };
}

export interface RingFigures {
  keys: number;
  targets: number;
  movedOnRemove: number;
  idealMoved: number;
  movedOnlyFromRemoved: boolean;
  restoredOnReadd: number;
  uniformMaxAvg: number;
  zipfUnboundedMaxAvg: number;
  zipfBoundedMaxAvg: number;
  zipfBoundedLimit: number;
}

/** Zipf-distributed key indexes (s = 1) over `users`, deterministic. */
function zipf(count: number, users: number): number[] {
  let seed = 12345;
  const rnd = (): number => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32;
  const cdf: number[] = [];
  let sum = 0;
  for (let i = 0; i < users; i++) cdf.push((sum += 1 / (i + 1)));
  return Array.from({ length: count }, () => {
    const x = rnd() * sum;
    let lo = 0;
    let hi = users - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (cdf[mid]! < x) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  });
}

function maxAvg(loads: ArrayLike<number>): number {
  let max = 0;
  let total = 0;
  for (let i = 0; i < loads.length; i++) {
    max = Math.max(max, loads[i]!);
    total += loads[i]!;
  }
  return max / (total / loads.length);
}

export function ringFigures(keys = 10_000): RingFigures {
  const n = TARGETS.length;
  const ring = new HashRing(TARGETS);
  const all = new Uint8Array(n).fill(1);
  const zero = new Int32Array(n);
  const names = Array.from({ length: keys }, (_, i) => `tenant-${i % 97}\u0000user-${i}`);
  const before = names.map((k) => ring.lookup(k, all, zero, 0));
  const removed = 2;
  const without = new HashRing(TARGETS.filter((_, i) => i !== removed));
  const after = names.map((k) => without.lookup(k, all, zero, 0));
  let moved = 0;
  let onlyFromRemoved = true;
  names.forEach((_, i) => {
    const was = TARGETS[before[i]!]!;
    const now = TARGETS.filter((__, j) => j !== removed)[after[i]!]!;
    if (was !== now) {
      moved++;
      if (before[i] !== removed) onlyFromRemoved = false;
    }
  });
  const again = names.map((k) => new HashRing(TARGETS).lookup(k, all, zero, 0));
  const restored = again.filter((t, i) => t === before[i]).length / keys;
  const uniform = new Int32Array(n);
  for (const t of before) uniform[t]!++;
  // Zipf sessions placed one after another and kept (in flight), with and without bounded loads.
  const draws = zipf(keys, 1000).map((u) => `tenant-${u % 97}\u0000user-${u}`);
  const unbounded = new Int32Array(n);
  const bounded = new Int32Array(n);
  for (const k of draws) {
    unbounded[ring.lookup(k, all, zero, 0)]!++;
    bounded[ring.lookup(k, all, bounded, 1.25)]!++;
  }
  return {
    keys,
    targets: n,
    movedOnRemove: moved / keys,
    idealMoved: 1 / n,
    movedOnlyFromRemoved: onlyFromRemoved,
    restoredOnReadd: restored,
    uniformMaxAvg: maxAvg(uniform),
    zipfUnboundedMaxAvg: maxAvg(unbounded),
    zipfBoundedMaxAvg: maxAvg(bounded),
    zipfBoundedLimit: 1.25 + n / keys,
  };
}

export function ringTable(r: RingFigures): Table {
  const pct = (x: number): string => `${(x * 100).toFixed(1)} %`;
  return {
    title: `Consistent-hash ring against the 1/N ideal (${r.keys.toLocaleString('en')} keys, ${r.targets} targets)`,
    columns: ['measure', 'ring', 'ideal'],
    rows: [
      ['keys moved when one target is removed', pct(r.movedOnRemove), pct(r.idealMoved)],
      ['…of which from targets that stayed', r.movedOnlyFromRemoved ? '0' : 'some', '0'],
      ['keys back on their target when it returns', pct(r.restoredOnReadd), '100 %'],
      ['max / avg load, uniform keys', r.uniformMaxAvg.toFixed(3), '1.000'],
      ['max / avg load, Zipf keys, plain hashing', r.zipfUnboundedMaxAvg.toFixed(3), '1.000'],
      ['max / avg load, Zipf keys, bounded loads (balance_factor 125)', r.zipfBoundedMaxAvg.toFixed(3), `≤ ${r.zipfBoundedLimit.toFixed(3)} (1.25 + 1 session)`],
    ],
    note: 'Zipf: 10,000 sessions drawn from 1,000 users with P(user i) ∝ 1/i, placed one after another and all kept open.',
  };
}
