// The only file that touches libsodium. Everything above it speaks in these few operations, each
// named for what PROTOCOL.md §2 calls it. Top-level await: importers may call these synchronously.
import _sodium from 'libsodium-wrappers';
import { E2EError } from './errors.js';

await _sodium.ready;
const sodium = _sodium;

/** Resolves once libsodium is initialised (already the case once this module has loaded). */
export const ready: Promise<void> = _sodium.ready;

const B64 = sodium.base64_variants.URLSAFE_NO_PADDING;
const enc = new TextEncoder();

export function toB64(bytes: Uint8Array): string {
  return sodium.to_base64(bytes, B64);
}

/** Strict base64url: the string must be the one canonical encoding of `length` bytes, else null. */
export function fromB64(text: unknown, length?: number): Uint8Array | null {
  if (typeof text !== 'string' || !/^[A-Za-z0-9_-]*$/.test(text)) return null;
  let bytes: Uint8Array;
  try {
    bytes = sodium.from_base64(text, B64);
  } catch {
    return null;
  }
  if (length !== undefined && bytes.length !== length) return null;
  return sodium.to_base64(bytes, B64) === text ? bytes : null;
}

export function utf8(text: string): Uint8Array {
  return enc.encode(text);
}

export function u64(n: number): Uint8Array {
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`not a u64: ${n}`);
  const out = new Uint8Array(8);
  new DataView(out.buffer).setBigUint64(0, BigInt(n));
  return out;
}

export function concat(...parts: Uint8Array[]): Uint8Array {
  let len = 0;
  for (const p of parts) len += p.length;
  const out = new Uint8Array(len);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

export type Field = Uint8Array | string | number;

/** E(label, f1..fn) of PROTOCOL.md §2: length-prefixed, so no two tuples encode alike. */
export function encode(label: string, ...fields: Field[]): Uint8Array {
  const parts: Uint8Array[] = [];
  for (const f of [label, ...fields]) {
    const b = typeof f === 'string' ? utf8(f) : typeof f === 'number' ? u64(f) : f;
    const len = new Uint8Array(4);
    new DataView(len.buffer).setUint32(0, b.length);
    parts.push(len, b);
  }
  return concat(...parts);
}

/** BLAKE2b-256, unkeyed. */
export function hash(data: Uint8Array): Uint8Array {
  return sodium.crypto_generichash(32, data, null);
}

/** BLAKE2b-256 keyed with a 32-byte key: the PRF used for extract and MACs. */
export function mac(key: Uint8Array, data: Uint8Array): Uint8Array {
  return sodium.crypto_generichash(32, data, key);
}

/** crypto_kdf with the protocol's fixed context. */
export function kdf(key: Uint8Array, id: number): Uint8Array {
  return sodium.crypto_kdf_derive_from_key(32, id, 'wardE2E1', key);
}

export function equal(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && sodium.memcmp(a, b);
}

export function wipe(...bufs: (Uint8Array | undefined)[]): void {
  for (const b of bufs) if (b) sodium.memzero(b);
}

export function randomBytes(n: number): Uint8Array {
  return sodium.randombytes_buf(n);
}

// --- X25519 -------------------------------------------------------------------------------------

export interface KeyPair {
  publicKey: Uint8Array;
  secretKey: Uint8Array;
}

export function x25519KeyPair(): KeyPair {
  const kp = sodium.crypto_box_keypair();
  return { publicKey: kp.publicKey, secretKey: kp.privateKey };
}

export function x25519Base(secretKey: Uint8Array): Uint8Array {
  return sodium.crypto_scalarmult_base(secretKey);
}

/** X25519(secret, public). Throws ERR_BAD_KEY when the result is all-zero (low-order public key). */
export function x25519(secretKey: Uint8Array, publicKey: Uint8Array): Uint8Array {
  try {
    return sodium.crypto_scalarmult(secretKey, publicKey);
  } catch {
    throw new E2EError('ERR_BAD_KEY', 'X25519 public key of low order');
  }
}

const P = (1n << 255n) - 19n;
/** The u of every point of order dividing 8 on Curve25519 and its twist, canonical encodings:
 * 0 (order 2), 1 and p-1 (order 4), and the two of order 8 (RFC 7748 §6.1; libsodium's blocklist). */
const LOW_ORDER = new Set([0n, 1n, P - 1n,
  0x00b8495f16056286fdb1329ceb8d09da6ac49ff1fae35616aeb8413b7c7aebe0n,
  0x57119fd0dd4e22d8868e1c58c45c44045bef839c55b1d0b1248c50a3bc959c5fn]);

function littleEndian(bytes: Uint8Array, mask255: boolean): bigint {
  let n = 0n;
  for (let i = bytes.length - 1; i >= 0; i--) {
    const b = i === 31 && mask255 ? bytes[i]! & 0x7f : bytes[i]!;
    n = (n << 8n) | BigInt(b);
  }
  return n;
}

/** Why a received X25519 key is refused, or null when it is fine (PROTOCOL.md §2). */
export function x25519KeyProblem(key: Uint8Array): string | null {
  if (key.length !== 32) return 'X25519 key is not 32 bytes';
  // libsodium ignores the top bit and reduces u mod p, so u and u+p would be one key with two encodings.
  if (key[31]! & 0x80) return 'X25519 key has its top bit set (non-canonical)';
  if (littleEndian(key, false) >= P) return 'X25519 key is not reduced mod 2^255-19 (non-canonical)';
  if (LOW_ORDER.has(littleEndian(key, false))) return 'X25519 key is of low order';
  return null;
}

// --- Ed25519 ------------------------------------------------------------------------------------

export function ed25519KeyPair(): KeyPair {
  const kp = sodium.crypto_sign_keypair();
  return { publicKey: kp.publicKey, secretKey: kp.privateKey };
}

export function ed25519FromSeed(seed: Uint8Array): KeyPair {
  const kp = sodium.crypto_sign_seed_keypair(seed);
  return { publicKey: kp.publicKey, secretKey: kp.privateKey };
}

export function sign(secretKey: Uint8Array, message: Uint8Array): Uint8Array {
  return sodium.crypto_sign_detached(message, secretKey);
}

export function verify(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
  if (publicKey.length !== 32 || signature.length !== 64) return false;
  try {
    return sodium.crypto_sign_verify_detached(signature, message, publicKey);
  } catch {
    return false;
  }
}

/** Why a received Ed25519 key is refused, or null when it is fine (PROTOCOL.md §2). */
export function ed25519KeyProblem(key: Uint8Array): string | null {
  if (key.length !== 32) return 'Ed25519 key is not 32 bytes';
  if (littleEndian(key, true) >= P) return 'Ed25519 key is not reduced mod 2^255-19 (non-canonical)';
  // libsodium refuses small-order points, non-points and points outside the prime-order subgroup here.
  try {
    sodium.crypto_sign_ed25519_pk_to_curve25519(key);
  } catch {
    return 'Ed25519 key is not a point of prime order';
  }
  return null;
}

/** The X25519 form of an Ed25519 key pair's halves (the birational map), for the X3DH DHs. */
export function edPublicToX(publicKey: Uint8Array): Uint8Array {
  try {
    return sodium.crypto_sign_ed25519_pk_to_curve25519(publicKey);
  } catch {
    throw new E2EError('ERR_BAD_KEY', 'Ed25519 key is not a point of prime order');
  }
}

export function edSecretToX(secretKey: Uint8Array): Uint8Array {
  return sodium.crypto_sign_ed25519_sk_to_curve25519(secretKey);
}

// --- AEAD ---------------------------------------------------------------------------------------

export function aeadSeal(key: Uint8Array, nonce: Uint8Array, ad: Uint8Array, plaintext: Uint8Array): Uint8Array {
  return sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(plaintext, ad, null, nonce, key);
}

/** null when the tag does not verify. */
export function aeadOpen(key: Uint8Array, nonce: Uint8Array, ad: Uint8Array, ciphertext: Uint8Array): Uint8Array | null {
  try {
    return sodium.crypto_aead_xchacha20poly1305_ietf_decrypt(null, ciphertext, ad, nonce, key);
  } catch {
    return null;
  }
}
