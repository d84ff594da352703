import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { FloodSpec } from '../../policy/types.js';
import { parseAddress } from './cidr-set.js';
import { FloodGuard, FloodVerdict, isDrop } from './flood-guard.js';

const { Pass, Allowed, Denied, Banned, Flooding } = FloodVerdict;

function spec(over: Partial<FloodSpec> = {}): FloodSpec {
  return { per_ip: { rate: 5, per_s: 1, ban_s: 30 }, ipv6_prefix: 64, max_body_bytes: 1 << 20, max_header_bytes: 16384, deny: [], allow: [], enforce: true, ...over };
}
const addr = (text: string): ArrayBuffer => {
  const b = parseAddress(text)!;
  return b.buffer.slice(b.byteOffset, b.byteOffset + b.length) as ArrayBuffer;
};
function guard(over: Partial<FloodSpec> = {}): FloodGuard {
  const g = FloodGuard.create({ addressSlots: 1 << 10 });
  g.configure(spec(over));
  return g;
}

test('passes an address up to its per_ip burst, then bans it for ban_s', () => {
  const g = guard();
  const a = addr('192.0.2.1');
  for (let i = 0; i < 5; i++) assert.equal(g.check(a, 1000), Pass);
  assert.equal(g.check(a, 1000), Flooding);
  assert.equal(g.check(a, 1000), Banned);
  assert.equal(g.check(a, 30_999), Banned);
  assert.equal(g.check(addr('192.0.2.2'), 1000), Pass, 'other addresses are unaffected');
  assert.equal(g.check(a, 31_000), Pass, 'the ban ends after ban_s');
});

test('a steady rate at per_ip never bans', () => {
  const g = guard();
  const a = addr('2001:db8::1');
  for (let now = 0; now < 20_000; now += 200) assert.equal(g.check(a, now), Pass);
});

test('an IPv6 client counts by its /64: rotating addresses inside it neither escapes the rate nor a ban', () => {
  const g = guard();
  for (let i = 1; i <= 5; i++) assert.equal(g.check(addr(`2001:db8:1:2::${i.toString(16)}`), 1000), Pass);
  assert.equal(g.check(addr('2001:db8:1:2:ffff:ffff:ffff:ffff'), 1000), Flooding);
  assert.equal(g.check(addr('2001:db8:1:2::abcd'), 1000), Banned);
  assert.equal(g.check(addr('2001:db8:1:3::1'), 1000), Pass, 'the next /64 is another client');
  assert.equal(g.check(addr('192.0.2.1'), 1000), Pass);
});

test('flood.ipv6_prefix sets who one IPv6 client is: a /56 holder rotating /64s is one client; /60 masks inside a byte', () => {
  const g56 = guard({ ipv6_prefix: 56 });
  for (let i = 1; i <= 5; i++) assert.equal(g56.check(addr(`2001:db8:1:20${i}::1`), 1000), Pass, 'five /64s inside 2001:db8:1:200::/56');
  assert.equal(g56.check(addr('2001:db8:1:2ff::1'), 1000), Flooding, 'the sixth /64 of the same /56');
  assert.equal(g56.check(addr('2001:db8:1:300::1'), 1000), Pass, 'the next /56 is another client');

  const g60 = guard({ ipv6_prefix: 60 });
  for (let i = 0; i < 5; i++) assert.equal(g60.check(addr(`2001:db8:1:a${i}::1`), 1000), Pass, 'inside 2001:db8:1:a0::/60');
  assert.equal(g60.check(addr('2001:db8:1:af::1'), 1000), Flooding, 'still 2001:db8:1:a0::/60');
  assert.equal(g60.check(addr('2001:db8:1:b0::1'), 1000), Pass, '2001:db8:1:b0::/60 is another client');

  const g128 = guard({ ipv6_prefix: 128 });
  for (let i = 1; i <= 6; i++) assert.equal(g128.check(addr(`2001:db8::${i}`), 1000), Pass, '/128: every address on its own');
});

test('a prefix change applies to the next request: /48 joins what /64 kept apart', () => {
  const g = guard();
  for (let i = 1; i <= 6; i++) assert.equal(g.check(addr(`2001:db8:7:${i}::1`), 1000), Pass, `/64 number ${i}: a client of its own`);
  g.configure(spec({ ipv6_prefix: 48 }));
  for (let i = 1; i <= 6; i++) assert.equal(g.check(addr(`2001:db8:7:${i}::2`), 1000), i === 6 ? Flooding : Pass, `request ${i} of 2001:db8:7::/48`);
});

test('the same IPv4 client counts once whether seen as 4 bytes or as ::ffff:a.b.c.d', () => {
  const g = guard();
  for (let i = 0; i < 3; i++) g.check(addr('198.51.100.9'), 0);
  for (let i = 0; i < 2; i++) assert.equal(g.check(addr('::ffff:198.51.100.9'), 0), Pass);
  assert.equal(g.check(addr('::ffff:198.51.100.9'), 0), Flooding);
  assert.equal(g.check(addr('198.51.100.9'), 0), Banned);
});

test('deny drops, allow is never limited, and allow wins over an overlapping deny', () => {
  const g = guard({ deny: ['203.0.113.0/24', '2001:db8::/32'], allow: ['203.0.113.8/29', '10.0.0.0/8'] });
  assert.equal(g.check(addr('203.0.113.1'), 0), Denied);
  assert.equal(g.check(addr('::ffff:203.0.113.1'), 0), Denied);
  assert.equal(g.check(addr('2001:db8::5'), 0), Denied);
  assert.equal(g.check(addr('203.0.113.9'), 0), Allowed);
  for (let i = 0; i < 100; i++) assert.equal(g.check(addr('10.9.9.9'), 0), Allowed);
  assert.deepEqual([Pass, Allowed, Denied, Banned, Flooding].map(isDrop), [false, false, true, true, true]);
});

test('no per_ip means no per-address rate', () => {
  const g = guard({ per_ip: undefined });
  for (let i = 0; i < 1000; i++) assert.equal(g.check(addr('192.0.2.1'), 0), Pass);
});

test('a reconfiguration keeps bans and counts, and applies new lists and rates', () => {
  const g = guard();
  const a = addr('192.0.2.1');
  for (let i = 0; i < 6; i++) g.check(a, 0);
  g.configure(spec({ per_ip: { rate: 2, per_s: 1, ban_s: 5 }, deny: ['192.0.2.200'] }));
  assert.equal(g.check(a, 1000), Banned, 'the ban from the old version holds');
  assert.equal(g.check(addr('192.0.2.200'), 1000), Denied);
  const b = addr('192.0.2.2');
  assert.equal(g.check(b, 1000), Pass);
  assert.equal(g.check(b, 1000), Pass);
  assert.equal(g.check(b, 1000), Flooding, 'the new rate applies');
  assert.equal(g.check(b, 6000), Pass, 'the new ban_s applies');
  assert.throws(() => g.configure(spec({ deny: ['nope'] })), /"nope" is not a CIDR/);
  assert.equal(g.check(addr('192.0.2.200'), 7000), Denied, 'a refused configuration changes nothing');
});

test('shadow mode: the verdicts are what enforcing would say, and the guard says it is not enforcing', () => {
  const g = guard({ enforce: false });
  assert.equal(g.enforce, false);
  const a = addr('192.0.2.1');
  for (let i = 0; i < 5; i++) assert.equal(g.check(a, 0), Pass);
  assert.equal(g.check(a, 0), Flooding);
  assert.equal(guard().enforce, true);
});

test('addresses of an unknown length pass untracked', () => {
  const g = guard({ deny: ['0.0.0.0/0', '::/0'] });
  assert.equal(g.check(new ArrayBuffer(0), 0), Pass);
});

test('stats count live addresses, bans and evictions across attached guards', () => {
  const g = FloodGuard.create({ addressSlots: 8 });
  const other = FloodGuard.attach(structuredClone(g.shared()));
  g.configure(spec({ per_ip: { rate: 1, per_s: 1, ban_s: 60 } }));
  other.configure(spec({ per_ip: { rate: 1, per_s: 1, ban_s: 60 } }));
  g.check(addr('192.0.2.1'), 0);
  assert.equal(other.check(addr('192.0.2.1'), 0), Flooding, 'one budget across guards on one table');
  assert.equal(g.check(addr('192.0.2.1'), 0), Banned);
  for (let i = 2; i <= 9; i++) g.check(addr(`192.0.2.${i}`), 0); // 9 addresses, 8 slots
  const s = g.stats(0);
  assert.deepEqual([s.tracked, s.banned, s.evictions, s.capacity], [8, 1, 1, 8]);
  assert.equal(g.check(addr('192.0.2.1'), 1), Banned, 'the ban was not the one evicted');
  assert.equal(g.stats(61_000).tracked, 0, 'everything idle later');
});
