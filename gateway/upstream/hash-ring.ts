// The consistent-hash ring for `balance: hash`. Deterministic from the target list alone (every
// instance maps a key to the same target), ketama-style: 160 points per target from MD5 of
// "URL-i", so removing a target moves only the keys that were on its arcs.
//
// Bounded loads ("Consistent Hashing with Bounded Loads", Mirrokni, Thorup, Zadimoghaddam 2016):
// a target may hold at most ceil(c · (m + 1) / n) of the m loads in flight, with c the
// balance factor; a key whose target is full walks on clockwise to the next target with room.

import { createHash } from 'node:crypto';

/** Points per target (40 MD5 digests × 4 words), as in libketama and HAProxy. */
export const POINTS_PER_TARGET = 160;

/** 32-bit FNV-1a over UTF-16 code units with murmur3's fmix32 finaliser (FNV alone clusters short keys). */
export function hash32(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

export class HashRing {
  /** Sorted ring positions. */
  readonly points: Uint32Array;
  /** Target index (into the list the ring was built from) owning each point. */
  readonly owners: Int32Array;

  constructor(readonly targets: readonly string[]) {
    const pairs: Array<[number, number]> = [];
    targets.forEach((url, idx) => {
      for (let i = 0; i < POINTS_PER_TARGET / 4; i++) {
        const d = createHash('md5').update(`${url}-${i}`).digest();
        for (let w = 0; w < 4; w++) pairs.push([d.readUInt32LE(w * 4), idx]);
      }
    });
    // Ties (practically never) are broken by URL, not list order, so the ring ignores ordering.
    pairs.sort((a, b) => a[0] - b[0] || (targets[a[1]]! < targets[b[1]]! ? -1 : 1));
    this.points = Uint32Array.from(pairs, (p) => p[0]);
    this.owners = Int32Array.from(pairs, (p) => p[1]);
  }

  /** Index of the first point at or after `h` (wrapping). */
  private start(h: number): number {
    let lo = 0;
    let hi = this.points.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.points[mid]! < h) lo = mid + 1;
      else hi = mid;
    }
    return lo === this.points.length ? 0 : lo;
  }

  /**
   * The target for `key`: the first owner clockwise that `eligible` accepts and whose load is under
   * the bound. `loads` and `eligible` are indexed like `targets`; `factor` is balance_factor / 100
   * (0 = unbounded). Returns -1 when no target is eligible.
   */
  lookup(key: string, eligible: Uint8Array, loads: ArrayLike<number>, factor: number): number {
    const n = this.points.length;
    if (n === 0) return -1;
    let cap = Infinity;
    if (factor > 0) {
      let total = 0;
      let count = 0;
      for (let i = 0; i < this.targets.length; i++) {
        if (eligible[i] === 1) {
          total += loads[i]!;
          count++;
        }
      }
      if (count === 0) return -1;
      cap = Math.ceil((factor * (total + 1)) / count);
    }
    let p = this.start(hash32(key));
    for (let step = 0; step < n; step++, p = p + 1 === n ? 0 : p + 1) {
      const t = this.owners[p]!;
      if (eligible[t] === 1 && loads[t]! < cap) return t;
    }
    return -1;
  }
}
