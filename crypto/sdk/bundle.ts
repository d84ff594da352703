// Device bundles (PROTOCOL.md §3): what a device publishes, what a caller fetches, and the checks both
// the SDK and ward's directory run on them. One validator, so the two can never disagree.
import { E2EError } from './errors.js';
import { ed25519KeyProblem, encode, fromB64, sign, toB64, verify, x25519KeyProblem } from './primitives.js';

export interface SignedPrekey {
  id: number;
  key: string;
  sig: string;
}
export interface OneTimePrekey {
  id: number;
  key: string;
}
/** What a device PUTs to /v1/e2e/devices/{device}. */
export interface Bundle {
  identity_key: string;
  signed_prekey: SignedPrekey;
  one_time_prekeys: OneTimePrekey[];
}
/** One element of GET /v1/e2e/users/{user}/bundles. `user` is added by ward's directory; without it,
 * pass `{ user }` to `Device.call`. */
export interface PeerBundle {
  user?: string;
  device: string;
  identity_key: string;
  signed_prekey: SignedPrekey;
  one_time_prekey?: OneTimePrekey;
}

export const MAX_ONE_TIME_PREKEYS = 100;
const MAX_NAME = 128;

/** Users, devices, tenants and call ids: non-empty, short, no control characters. */
export function isName(s: unknown): s is string {
  return typeof s === 'string' && s.length > 0 && s.length <= MAX_NAME && !/[\u0000-\u001f\u007f]/.test(s);
}

export function isId(n: unknown): n is number {
  return typeof n === 'number' && Number.isInteger(n) && n >= 0 && n <= 0xffffffff;
}

export function readX25519(text: unknown, what: string): Uint8Array {
  const key = fromB64(text, 32);
  if (!key) throw new E2EError('ERR_BAD_KEY', `${what}: not 32 bytes of canonical base64url`);
  const problem = x25519KeyProblem(key);
  if (problem) throw new E2EError('ERR_BAD_KEY', `${what}: ${problem}`);
  return key;
}

export function readEd25519(text: unknown, what: string): Uint8Array {
  const key = fromB64(text, 32);
  if (!key) throw new E2EError('ERR_BAD_KEY', `${what}: not 32 bytes of canonical base64url`);
  const problem = ed25519KeyProblem(key);
  if (problem) throw new E2EError('ERR_BAD_KEY', `${what}: ${problem}`);
  return key;
}

export function readSignature(text: unknown, what: string): Uint8Array {
  const sig = fromB64(text, 64);
  if (!sig) throw new E2EError('ERR_BAD_MESSAGE', `${what}: not 64 bytes of canonical base64url`);
  return sig;
}

export function signedPrekeyMessage(tenant: string, user: string, device: string, id: number, key: Uint8Array): Uint8Array {
  return encode('ward-e2e/v1/signed-prekey', tenant, user, device, id, key);
}

export function signPrekey(identitySecret: Uint8Array, tenant: string, user: string, device: string, id: number, key: Uint8Array): string {
  return toB64(sign(identitySecret, signedPrekeyMessage(tenant, user, device, id, key)));
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export interface CheckedSignedPrekey {
  id: number;
  key: Uint8Array;
  sig: string;
}

function checkSignedPrekey(v: unknown, identity: Uint8Array, tenant: string, user: string, device: string): CheckedSignedPrekey {
  if (!isObject(v) || !isId(v.id)) throw new E2EError('ERR_BAD_MESSAGE', 'signed_prekey must be {id, key, sig}');
  const key = readX25519(v.key, 'signed_prekey.key');
  const sig = readSignature(v.sig, 'signed_prekey.sig');
  if (!verify(identity, signedPrekeyMessage(tenant, user, device, v.id, key), sig)) {
    throw new E2EError('ERR_BAD_SIGNATURE', `signed_prekey of ${user}/${device} is not signed by its identity key`);
  }
  return { id: v.id, key, sig: v.sig as string };
}

function checkOneTimePrekey(v: unknown, what: string): { id: number; key: Uint8Array } {
  if (!isObject(v) || !isId(v.id)) throw new E2EError('ERR_BAD_MESSAGE', `${what} must be {id, key}`);
  return { id: v.id, key: readX25519(v.key, `${what}.key`) };
}

/** The directory's check of a published bundle; throws E2EError (ward answers 400 bad_bundle). The
 * result holds only the fields ward keeps, re-encoded canonically. */
export function checkPublishedBundle(body: unknown, tenant: string, user: string, device: string): Bundle {
  if (!isObject(body)) throw new E2EError('ERR_BAD_MESSAGE', 'a bundle is a JSON object');
  if (!isName(device)) throw new E2EError('ERR_BAD_MESSAGE', 'device id must be 1-128 characters, no control characters');
  const identity = readEd25519(body.identity_key, 'identity_key');
  const spk = checkSignedPrekey(body.signed_prekey, identity, tenant, user, device);
  const list = body.one_time_prekeys ?? [];
  if (!Array.isArray(list)) throw new E2EError('ERR_BAD_MESSAGE', 'one_time_prekeys must be an array');
  if (list.length > MAX_ONE_TIME_PREKEYS) {
    throw new E2EError('ERR_BAD_MESSAGE', `at most ${MAX_ONE_TIME_PREKEYS} one-time prekeys per request`);
  }
  const ids = new Set<number>();
  const opks: OneTimePrekey[] = [];
  list.forEach((v, i) => {
    const opk = checkOneTimePrekey(v, `one_time_prekeys[${i}]`);
    if (ids.has(opk.id)) throw new E2EError('ERR_BAD_MESSAGE', `one-time prekey id ${opk.id} appears twice`);
    ids.add(opk.id);
    opks.push({ id: opk.id, key: toB64(opk.key) });
  });
  return {
    identity_key: toB64(identity),
    signed_prekey: { id: spk.id, key: toB64(spk.key), sig: spk.sig },
    one_time_prekeys: opks,
  };
}

export interface CheckedPeerBundle {
  user: string;
  device: string;
  identityKey: Uint8Array;
  signedPrekey: CheckedSignedPrekey;
  oneTimePrekey?: { id: number; key: Uint8Array };
}

/** The SDK's check of a fetched bundle before calling it; throws E2EError. */
export function checkPeerBundle(b: unknown, tenant: string, user?: string): CheckedPeerBundle {
  if (!isObject(b)) throw new E2EError('ERR_BAD_MESSAGE', 'a bundle is a JSON object');
  const who = user ?? b.user;
  if (!isName(who)) throw new E2EError('ERR_BAD_MESSAGE', 'the bundle names no user: pass { user } to call()');
  if (!isName(b.device)) throw new E2EError('ERR_BAD_MESSAGE', 'bundle.device is missing or malformed');
  const identityKey = readEd25519(b.identity_key, 'identity_key');
  const signedPrekey = checkSignedPrekey(b.signed_prekey, identityKey, tenant, who, b.device);
  const out: CheckedPeerBundle = { user: who, device: b.device, identityKey, signedPrekey };
  if (b.one_time_prekey !== undefined && b.one_time_prekey !== null) {
    out.oneTimePrekey = checkOneTimePrekey(b.one_time_prekey, 'one_time_prekey');
  }
  return out;
}
