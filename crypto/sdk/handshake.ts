// The three call set-up messages of PROTOCOL.md §4, their signed byte strings, and their parsers.
// Parsers check shape and key validity only; who may answer what is the device's and session's job.
import { isId, isName, readEd25519, readSignature, readX25519 } from './bundle.js';
import { E2EError } from './errors.js';
import { encode, fromB64, hash } from './primitives.js';

export interface HelloParty {
  user: string;
  device: string;
  identity_key: string;
}
export interface Hello {
  v: 1;
  type: 'hello';
  tenant: string;
  call_id: string;
  ts: number;
  from: HelloParty;
  to: HelloParty & { signed_prekey_id: number; one_time_prekey_id?: number };
  commit: string;
  sig: string;
}
export interface Reply {
  v: 1;
  type: 'reply';
  call_id: string;
  hello: string;
  ek: string;
  sig: string;
}
export interface Reveal {
  v: 1;
  type: 'reveal';
  call_id: string;
  hello: string;
  ek: string;
  mac: string;
}

const EMPTY = new Uint8Array(0);

export function commitment(tenant: string, callId: string, callerIdentity: Uint8Array, ephemeral: Uint8Array): Uint8Array {
  return hash(encode('ward-e2e/v1/commit', tenant, callId, callerIdentity, ephemeral));
}

export interface HelloFields {
  tenant: string;
  callId: string;
  from: { user: string; device: string; identityKey: Uint8Array };
  to: { user: string; device: string; identityKey: Uint8Array };
  spkId: number;
  opkId?: number;
  commit: Uint8Array;
  ts: number;
}

export function helloMessage(f: HelloFields): Uint8Array {
  return encode(
    'ward-e2e/v1/hello',
    f.tenant, f.callId,
    f.from.user, f.from.device, f.from.identityKey,
    f.to.user, f.to.device, f.to.identityKey,
    f.spkId, f.opkId ?? EMPTY, f.commit, f.ts,
  );
}

export function helloHash(tbs: Uint8Array, sig: Uint8Array): Uint8Array {
  return hash(encode('ward-e2e/v1/hello-hash', tbs, sig));
}

export function replyMessage(hHash: Uint8Array, responderIdentity: Uint8Array, ephemeral: Uint8Array): Uint8Array {
  return encode('ward-e2e/v1/reply', hHash, responderIdentity, ephemeral);
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function bad(what: string): never {
  throw new E2EError('ERR_BAD_MESSAGE', what);
}

export interface ParsedHello {
  fields: HelloFields;
  sig: Uint8Array;
}

export function parseHello(h: unknown): ParsedHello {
  if (!isObject(h) || h.v !== 1 || h.type !== 'hello') bad('not a v1 hello');
  if (!isName(h.tenant) || !isName(h.call_id)) bad('hello: tenant and call_id must be names');
  if (!Number.isSafeInteger(h.ts) || (h.ts as number) < 0) bad('hello: ts must be milliseconds');
  const from = h.from, to = h.to;
  if (!isObject(from) || !isName(from.user) || !isName(from.device)) bad('hello.from must be {user, device, identity_key}');
  if (!isObject(to) || !isName(to.user) || !isName(to.device) || !isId(to.signed_prekey_id)) {
    bad('hello.to must be {user, device, identity_key, signed_prekey_id}');
  }
  if (to.one_time_prekey_id !== undefined && !isId(to.one_time_prekey_id)) bad('hello.to.one_time_prekey_id must be an id');
  const commit = fromB64(h.commit, 32);
  if (!commit) bad('hello.commit must be 32 bytes of base64url');
  const fields: HelloFields = {
    tenant: h.tenant,
    callId: h.call_id,
    from: { user: from.user, device: from.device, identityKey: readEd25519(from.identity_key, 'hello.from.identity_key') },
    to: { user: to.user, device: to.device, identityKey: readEd25519(to.identity_key, 'hello.to.identity_key') },
    spkId: to.signed_prekey_id,
    commit,
    ts: h.ts as number,
  };
  if (to.one_time_prekey_id !== undefined) fields.opkId = to.one_time_prekey_id as number;
  return { fields, sig: readSignature(h.sig, 'hello.sig') };
}

export interface ParsedReply {
  callId: string;
  hello: Uint8Array;
  ek: Uint8Array;
  sig: Uint8Array;
}

export function parseReply(r: unknown): ParsedReply {
  if (!isObject(r) || r.v !== 1 || r.type !== 'reply' || !isName(r.call_id)) bad('not a v1 reply');
  const hello = fromB64(r.hello, 32);
  if (!hello) bad('reply.hello must be 32 bytes of base64url');
  return { callId: r.call_id, hello, ek: readX25519(r.ek, 'reply.ek'), sig: readSignature(r.sig, 'reply.sig') };
}

export interface ParsedReveal {
  callId: string;
  hello: Uint8Array;
  ek: Uint8Array;
  mac: Uint8Array;
}

export function parseReveal(r: unknown): ParsedReveal {
  if (!isObject(r) || r.v !== 1 || r.type !== 'reveal' || !isName(r.call_id)) bad('not a v1 reveal');
  const hello = fromB64(r.hello, 32);
  const mac = fromB64(r.mac, 32);
  if (!hello || !mac) bad('reveal.hello and reveal.mac must be 32 bytes of base64url');
  return { callId: r.call_id, hello, ek: readX25519(r.ek, 'reveal.ek'), mac };
}
