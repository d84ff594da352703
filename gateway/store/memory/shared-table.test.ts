import { test } from 'node:test';
import assert from 'node:assert/strict';
import { IDLE, NEVER, SharedTable } from './shared-table.js';

function put(t: SharedTable, key: string, value: number, now = 0): number {
  t.hashString(key);
  const g = t.lock();
  let s = t.find(g);
  if (s < 0) s = t.claim(g, (vals, base, n) => (vals[base]! < 0 ? NEVER : vals[base]! <= n ? IDLE : vals[base]!), now);
  if (s >= 0) t.vals[s] = value;
  t.unlock(g);
  return s;
}
function get(t: SharedTable, key: string): number | undefined {
  t.hashString(key);
  const g = t.lock();
  const s = t.find(g);
  t.unlock(g);
  return s < 0 ? undefined : t.vals[s];
}

test('refuses a slot count that is not a power of two, saying what to write', () => {
  assert.throws(() => SharedTable.create({ slots: 1000, fields: 1 }), /power of two >= 8, e\.g\. 65536; got 1000/);
  assert.throws(() => SharedTable.create({ slots: 4, fields: 1 }), /power of two/);
  assert.throws(() => SharedTable.create({ slots: 64, fields: 0 }), /fields must be a positive integer/);
});

test('an attached table sees and changes the same entries', () => {
  const a = SharedTable.create({ slots: 64, fields: 1 });
  const b = SharedTable.attach(structuredClone(a.shared()));
  put(a, 'k1', 11);
  assert.equal(get(b, 'k1'), 11);
  put(b, 'k1', 12);
  put(b, 'k2', 22);
  assert.equal(get(a, 'k1'), 12);
  assert.equal(get(a, 'k2'), 22);
  assert.equal(get(a, 'k3'), undefined);
});

test('attach refuses anything but what shared() returned', () => {
  assert.throws(() => SharedTable.attach({ sab: new SharedArrayBuffer(8), slots: 64, fields: 1 }), /table\.shared\(\)/);
  assert.throws(() => SharedTable.attach({} as never), /table\.shared\(\)/);
});

test('its size is fixed at creation: 24 bytes a slot for two fields, plus a lock per 8 slots', () => {
  assert.equal(SharedTable.bytes(1 << 20, 2), 32 + (1 << 17) * 4 + (1 << 20) * 24);
  assert.equal(SharedTable.create({ slots: 1 << 10, fields: 2 }).shared().sab.byteLength, SharedTable.bytes(1 << 10, 2));
});

test('a full group reuses an idle slot first, then evicts the live entry of lowest rank, never a NEVER one', () => {
  const t = SharedTable.create({ slots: 8, fields: 1 }); // one group
  // value < 0: pinned (NEVER); value <= now: idle; else live with rank = value
  for (let i = 0; i < 6; i++) put(t, `pinned${i}`, -1);
  put(t, 'live50', 50);
  put(t, 'idle', 5);
  assert.ok(put(t, 'new1', 100, 10) >= 0);
  assert.equal(get(t, 'idle'), undefined, 'the idle entry made room');
  assert.equal(t.evictions, 0, 'reusing an idle slot is not an eviction');
  assert.ok(put(t, 'new2', 100, 10) >= 0);
  assert.equal(get(t, 'live50'), undefined, 'the live entry closest to idle went');
  assert.equal(get(t, 'new1'), 100);
  assert.equal(t.evictions, 1);
  for (let i = 0; i < 6; i++) assert.equal(get(t, `pinned${i}`), -1);
  put(t, 'new1', -1);
  put(t, 'new2', -1);
  assert.equal(put(t, 'new3', 1, 10), -1, 'nothing to evict: the claim is refused');
  assert.equal(t.unplaced, 1);
});

test('strings and bytes that differ get different keys; the same input the same key', () => {
  const t = SharedTable.create({ slots: 64, fields: 1 });
  const seen = new Set<string>();
  for (let i = 0; i < 10000; i++) {
    t.hashString(`{tenant${i}}:b:api`);
    seen.add(`${t.h1},${t.h2}`);
  }
  assert.equal(seen.size, 10000);
  t.hashBytes(Uint8Array.of(0, 10, 0, 0, 1), 1, 4);
  const [h1, h2] = [t.h1, t.h2];
  t.hashBytes(Uint8Array.of(10, 0, 0, 1), 0, 4);
  assert.deepEqual([t.h1, t.h2], [h1, h2]);
  t.hashBytes(Uint8Array.of(10, 0, 0, 2), 0, 4);
  assert.notDeepEqual([t.h1, t.h2], [h1, h2]);
});
