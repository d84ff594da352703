import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { UpstreamSpec } from '../policy/types.js';
import { HashRing, hash32 } from './hash-ring.js';
import { LoopWatch } from './loop-watch.js';
import { UpstreamGroup } from './upstream-group.js';

const watch = new LoopWatch();
const FIVE = [1, 2, 3, 4, 5].map((i) => `http://10.0.0.${i}:8080`);
const KEYS = Array.from({ length: 10_000 }, (_, i) => `tenant-${i % 97}/user-${i}`);

function group(targets: readonly string[], balance_factor = 125): UpstreamGroup<undefined> {
  const spec: UpstreamSpec = { name: 'api', targets, timeout_ms: 1000, balance: 'hash', hash: { key: 'tenant_sub', balance_factor } };
  return new UpstreamGroup(spec, { loopWatch: watch });
}

/** Where each key lands with nothing in flight (pick, then release at once). */
function mapping(g: UpstreamGroup<undefined>): string[] {
  return KEYS.map((k) => {
    const t = g.pick(k)!;
    g.release(t);
    return t.url;
  });
}

describe('consistent hashing', () => {
  it('spreads 10,000 keys over 5 targets close to evenly', () => {
    const m = mapping(group(FIVE));
    for (const t of FIVE) {
      const share = m.filter((u) => u === t).length / KEYS.length;
      assert.ok(share > 0.14 && share < 0.26, `${t} holds ${share}`);
    }
  });

  it('moves only the removed target\'s keys (at most 1/5 + 2 %) and restores them when it comes back', () => {
    const before = mapping(group(FIVE));
    const removed = FIVE[2]!;
    const after = mapping(group(FIVE.filter((t) => t !== removed)));
    let moved = 0;
    for (let i = 0; i < KEYS.length; i++) {
      if (before[i] === after[i]) continue;
      moved++;
      assert.equal(before[i], removed, `key ${KEYS[i]} moved off a target that stayed`);
    }
    assert.ok(moved / KEYS.length <= 0.22, `${moved} keys moved`);
    assert.deepEqual(mapping(group(FIVE)), before);
  });

  it('maps every key the same way in two independently built groups, whatever the list order', () => {
    const a = mapping(group(FIVE));
    const b = mapping(group([...FIVE].reverse()));
    assert.deepEqual(a, b);
  });

  it('walks on past an ejected or drained target without moving other keys', () => {
    const g = group(FIVE);
    const before = mapping(g);
    g.drain(FIVE[0]!);
    const after = mapping(g);
    for (let i = 0; i < KEYS.length; i++) {
      if (before[i] !== FIVE[0]) assert.equal(after[i], before[i]);
      else assert.notEqual(after[i], FIVE[0]);
    }
  });

  it('keeps every target at or under 1.25 × the average + 1 with Zipf-distributed keys', () => {
    const g = group(FIVE, 125);
    // Zipf(s = 1.1) over 1,000 keys, drawn with a fixed generator: a few keys dominate.
    const weights = Array.from({ length: 1000 }, (_, r) => 1 / (r + 1) ** 1.1);
    const total = weights.reduce((a, b) => a + b, 0);
    let seed = 42;
    const rand = (): number => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32);
    const held = new Map<string, number>();
    const sessions = 3000;
    for (let s = 1; s <= sessions; s++) {
      let x = rand() * total;
      let r = 0;
      while (x > weights[r]! && r < weights.length - 1) x -= weights[r++]!;
      const t = g.pick(`key-${r}`)!;
      held.set(t.url, (held.get(t.url) ?? 0) + 1);
      const max = Math.max(...held.values());
      assert.ok(max <= 1.25 * (s / FIVE.length) + 1, `after ${s} sessions a target holds ${max}`);
    }
    const loads = g.view().targets.map((t) => t.in_flight);
    assert.equal(loads.reduce((a, b) => a + b, 0), sessions);
    assert.ok(Math.max(...loads) <= 1.25 * (sessions / 5) + 1, loads.join());
  });

  it('an unbounded ring (balance_factor 0) keeps a hot key on one target', () => {
    const g = group(FIVE, 0);
    const first = g.pick('hot')!;
    for (let i = 0; i < 50; i++) assert.equal(g.pick('hot')!.url, first.url);
  });

  it('hash32 is a fixed function', () => {
    // Pinned: changing it would remap every key of every running fleet at the next upgrade.
    assert.equal(hash32(''), 2872998923);
    assert.equal(hash32('acme/alice'), 2811773459);
    assert.equal(hash32('tenant-1'), 1151549711);
    const ring = new HashRing(FIVE);
    assert.equal(ring.points.length, 5 * 160);
    assert.equal(ring.points[0], new HashRing([...FIVE].reverse()).points[0]);
  });
});
