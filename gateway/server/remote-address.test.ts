import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatAddress } from './remote-address.js';

const bytes = (...b: number[]) => new Uint8Array(b);

test('formats IPv4, IPv4-mapped IPv6 and IPv6 addresses as an operator expects them', () => {
  assert.equal(formatAddress(bytes(127, 0, 0, 1)), '127.0.0.1');
  assert.equal(formatAddress(bytes(203, 0, 113, 255)), '203.0.113.255');
  assert.equal(formatAddress(bytes(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 1, 2, 3)), '10.1.2.3');
  assert.equal(formatAddress(bytes(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1)), '::1');
  assert.equal(formatAddress(bytes(0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1)), '2001:db8::1');
  assert.equal(formatAddress(bytes(0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1)), '2001:db8:1::1:0:1');
  assert.equal(formatAddress(bytes(0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0)), 'fe80::1234:5678:9abc:def0');
  assert.equal(formatAddress(bytes(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)), '::');
});

test('agrees with node:net on random IPv6 addresses', async () => {
  const { SocketAddress } = await import('node:net');
  for (let n = 0; n < 200; n++) {
    const b = new Uint8Array(16);
    for (let i = 0; i < 16; i++) b[i] = Math.random() < 0.4 ? 0 : Math.floor(Math.random() * 256);
    if (b.slice(0, 10).every((x) => x === 0) && b[10] === 0xff && b[11] === 0xff) continue;
    const text = formatAddress(b);
    // node:net parses it back to the same address.
    const parsed = new SocketAddress({ address: text, family: 'ipv6' }).address;
    assert.equal(parsed, text);
  }
});
