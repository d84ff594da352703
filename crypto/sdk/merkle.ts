// RFC 9162 §2.1 Merkle tree hashing and proof verification, with BLAKE2b-256 as the hash (PROTOCOL.md
// §8). Sizes and indices are plain numbers: a log holds far fewer than 2^53 leaves.
import { concat, equal, hash } from './primitives.js';

const LEAF = new Uint8Array([0x00]);
const NODE = new Uint8Array([0x01]);

export function leafHash(leaf: Uint8Array): Uint8Array {
  return hash(concat(LEAF, leaf));
}

export function nodeHash(left: Uint8Array, right: Uint8Array): Uint8Array {
  return hash(concat(NODE, left, right));
}

export const EMPTY_ROOT: Uint8Array = hash(new Uint8Array(0));

/** Largest power of two strictly below n (n >= 2). */
export function splitPoint(n: number): number {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

const isOdd = (n: number) => n % 2 === 1;
const half = (n: number) => Math.floor(n / 2);

/** RFC 9162 §2.1.3.2: does `path` prove `leaf` at `index` in the tree of `size` with `root`? */
export function verifyInclusionPath(leaf: Uint8Array, index: number, size: number, path: Uint8Array[], root: Uint8Array): boolean {
  if (!Number.isSafeInteger(index) || !Number.isSafeInteger(size) || index < 0 || index >= size) return false;
  let fn = index;
  let sn = size - 1;
  let r = leafHash(leaf);
  for (const p of path) {
    if (sn === 0) return false;
    if (isOdd(fn) || fn === sn) {
      r = nodeHash(p, r);
      if (!isOdd(fn)) {
        while (!isOdd(fn) && fn !== 0) {
          fn = half(fn);
          sn = half(sn);
        }
      }
    } else {
      r = nodeHash(r, p);
    }
    fn = half(fn);
    sn = half(sn);
  }
  return sn === 0 && equal(r, root);
}

/** RFC 9162 §2.1.4.2: does `path` prove that the tree (size2, root2) extends (size1, root1)? */
export function verifyConsistencyPath(size1: number, root1: Uint8Array, size2: number, root2: Uint8Array, path: Uint8Array[]): boolean {
  if (!Number.isSafeInteger(size1) || !Number.isSafeInteger(size2) || size1 < 0 || size1 > size2) return false;
  if (size1 === size2) return path.length === 0 && equal(root1, root2);
  if (size1 === 0) return path.length === 0 && equal(root1, EMPTY_ROOT);
  if (path.length === 0) return false;
  // RFC 9162: when size1 is a power of two its root is itself the first node of the proof.
  const proof = isPowerOfTwo(size1) ? [root1, ...path] : path;
  let fn = size1 - 1;
  let sn = size2 - 1;
  while (isOdd(fn)) {
    fn = half(fn);
    sn = half(sn);
  }
  let fr = proof[0]!;
  let sr = proof[0]!;
  for (const c of proof.slice(1)) {
    if (sn === 0) return false;
    if (isOdd(fn) || fn === sn) {
      fr = nodeHash(c, fr);
      sr = nodeHash(c, sr);
      if (!isOdd(fn)) {
        while (!isOdd(fn) && fn !== 0) {
          fn = half(fn);
          sn = half(sn);
        }
      }
    } else {
      sr = nodeHash(sr, c);
    }
    fn = half(fn);
    sn = half(sn);
  }
  return equal(fr, root1) && equal(sr, root2) && sn === 0;
}

function isPowerOfTwo(n: number): boolean {
  while (n > 1) {
    if (isOdd(n)) return false;
    n = half(n);
  }
  return n === 1;
}

/** The perfect subtrees covering [0, size), largest first: [start, end) pairs (PROTOCOL.md §8.3). */
export function prefixRanges(size: number): [number, number][] {
  const out: [number, number][] = [];
  let start = 0;
  let rest = size;
  while (rest > 0) {
    let p = 1;
    while (p * 2 <= rest) p *= 2;
    out.push([start, start + p]);
    start += p;
    rest -= p;
  }
  return out;
}

/** RFC 9162 MTH of [0, size) from the hashes of the perfect subtrees covering [0, from) (prefixRanges)
 * and the leaf hashes of [from, size). */
export function rootFrom(from: number, prefix: Uint8Array[], leafHashes: Uint8Array[]): Uint8Array {
  const size = from + leafHashes.length;
  const ranges = prefixRanges(from);
  if (prefix.length !== ranges.length) throw new RangeError('prefix does not match its size');
  const known = new Map<string, Uint8Array>();
  ranges.forEach(([a, b], i) => known.set(`${a}:${b}`, prefix[i]!));
  const mth = (lo: number, hi: number): Uint8Array => {
    const piece = known.get(`${lo}:${hi}`);
    if (piece) return piece;
    if (hi - lo === 1) {
      if (lo < from) throw new RangeError(`no prefix hash for leaf ${lo}`);
      return leafHashes[lo - from]!;
    }
    const k = splitPoint(hi - lo);
    return nodeHash(mth(lo, lo + k), mth(lo + k, hi));
  };
  return size === 0 ? EMPTY_ROOT : mth(0, size);
}
