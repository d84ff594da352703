// Another implementation agrees with ours: RFC 7748 / RFC 8032 / draft-irtf-cfrg-xchacha vectors
// through the SDK's primitives, and random keys, signatures, DH outputs and AEAD cross-checked
// against node:crypto (OpenSSL). The SDK itself never imports node:crypto.
import assert from 'node:assert/strict';
import { createCipheriv, createDecipheriv, createHash, createPrivateKey, createPublicKey, diffieHellman, randomBytes, sign as nodeSign, verify as nodeVerify } from 'node:crypto';
import { describe, it } from 'node:test';
import {
  aeadOpen, aeadSeal, ed25519FromSeed, ed25519KeyPair, ed25519KeyProblem, edPublicToX, edSecretToX, sign, verify, x25519, x25519Base,
  x25519KeyPair, x25519KeyProblem,
} from '../sdk/primitives.js';

const hex = (s: string) => Uint8Array.from(Buffer.from(s.replace(/\s+/g, ''), 'hex'));
const toHex = (b: Uint8Array) => Buffer.from(b).toString('hex');

describe('X25519 agrees with RFC 7748', () => {
  it('§5.2 test vectors (the second input u has its top bit set: the primitive masks it, as the RFC says)', () => {
    assert.equal(
      toHex(x25519(hex('a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4'), hex('e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c'))),
      'c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552',
    );
    const u2 = hex('e5210f12786811d3f4b7959d0538ae2c31dbe7106fc03c3efc4cd549c715a493');
    assert.equal(
      toHex(x25519(hex('4b66e9d4d1b4673c5ad22691957d6af5c11b6421e0ea01d42ca4169e7918ba0d'), u2)),
      '95cbde9476e8907d7aade45cb4b873f88b595a68799fa152e6f8f7647aac7957',
    );
    // ...which is exactly why received keys are refused in that form: one key, one encoding.
    assert.match(x25519KeyProblem(u2)!, /non-canonical/);
  });

  it('§5.2 iterated: 1 and 1000 iterations', () => {
    let k: Uint8Array = hex('09'.padEnd(64, '0'));
    let u = k;
    for (let i = 1; i <= 1000; i++) {
      const next = x25519(k, u);
      u = k;
      k = next;
      if (i === 1) assert.equal(toHex(k), '422c8e7a6227d7bca1350b3e2bb7279f7897b87bb6854b783c60e80311ae3079');
    }
    assert.equal(toHex(k), '684cf59ba83309552800ef566f2f4d3c1c3887c49360e3875f2eb94d99532c51');
  });

  it('§6.1 Diffie-Hellman', () => {
    const a = hex('77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a');
    const b = hex('5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb');
    assert.equal(toHex(x25519Base(a)), '8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a');
    assert.equal(toHex(x25519Base(b)), 'de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f');
    const k = '4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742';
    assert.equal(toHex(x25519(a, x25519Base(b))), k);
    assert.equal(toHex(x25519(b, x25519Base(a))), k);
  });
});

describe('Ed25519 agrees with RFC 8032 §7.1', () => {
  const vectors = [
    ['9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60', 'd75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a', '',
      'e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b'],
    ['4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb', '3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c', '72',
      '92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00'],
    ['c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7', 'fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025', 'af82',
      '6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a'],
    ['833fe62409237b9d62ec77587520911e9a759cec1d19755b7da901b96dca3d42', 'ec172b93ad5e563bf4932c70e1245034c35467ef2efd4d64ebf819683467e2bf',
      'ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f',
      'dc2a4459e7369633a52b1bf277839a00201009a3efbf3ecb69bea2186c26b58909351fc9ac90b3ecfdfbc7c66431e0303dca179c138ac17ad9bef1177331a704'],
  ] as const;
  for (const [seed, pub, msg, sig] of vectors) {
    it(`seed ${seed.slice(0, 8)}…: public key, signature, verification`, () => {
      const kp = ed25519FromSeed(hex(seed));
      assert.equal(toHex(kp.publicKey), pub);
      assert.equal(toHex(sign(kp.secretKey, hex(msg))), sig);
      assert.equal(verify(kp.publicKey, hex(msg), hex(sig)), true);
      const bad = hex(sig);
      bad[0]! ^= 1;
      assert.equal(verify(kp.publicKey, hex(msg), bad), false);
      assert.equal(ed25519KeyProblem(kp.publicKey), null);
    });
  }
});

// --- node:crypto (OpenSSL) as the second implementation --------------------------------------

const X_PKCS8 = hex('302e020100300506032b656e04220420');
const X_SPKI = hex('302a300506032b656e032100');
const ED_PKCS8 = hex('302e020100300506032b657004220420');
const ED_SPKI = hex('302a300506032b6570032100');
const der = (prefix: Uint8Array, key: Uint8Array) => Buffer.concat([prefix, key]);

describe('the SDK and node:crypto agree on random keys', () => {
  it('X25519 public keys and DH outputs (50 random pairs)', () => {
    for (let i = 0; i < 50; i++) {
      const a = x25519KeyPair();
      const b = x25519KeyPair();
      const aKey = createPrivateKey({ key: der(X_PKCS8, a.secretKey), format: 'der', type: 'pkcs8' });
      const nodePub = createPublicKey(aKey).export({ format: 'der', type: 'spki' }).subarray(-32);
      assert.equal(toHex(nodePub), toHex(a.publicKey));
      const bPub = createPublicKey({ key: der(X_SPKI, b.publicKey), format: 'der', type: 'spki' });
      assert.equal(toHex(diffieHellman({ privateKey: aKey, publicKey: bPub })), toHex(x25519(a.secretKey, b.publicKey)));
    }
  });

  it('Ed25519: SDK signatures verify in node, node signatures verify in the SDK (50 random keys)', () => {
    for (let i = 0; i < 50; i++) {
      const kp = ed25519KeyPair();
      const msg = randomBytes(i * 7);
      const nodePriv = createPrivateKey({ key: der(ED_PKCS8, kp.secretKey.subarray(0, 32)), format: 'der', type: 'pkcs8' });
      const nodePub = createPublicKey({ key: der(ED_SPKI, kp.publicKey), format: 'der', type: 'spki' });
      assert.equal(toHex(createPublicKey(nodePriv).export({ format: 'der', type: 'spki' }).subarray(-32)), toHex(kp.publicKey));
      assert.equal(nodeVerify(null, msg, nodePub, sign(kp.secretKey, msg)), true);
      const theirs = nodeSign(null, msg, nodePriv);
      assert.equal(verify(kp.publicKey, msg, theirs), true);
      assert.equal(toHex(theirs), toHex(sign(kp.secretKey, msg)), 'Ed25519 is deterministic: same signature');
    }
  });

  it('the identity keys\' X25519 form is the RFC 7748 birational map u = (1+y)/(1-y), and the secret is SHA-512(seed)[0..32] (node)', () => {
    const P = (1n << 255n) - 19n;
    const pow = (b: bigint, e: bigint): bigint => {
      let r = 1n;
      for (b %= P; e > 0n; e >>= 1n, b = (b * b) % P) if (e & 1n) r = (r * b) % P;
      return r;
    };
    for (let i = 0; i < 20; i++) {
      const kp = ed25519KeyPair();
      const y = Buffer.from(kp.publicKey).reduceRight((n, x, j) => (n << 8n) | BigInt(j === 31 ? x & 0x7f : x), 0n);
      const u = ((1n + y) * pow((1n - y + P) % P, P - 2n)) % P;
      const uBytes = Buffer.alloc(32);
      for (let j = 0; j < 32; j++) uBytes[j] = Number((u >> BigInt(8 * j)) & 0xffn);
      assert.equal(toHex(edPublicToX(kp.publicKey)), uBytes.toString('hex'));
      const scalar = createHash('sha512').update(kp.secretKey.subarray(0, 32)).digest().subarray(0, 32);
      const nodeKey = createPrivateKey({ key: der(X_PKCS8, scalar), format: 'der', type: 'pkcs8' });
      const nodeU = createPublicKey(nodeKey).export({ format: 'der', type: 'spki' }).subarray(-32);
      assert.equal(toHex(nodeU), uBytes.toString('hex'));
      assert.equal(toHex(x25519Base(edSecretToX(kp.secretKey))), uBytes.toString('hex'));
    }
  });

  it('XChaCha20-Poly1305 matches node chacha20-poly1305 with an independent HChaCha20', () => {
    for (let i = 0; i < 20; i++) {
      const key = randomBytes(32);
      const nonce = randomBytes(24);
      const ad = randomBytes(i);
      const pt = randomBytes(i * 13);
      const ours = aeadSeal(key, nonce, ad, pt);
      const subkey = hchacha20(key, nonce.subarray(0, 16));
      const n12 = Buffer.concat([Buffer.alloc(4), nonce.subarray(16)]);
      const c = createCipheriv('chacha20-poly1305', subkey, n12, { authTagLength: 16 });
      c.setAAD(ad, { plaintextLength: pt.length });
      const theirs = Buffer.concat([c.update(pt), c.final(), c.getAuthTag()]);
      assert.equal(toHex(ours), toHex(theirs));
      const d = createDecipheriv('chacha20-poly1305', subkey, n12, { authTagLength: 16 });
      d.setAAD(ad, { plaintextLength: pt.length });
      d.setAuthTag(ours.subarray(-16));
      assert.equal(toHex(Buffer.concat([d.update(ours.subarray(0, -16)), d.final()])), toHex(pt));
    }
  });

  it('XChaCha20-Poly1305 agrees with draft-irtf-cfrg-xchacha-03 §A.3.1', () => {
    const pt = new TextEncoder().encode(
      "Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.",
    );
    const key = hex('808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f');
    const nonce = hex('404142434445464748494a4b4c4d4e4f5051525354555657');
    const ad = hex('50515253c0c1c2c3c4c5c6c7');
    const ct = aeadSeal(key, nonce, ad, pt);
    assert.equal(
      toHex(ct),
      'bd6d179d3e83d43b9576579493c0e939572a1700252bfaccbed2902c21396cbb731c7f1b0b4aa6440bf3a82f4eda7e39ae64c6708c54c216cb96b72e1213b452' +
        '2f8c9ba40db5d945b11b69b982c1bb9e3f3fac2bc369488f76b2383565d3fff921f9664c97637da9768812f615c68b13b52e' +
        'c0875924c1c7987947deafd8780acf49',
    );
    assert.equal(new TextDecoder().decode(aeadOpen(key, nonce, ad, ct)!), new TextDecoder().decode(pt));
  });
});

/** HChaCha20 (draft-irtf-cfrg-xchacha §2.2), written out here so the AEAD check does not lean on libsodium. */
function hchacha20(key: Uint8Array, nonce16: Uint8Array): Buffer {
  const s = new Uint32Array(16);
  s.set([0x61707865, 0x3320646e, 0x79622d32, 0x6b206574]);
  const kv = new DataView(key.buffer, key.byteOffset, 32);
  const nv = new DataView(nonce16.buffer, nonce16.byteOffset, 16);
  for (let i = 0; i < 8; i++) s[4 + i] = kv.getUint32(i * 4, true);
  for (let i = 0; i < 4; i++) s[12 + i] = nv.getUint32(i * 4, true);
  const rotl = (v: number, c: number) => ((v << c) | (v >>> (32 - c))) >>> 0;
  const qr = (a: number, b: number, c: number, d: number) => {
    s[a] = (s[a]! + s[b]!) >>> 0; s[d] = rotl(s[d]! ^ s[a]!, 16);
    s[c] = (s[c]! + s[d]!) >>> 0; s[b] = rotl(s[b]! ^ s[c]!, 12);
    s[a] = (s[a]! + s[b]!) >>> 0; s[d] = rotl(s[d]! ^ s[a]!, 8);
    s[c] = (s[c]! + s[d]!) >>> 0; s[b] = rotl(s[b]! ^ s[c]!, 7);
  };
  for (let i = 0; i < 10; i++) {
    qr(0, 4, 8, 12); qr(1, 5, 9, 13); qr(2, 6, 10, 14); qr(3, 7, 11, 15);
    qr(0, 5, 10, 15); qr(1, 6, 11, 12); qr(2, 7, 8, 13); qr(3, 4, 9, 14);
  }
  const out = Buffer.alloc(32);
  [0, 1, 2, 3, 12, 13, 14, 15].forEach((w, i) => out.writeUInt32LE(s[w]!, i * 4));
  return out;
}
