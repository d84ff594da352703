import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Histogram } from './histogram.js';

test('percentiles stay within 1.6 % of the exact value over six decades', () => {
  const h = new Histogram();
  const values: number[] = [];
  for (let i = 1; i <= 100_000; i++) {
    const v = Math.round(10 ** (i / 16_667)); // 1 µs .. 1 s, log-spread
    values.push(v);
    h.record(v);
  }
  values.sort((a, b) => a - b);
  for (const p of [50, 90, 99, 99.9]) {
    const exact = values[Math.ceil((p / 100) * values.length) - 1];
    const got = h.percentile(p);
    assert.ok(got >= exact && got <= exact * 1.016 + 1, `p${p}: ${got} vs exact ${exact}`);
  }
  assert.equal(h.count, 100_000);
  assert.equal(h.max, values[values.length - 1]);
});

test('small values are exact, and merging equals recording everything in one', () => {
  const a = new Histogram();
  const b = new Histogram();
  for (let v = 0; v < 64; v++) a.record(v);
  for (let v = 0; v < 64; v++) b.record(v + 1000);
  assert.equal(a.percentile(50), 31);
  a.merge(b);
  assert.equal(a.count, 128);
  assert.equal(a.min, 0);
  assert.equal(a.max, 1063);
  assert.ok(Math.abs(a.percentile(75) - 1031) <= 16);
});

test('an empty histogram reports zeros, not NaN', () => {
  const s = new Histogram().summary();
  assert.deepEqual(s, { count: 0, mean_us: 0, p50_us: 0, p99_us: 0, p999_us: 0, max_us: 0 });
});

test('negative and huge values are clamped instead of corrupting the table', () => {
  const h = new Histogram();
  h.record(-5);
  h.record(1e12);
  assert.equal(h.count, 2);
  assert.equal(h.percentile(1), 0);
  assert.ok(h.percentile(100) >= 2 ** 31);
});
