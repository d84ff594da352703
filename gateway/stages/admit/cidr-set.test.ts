import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CidrSet, parseAddress, parseCidr } from './cidr-set.js';

const bytes = (text: string): ArrayBuffer => {
  const b = parseAddress(text)!;
  return b.buffer.slice(b.byteOffset, b.byteOffset + b.length) as ArrayBuffer;
};

test('matches IPv4 blocks, from text and from the 4 raw bytes uWS gives', () => {
  const s = CidrSet.from(['203.0.113.0/24', '198.51.100.7']);
  assert.equal(s.has('203.0.113.0'), true);
  assert.equal(s.has('203.0.113.255'), true);
  assert.equal(s.has(bytes('203.0.113.77')), true);
  assert.equal(s.has('203.0.114.0'), false);
  assert.equal(s.has('198.51.100.7'), true, 'a bare address is a /32');
  assert.equal(s.has('198.51.100.8'), false);
});

test('matches IPv6 blocks, from text and from the 16 raw bytes', () => {
  const s = CidrSet.from(['2001:db8::/32', 'fe80::1/128']);
  assert.equal(s.has('2001:db8:ffff::1'), true);
  assert.equal(s.has(bytes('2001:db8::')), true);
  assert.equal(s.has('2001:db9::'), false);
  assert.equal(s.has('fe80::1'), true);
  assert.equal(s.has('fe80::2'), false);
});

test('an IPv4-mapped IPv6 address is its IPv4 address, in lists and in lookups', () => {
  const s = CidrSet.from(['10.0.0.0/8', '::ffff:192.0.2.0/120']);
  assert.equal(s.has(bytes('::ffff:10.1.2.3')), true);
  assert.equal(s.has('::ffff:10.1.2.3'), true);
  assert.equal(s.has('192.0.2.9'), true);
  assert.equal(s.has('::ffff:11.0.0.1'), false);
  assert.equal(s.has('::a01:203'), false, 'IPv4-compatible (not mapped) stays IPv6');
});

test('/0 covers one whole family, /32 and /128 exactly one address', () => {
  const all4 = CidrSet.from(['0.0.0.0/0']);
  assert.equal(all4.has('255.255.255.255'), true);
  assert.equal(all4.has('::ffff:1.2.3.4'), true);
  assert.equal(all4.has('2001:db8::1'), false);
  const all6 = CidrSet.from(['::/0']);
  assert.equal(all6.has('2001:db8::1'), true);
  assert.equal(all6.has('::'), true);
  assert.equal(all6.has('1.2.3.4'), false);
  const one = CidrSet.from(['192.0.2.1/32', '2001:db8::1/128']);
  assert.equal(one.has('192.0.2.1'), true);
  assert.equal(one.has('192.0.2.0'), false);
  assert.equal(one.has('2001:db8::1'), true);
  assert.equal(one.has('2001:db8::'), false);
});

test('host bits beyond the prefix are ignored; nested blocks are fine', () => {
  const s = CidrSet.from(['10.1.2.3/8', '10.2.0.0/16']);
  assert.equal(s.has('10.200.0.1'), true);
  assert.deepEqual([...parseCidr('10.1.2.3/8').bytes], [10, 0, 0, 0]);
  assert.deepEqual(parseCidr('2001:db8::1:2/31').bytes.subarray(0, 4), Uint8Array.of(0x20, 0x01, 0x0d, 0xb8));
});

test('refuses malformed entries with the fix in the message', () => {
  assert.throws(() => CidrSet.from(['10.0.0.0/8', '10.0.0/8']), /"10\.0\.0\/8" is not a CIDR: write e\.g\./);
  assert.throws(() => CidrSet.from(['10.0.0.0/33']), /prefix length must be 0\.\.32/);
  assert.throws(() => CidrSet.from(['2001:db8::/129']), /prefix length must be 0\.\.128/);
  assert.throws(() => CidrSet.from(['10.0.0.0/']), /prefix length/);
  assert.throws(() => CidrSet.from(['fe80::1%eth0/64']), /not a CIDR/);
});

test('addresses of another length, or not addresses at all, are in no set', () => {
  const s = CidrSet.from(['0.0.0.0/0', '::/0']);
  assert.equal(s.has(new ArrayBuffer(0)), false);
  assert.equal(s.has(new ArrayBuffer(5)), false);
  assert.equal(s.has('not an address'), false);
  assert.equal(CidrSet.from([]).has('1.2.3.4'), false);
});
