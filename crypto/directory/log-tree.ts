// One tenant's key log held in memory by a directory instance: the leaves (immutable once logged,
// so a cached prefix is always valid) and the hashes of every complete subtree, filled as leaves
// arrive. Roots and proofs of any size then cost O(log n) hashes (RFC 9162 §2.1).
import { logLeaf } from '../sdk/key-log.js';
import { EMPTY_ROOT, leafHash, nodeHash, prefixRanges, splitPoint } from '../sdk/merkle.js';
import { fromB64, toB64 } from '../sdk/primitives.js';
import type { StoredLeaf } from './store.js';

export class LogTree {
  readonly tenant: string;
  readonly leaves: StoredLeaf[] = [];
  /** base64url of each 64-byte leaf, as /log/entries serves them. */
  readonly leafTexts: string[] = [];
  /** levels[h][i]: hash of the perfect subtree of leaves [i·2^h, (i+1)·2^h). */
  readonly #levels: Uint8Array[][] = [[]];
  /** "user\0device" → indices of that device's entries; "user" → indices of the user's entries. */
  readonly #byDevice = new Map<string, number[]>();
  readonly #byUser = new Map<string, number[]>();

  constructor(tenant: string) {
    this.tenant = tenant;
  }

  get size(): number {
    return this.leaves.length;
  }

  append(leaf: StoredLeaf): void {
    const i = this.leaves.length;
    const bytes = logLeaf(this.tenant, leaf.user, leaf.device, fromB64(leaf.identity_key, 32) ?? new Uint8Array(32), leaf.ts);
    this.leaves.push(leaf);
    this.leafTexts.push(toB64(bytes));
    push(this.#byDevice, `${leaf.user}\0${leaf.device}`, i);
    push(this.#byUser, leaf.user, i);
    this.#levels[0]!.push(leafHash(bytes));
    for (let h = 0, idx = i; idx % 2 === 1; h++, idx = (idx - 1) / 2) {
      const level = this.#levels[h]!;
      (this.#levels[h + 1] ??= []).push(nodeHash(level[idx - 1]!, level[idx]!));
    }
  }

  /** RFC 9162 MTH(D[lo:hi]). */
  hash(lo: number, hi: number): Uint8Array {
    const n = hi - lo;
    if (n === 0) return EMPTY_ROOT;
    if ((n & (n - 1)) === 0 && lo % n === 0) {
      const h = Math.log2(n);
      return this.#levels[h]![lo / n]!;
    }
    const k = splitPoint(n);
    return nodeHash(this.hash(lo, lo + k), this.hash(lo + k, hi));
  }

  root(size: number): Uint8Array {
    return this.hash(0, size);
  }

  /** RFC 9162 §2.1.3.1 PATH(m, D[0:size]). */
  inclusion(m: number, size: number): Uint8Array[] {
    const path = (m: number, lo: number, hi: number): Uint8Array[] => {
      if (hi - lo <= 1) return [];
      const k = splitPoint(hi - lo);
      return m < k ? [...path(m, lo, lo + k), this.hash(lo + k, hi)] : [...path(m - k, lo + k, hi), this.hash(lo, lo + k)];
    };
    return path(m, 0, size);
  }

  /** RFC 9162 §2.1.4.1 PROOF(m, D[0:n]); empty for m = 0 and m = n. */
  consistency(m: number, n: number): Uint8Array[] {
    if (m === 0 || m === n) return [];
    const sub = (m: number, lo: number, hi: number, whole: boolean): Uint8Array[] => {
      if (m === hi - lo) return whole ? [] : [this.hash(lo, hi)];
      const k = splitPoint(hi - lo);
      return m <= k
        ? [...sub(m, lo, lo + k, whole), this.hash(lo + k, hi)]
        : [...sub(m - k, lo + k, hi, false), this.hash(lo, lo + k)];
    };
    return sub(m, 0, n, true);
  }

  /** Hashes of the perfect subtrees covering [0, from), largest first. */
  prefix(from: number): Uint8Array[] {
    return prefixRanges(from).map(([a, b]) => this.hash(a, b));
  }

  /** Index of the newest entry of (user, device) below `size`, or -1. */
  latest(user: string, device: string, size: number): number {
    const list = this.#byDevice.get(`${user}\0${device}`) ?? [];
    for (let i = list.length - 1; i >= 0; i--) if (list[i]! < size) return list[i]!;
    return -1;
  }

  /** Indices of the user's entries in [from, size). */
  userEntries(user: string, from: number, size: number): number[] {
    return (this.#byUser.get(user) ?? []).filter((i) => i >= from && i < size);
  }
}

function push(map: Map<string, number[]>, key: string, i: number): void {
  const list = map.get(key);
  if (list) list.push(i);
  else map.set(key, [i]);
}
