// A sweep of 1,000,000 distinct source addresses must not grow the process beyond the guard's
// fixed table, and must not unban the addresses banned before it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { FloodGuard, FloodVerdict, DEFAULT_ADDRESS_SLOTS } from './flood-guard.js';
import { SharedTable } from '../../store/memory/shared-table.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;
const MiB = 1 << 20;

test('1,000,000 distinct addresses grow the process by no more than the fixed table, and bans survive', () => {
  const tableBytes = SharedTable.bytes(DEFAULT_ADDRESS_SLOTS, 2);
  assert.equal(tableBytes, 25_690_144, 'the bound stated in flood-guard.ts');

  gc();
  const before = process.memoryUsage();
  const g = FloodGuard.create();
  g.configure({ per_ip: { rate: 10, per_s: 1, ban_s: 300 }, ipv6_prefix: 64, max_body_bytes: MiB, max_header_bytes: 16384, deny: [], allow: [], enforce: true });

  const now = 1_000_000;
  const banned: ArrayBuffer[] = [];
  for (let i = 0; i < 100; i++) {
    const a = new Uint8Array([198, 51, 100, i]).buffer;
    for (let k = 0; k < 11; k++) g.check(a, now);
    assert.equal(g.check(a, now), FloodVerdict.Banned);
    banned.push(a);
  }

  // IPv6 sources 2001:db8:<i>::1, all within the same instant: every entry stays live, the worst case.
  const src = new ArrayBuffer(16);
  const view = new Uint8Array(src);
  view.set([0x20, 0x01, 0x0d, 0xb8]);
  view[15] = 1;
  let passed = 0;
  for (let i = 0; i < 1_000_000; i++) {
    view[4] = i >>> 24;
    view[5] = (i >>> 16) & 0xff;
    view[6] = (i >>> 8) & 0xff;
    view[7] = i & 0xff;
    if (g.check(src, now) === FloodVerdict.Pass) passed++;
  }
  assert.equal(passed, 1_000_000);

  gc();
  const after = process.memoryUsage();
  const rssGrowth = after.rss - before.rss;
  const heapGrowth = after.heapUsed - before.heapUsed;
  const slack = 16 * MiB; // code, JIT and allocator noise, not per-address state
  assert.ok(rssGrowth <= tableBytes + slack, `RSS grew ${(rssGrowth / MiB).toFixed(1)} MiB`);
  assert.ok(heapGrowth <= 8 * MiB, `heap grew ${(heapGrowth / MiB).toFixed(1)} MiB`);
  assert.ok(after.arrayBuffers - before.arrayBuffers <= tableBytes + MiB);

  for (const a of banned) assert.equal(g.check(a, now + 1), FloodVerdict.Banned);
  const s = g.stats(now);
  assert.equal(s.banned, 100);
  assert.ok(s.tracked <= s.capacity);
  assert.ok(s.evictions > 0, 'a full group evicted live rate entries rather than growing');
  assert.equal(s.bytes, tableBytes);
});
