// The key log's Merkle tree: ward's proofs (LogTree) against the SDK's RFC 9162 verifiers, across
// many sizes, and against a direct, naive MTH written here from the RFC's definition.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { LogTree } from '../directory/log-tree.js';
import { logLeaf } from '../sdk/key-log.js';
import { EMPTY_ROOT, leafHash, nodeHash, prefixRanges, rootFrom, verifyConsistencyPath, verifyInclusionPath } from '../sdk/merkle.js';
import { equal, fromB64, randomBytes, toB64 } from '../sdk/primitives.js';

function tree(n: number): { log: LogTree; leaves: Uint8Array[] } {
  const log = new LogTree('acme');
  const leaves: Uint8Array[] = [];
  for (let i = 0; i < n; i++) {
    const leaf = { user: `u${i % 7}`, device: `d${i}`, identity_key: toB64(randomBytes(32)), ts: 1_700_000_000_000 + i };
    log.append(leaf);
    leaves.push(logLeaf('acme', leaf.user, leaf.device, fromB64(leaf.identity_key, 32)!, leaf.ts));
  }
  return { log, leaves };
}

/** RFC 9162 §2.1.1, literally. */
function naiveMth(leaves: Uint8Array[]): Uint8Array {
  if (leaves.length === 0) return EMPTY_ROOT;
  if (leaves.length === 1) return leafHash(leaves[0]!);
  let k = 1;
  while (k * 2 < leaves.length) k *= 2;
  return nodeHash(naiveMth(leaves.slice(0, k)), naiveMth(leaves.slice(k)));
}

const flip = (b: Uint8Array) => {
  const c = b.slice();
  c[0]! ^= 1;
  return c;
};

describe('Merkle tree', () => {
  const N = 70;
  const { log, leaves } = tree(N);

  it('roots of every size equal the RFC definition', () => {
    for (let n = 0; n <= N; n++) assert.ok(equal(log.root(n), naiveMth(leaves.slice(0, n))), `size ${n}`);
  });

  it('inclusion proofs verify for every leaf of every size, and fail for any other leaf, index or root', () => {
    for (let n = 1; n <= N; n++) {
      const root = log.root(n);
      for (let i = 0; i < n; i++) {
        const path = log.inclusion(i, n);
        assert.ok(verifyInclusionPath(leaves[i]!, i, n, path, root), `leaf ${i} of ${n}`);
        assert.ok(!verifyInclusionPath(leaves[(i + 1) % N]!, i, n, path, root));
        assert.ok(!verifyInclusionPath(leaves[i]!, i, n, path, flip(root)));
        if (n > 1) assert.ok(!verifyInclusionPath(leaves[i]!, (i + 1) % n, n, path, root));
        if (path.length > 0) assert.ok(!verifyInclusionPath(leaves[i]!, i, n, [...path.slice(1), flip(path[0]!)], root));
        assert.ok(!verifyInclusionPath(leaves[i]!, i, n, [...path, root], root), 'an extra node');
      }
      assert.ok(!verifyInclusionPath(leaves[0]!, n, n, [], root), 'index beyond size');
    }
  });

  it('consistency proofs verify for every pair of sizes 0 <= m <= n <= 70, and fail when tampered', () => {
    for (let n = 0; n <= N; n++) {
      const rn = log.root(n);
      for (let m = 0; m <= n; m++) {
        const rm = log.root(m);
        const path = log.consistency(m, n);
        assert.ok(verifyConsistencyPath(m, rm, n, rn, path), `${m} -> ${n}`);
        if (m > 0 && m < n) {
          assert.ok(!verifyConsistencyPath(m, flip(rm), n, rn, path), `old root changed ${m} -> ${n}`);
          assert.ok(!verifyConsistencyPath(m, rm, n, flip(rn), path), `new root changed ${m} -> ${n}`);
          assert.ok(!verifyConsistencyPath(m, rm, n, rn, [flip(path[0]!), ...path.slice(1)]), `path changed ${m} -> ${n}`);
          assert.ok(!verifyConsistencyPath(m, rm, n, rn, path.slice(0, -1)), `path shortened ${m} -> ${n}`);
          assert.ok(!verifyConsistencyPath(m, rm, n, rn, []), `empty path ${m} -> ${n}`);
        }
      }
    }
    assert.ok(!verifyConsistencyPath(5, log.root(5), 4, log.root(4), []), 'shrinking is never consistent');
  });

  it('a rewritten history is not consistent with the old head', () => {
    const { log: forked } = tree(40);
    assert.ok(!verifyConsistencyPath(20, log.root(20), 40, forked.root(40), forked.consistency(20, 40)));
  });

  it('consistency and inclusion at large sizes (random pairs up to 5000)', () => {
    const big = tree(5000);
    for (let t = 0; t < 200; t++) {
      const n = 1 + Math.floor(Math.random() * 5000);
      const m = Math.floor(Math.random() * (n + 1));
      assert.ok(verifyConsistencyPath(m, big.log.root(m), n, big.log.root(n), big.log.consistency(m, n)), `${m} -> ${n}`);
      const i = Math.floor(Math.random() * n);
      assert.ok(verifyInclusionPath(big.leaves[i]!, i, n, big.log.inclusion(i, n), big.log.root(n)));
    }
  });

  it('the root of a size is recomputed from the prefix subtrees of any earlier size and the later leaves', () => {
    for (let n = 0; n <= N; n++) {
      for (let from = 0; from <= n; from++) {
        const prefix = log.prefix(from);
        assert.equal(prefix.length, prefixRanges(from).length);
        const got = rootFrom(from, prefix, leaves.slice(from, n).map(leafHash));
        assert.ok(equal(got, log.root(n)), `from ${from} to ${n}`);
      }
    }
  });
});
