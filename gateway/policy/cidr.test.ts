import assert from 'node:assert/strict';
import { test } from 'node:test';
import { checkCidr } from './cidr.js';

test('accepts IPv4 and IPv6 networks as written', () => {
  for (const c of ['203.0.113.0/24', '10.0.0.0/8', '0.0.0.0/0', '192.0.2.7/32', '2001:db8::/32', '::/0', '::1/128', 'fe80::/10', '::ffff:192.0.2.0/120']) {
    assert.deepEqual(checkCidr(c), { value: c });
  }
});

test('takes a bare address as a single host', () => {
  assert.deepEqual(checkCidr('192.0.2.7'), { value: '192.0.2.7/32' });
  assert.deepEqual(checkCidr('2001:db8::1'), { value: '2001:db8::1/128' });
});

test('refuses host bits, naming the network that was probably meant', () => {
  assert.deepEqual(checkCidr('10.1.2.3/16'), { error: '"10.1.2.3/16" has host bits set (did you mean "10.1.0.0/16"?)' });
  assert.deepEqual(checkCidr('2001:db8:1::5/48'), { error: '"2001:db8:1::5/48" has host bits set (did you mean "2001:db8:1::/48"?)' });
  assert.deepEqual(checkCidr('2001:db8:0:1:0:0:0:1/64'), { error: '"2001:db8:0:1:0:0:0:1/64" has host bits set (did you mean "2001:db8:0:1::/64"?)' });
});

test('refuses what is not an address or has a bad prefix length', () => {
  for (const c of ['example.com/24', '10.0.0.0/', '10.0.0.0/-1', '10.0.0.0/8/8', '256.0.0.0/8', '2001:db8::/129', '10.0.0.0/33', 'fe80::1%eth0/64', '']) {
    assert.ok('error' in checkCidr(c), c);
  }
});
