// Received keys are refused unless canonical and of prime order (PROTOCOL.md §2), and base64url is
// strict: one key, one encoding.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ed25519KeyPair, ed25519KeyProblem, fromB64, toB64, x25519, x25519KeyPair, x25519KeyProblem } from '../sdk/primitives.js';

const P = (1n << 255n) - 19n;
const le = (n: bigint, signBit = false) => {
  const b = new Uint8Array(32);
  for (let i = 0; i < 32; i++) b[i] = Number((n >> BigInt(8 * i)) & 0xffn);
  if (signBit) b[31]! |= 0x80;
  return b;
};
const fromLe = (b: Uint8Array) => b.reduceRight((n, x) => (n << 8n) | BigInt(x), 0n);
const hex = (s: string) => Uint8Array.from(Buffer.from(s, 'hex'));
const pow = (b: bigint, e: bigint): bigint => {
  let r = 1n;
  b %= P;
  for (; e > 0n; e >>= 1n, b = (b * b) % P) if (e & 1n) r = (r * b) % P;
  return r;
};

// The low-order points of Curve25519 (RFC 7748 §6.1 / libsodium's blocklist), canonical encodings.
const X_LOW_ORDER = [
  '0000000000000000000000000000000000000000000000000000000000000000',
  '0100000000000000000000000000000000000000000000000000000000000000',
  'e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800',
  '5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157',
  'ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
];

describe('X25519 keys', () => {
  it('random keys pass', () => {
    for (let i = 0; i < 20; i++) assert.equal(x25519KeyProblem(x25519KeyPair().publicKey), null);
  });
  it('refuses every low-order point', () => {
    const me = x25519KeyPair().secretKey;
    for (const h of X_LOW_ORDER) {
      assert.match(x25519KeyProblem(hex(h)) ?? 'accepted', /low order/, h);
      assert.throws(() => x25519(me, hex(h)), /low order/, 'libsodium refuses the all-zero DH output too');
    }
  });
  it('refuses non-canonical encodings: top bit set, u = p, u = p + 1, 2^255 - 1, of good keys too', () => {
    const good = x25519KeyPair().publicKey;
    const top = good.slice();
    top[31]! |= 0x80;
    assert.match(x25519KeyProblem(top)!, /non-canonical/);
    for (const n of [P, P + 1n, P + 9n, (1n << 255n) - 1n]) assert.match(x25519KeyProblem(le(n))!, /non-canonical/);
    // u + p for a small good u would be the same key: refused.
    assert.equal(x25519KeyProblem(le(9n)), null);
    assert.match(x25519KeyProblem(le(9n + P))!, /non-canonical/);
  });
  it('refuses wrong sizes', () => {
    assert.match(x25519KeyProblem(new Uint8Array(31))!, /32 bytes/);
    assert.match(x25519KeyProblem(new Uint8Array(33))!, /32 bytes/);
  });
});

describe('Ed25519 keys', () => {
  it('random keys pass', () => {
    for (let i = 0; i < 20; i++) assert.equal(ed25519KeyProblem(ed25519KeyPair().publicKey), null);
  });
  it('refuses all small-order points, both signs (derived from the Curve25519 ones: y = (u-1)/(u+1))', () => {
    const ys = X_LOW_ORDER.map((h) => fromLe(hex(h))).map((u) => ((u - 1n + P) * pow(u + 1n, P - 2n)) % P);
    ys.push(1n); // the identity
    for (const y of ys) {
      for (const sign of [false, true]) {
        const enc = le(y, sign);
        assert.ok(ed25519KeyProblem(enc) !== null, `small-order ${Buffer.from(enc).toString('hex')} accepted`);
      }
    }
  });
  it('refuses non-canonical y (y >= p) and encodings that are not points', () => {
    for (const n of [P, P + 1n, (1n << 255n) - 1n]) assert.match(ed25519KeyProblem(le(n))!, /non-canonical/);
    // About half of all y have no x: find one and check it is refused.
    let refused = 0;
    for (let y = 2n; y < 40n; y++) if (ed25519KeyProblem(le(y)) !== null) refused++;
    assert.ok(refused > 0);
  });
  it('refuses wrong sizes', () => {
    assert.match(ed25519KeyProblem(new Uint8Array(31))!, /32 bytes/);
  });
});

describe('base64url is strict', () => {
  it('round trips and refuses padding, the standard alphabet, non-zero trailing bits and wrong lengths', () => {
    const k = x25519KeyPair().publicKey;
    assert.deepEqual(fromB64(toB64(k), 32), k);
    assert.equal(fromB64(toB64(k) + '=', 32), null);
    assert.equal(fromB64('AQ=='), null);
    assert.equal(fromB64('AQ+/'), null);
    assert.equal(fromB64('AR'), null);
    assert.equal(fromB64('AQ', 2), null);
    assert.equal(fromB64(42), null);
    assert.equal(fromB64(toB64(k).slice(1), 32), null);
  });
});
