// The tenant key log as the SDK sees it (PROTOCOL.md §8): leaf and head encodings shared with ward's
// directory, and KeyLog, which checks everything ward says about the log against the pinned log key.
import { isName, readEd25519 } from './bundle.js';
import { E2EError } from './errors.js';
import { leafHash, prefixRanges, rootFrom, verifyConsistencyPath, verifyInclusionPath } from './merkle.js';
import { concat, encode, equal, fromB64, hash, verify } from './primitives.js';

export interface LogHead {
  tenant: string;
  size: number;
  root: string;
  sig: string;
}
export interface InclusionProof {
  user: string;
  device: string;
  identity_key: string;
  ts: number;
  index: number;
  size: number;
  path: string[];
}
export interface ConsistencyProof {
  from: number;
  to: number;
  path: string[];
}
export interface LogEntry {
  index: number;
  device: string;
  identity_key: string;
  ts: number;
}
/** The answer of GET /v1/e2e/log/entries?user=U[&from=M]. */
export interface LogEntries {
  tenant: string;
  user: string;
  from: number;
  size: number;
  /** Hashes of the perfect subtrees covering [0, from), largest first. */
  prefix: string[];
  /** Every leaf of [from, size): base64url of user_tag ‖ entry_hash (64 bytes). */
  leaves: string[];
  /** The full entries of `user` in [from, size). */
  entries: LogEntry[];
}
export interface ProvenKey {
  user: string;
  device: string;
  identity_key: string;
  index: number;
  ts: number;
}

export function userTag(tenant: string, user: string): Uint8Array {
  return hash(encode('ward-e2e/v1/log-user', tenant, user));
}

export function entryHash(device: string, identityKey: Uint8Array, ts: number): Uint8Array {
  return hash(encode('ward-e2e/v1/log-entry', device, identityKey, ts));
}

/** The 64-byte leaf of one logged key. */
export function logLeaf(tenant: string, user: string, device: string, identityKey: Uint8Array, ts: number): Uint8Array {
  return concat(userTag(tenant, user), entryHash(device, identityKey, ts));
}

export function headMessage(tenant: string, size: number, root: Uint8Array): Uint8Array {
  return encode('ward-e2e/v1/log-head', tenant, size, root);
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
const isCount = (n: unknown): n is number => typeof n === 'number' && Number.isSafeInteger(n) && n >= 0;

function hashes(list: unknown, code: 'ERR_LOG_PROOF' | 'ERR_LOG_INCONSISTENT' | 'ERR_LOG_INCOMPLETE'): Uint8Array[] {
  if (!Array.isArray(list) || list.length > 64 * 1024 * 1024) throw new E2EError(code, 'a hash list must be an array');
  return list.map((h) => {
    const b = fromB64(h, 32);
    if (!b) throw new E2EError(code, 'a hash in the list is not 32 bytes of base64url');
    return b;
  });
}

export class KeyLog {
  readonly #key: Uint8Array;
  readonly #tenant: string | undefined;

  /** `logKey`: from GET /v1/e2e/log/key, pinned by the app. `tenant`: refuse heads of any other. */
  constructor(logKey: string, opts: { tenant?: string } = {}) {
    this.#key = readEd25519(logKey, 'log key');
    this.#tenant = opts.tenant;
  }

  /** Throws ERR_LOG_SIGNATURE unless `head` is signed by the log key (and of the expected tenant). */
  verifyHead(head: unknown): LogHead {
    if (!isObject(head) || !isName(head.tenant) || !isCount(head.size)) {
      throw new E2EError('ERR_LOG_SIGNATURE', 'a head is {tenant, size, root, sig}');
    }
    const root = fromB64(head.root, 32);
    const sig = fromB64(head.sig, 64);
    if (!root || !sig || !verify(this.#key, headMessage(head.tenant, head.size, root), sig)) {
      throw new E2EError('ERR_LOG_SIGNATURE', 'the head is not signed by the pinned log key');
    }
    if (this.#tenant !== undefined && head.tenant !== this.#tenant) {
      throw new E2EError('ERR_LOG_SIGNATURE', `the head is of tenant ${head.tenant}, not ${this.#tenant}`);
    }
    return { tenant: head.tenant, size: head.size, root: head.root as string, sig: head.sig as string };
  }

  /** Throws unless `proof` proves its (user, device, identity_key) in the log of `head`; returns it. */
  verifyInclusion(head: unknown, proof: unknown): ProvenKey {
    const h = this.verifyHead(head);
    if (!isObject(proof) || !isName(proof.user) || !isName(proof.device) || !isCount(proof.ts) || !isCount(proof.index)) {
      throw new E2EError('ERR_LOG_PROOF', 'an inclusion proof is {user, device, identity_key, ts, index, size, path}');
    }
    if (proof.size !== h.size) throw new E2EError('ERR_LOG_PROOF', `the proof is for size ${String(proof.size)}, the head has ${h.size}`);
    const ik = fromB64(proof.identity_key, 32);
    if (!ik) throw new E2EError('ERR_LOG_PROOF', 'proof.identity_key is not 32 bytes of base64url');
    const leaf = logLeaf(h.tenant, proof.user, proof.device, ik, proof.ts);
    if (!verifyInclusionPath(leaf, proof.index, h.size, hashes(proof.path, 'ERR_LOG_PROOF'), fromB64(h.root, 32)!)) {
      throw new E2EError('ERR_LOG_PROOF', 'the inclusion proof does not verify against the head');
    }
    return { user: proof.user, device: proof.device, identity_key: proof.identity_key as string, index: proof.index, ts: proof.ts };
  }

  /** verifyInclusion, plus: the proven key is the one `bundle` (of `user`) carries. */
  verifyBundle(head: unknown, proof: unknown, bundle: { user?: string; device: string; identity_key: string }, user?: string): ProvenKey {
    const proven = this.verifyInclusion(head, proof);
    const who = user ?? bundle.user;
    if (proven.user !== who || proven.device !== bundle.device || proven.identity_key !== bundle.identity_key) {
      throw new E2EError('ERR_LOG_MISMATCH', `the log does not hold this identity key for ${String(who)}/${bundle.device}`);
    }
    return proven;
  }

  /** Throws ERR_LOG_INCONSISTENT unless `newHead` extends `oldHead` (both signed). */
  verifyConsistency(oldHead: unknown, newHead: unknown, proof: unknown): void {
    const a = this.verifyHead(oldHead);
    const b = this.verifyHead(newHead);
    if (a.tenant !== b.tenant) throw new E2EError('ERR_LOG_INCONSISTENT', 'the heads are of two tenants');
    if (!isObject(proof) || proof.from !== a.size || proof.to !== b.size) {
      throw new E2EError('ERR_LOG_INCONSISTENT', `the proof is not for sizes ${a.size} → ${b.size}`);
    }
    const path = hashes(proof.path, 'ERR_LOG_INCONSISTENT');
    if (!verifyConsistencyPath(a.size, fromB64(a.root, 32)!, b.size, fromB64(b.root, 32)!, path)) {
      throw new E2EError('ERR_LOG_INCONSISTENT', `the head of size ${b.size} does not extend the head of size ${a.size}`);
    }
  }

  /** Own-key monitoring (PROTOCOL.md §8.3): throws ERR_LOG_INCOMPLETE unless `entries` accounts for
   * every leaf of `head` (from `since`, a head checked earlier, when entries.from > 0); returns the
   * entries whose identity key is not in `knownKeys`. */
  monitor(entries: unknown, head: unknown, knownKeys: Iterable<string>, opts: { since?: unknown } = {}): LogEntry[] {
    const known = new Set(knownKeys);
    return this.#checkEntries(entries, head, opts.since).filter((e) => !known.has(e.identity_key));
  }

  /** The newest logged key of each device of the user, from a complete entry list (entries.from = 0). */
  currentKeys(entries: unknown, head: unknown): Map<string, LogEntry> {
    const list = this.#checkEntries(entries, head, undefined);
    const out = new Map<string, LogEntry>();
    for (const e of list) out.set(e.device, e);
    return out;
  }

  #checkEntries(entries: unknown, head: unknown, since: unknown): LogEntry[] {
    const h = this.verifyHead(head);
    const fail = (why: string): never => {
      throw new E2EError('ERR_LOG_INCOMPLETE', why);
    };
    const e = entries;
    if (!isObject(e) || !isName(e.user) || !isCount(e.from) || !isCount(e.size) || !Array.isArray(e.leaves) || !Array.isArray(e.entries)) {
      return fail('an entry list is {tenant, user, from, size, prefix, leaves, entries}');
    }
    if (e.tenant !== h.tenant || e.size !== h.size) fail(`the list is for ${String(e.tenant)}/${e.size}, the head for ${h.tenant}/${h.size}`);
    if (e.from > e.size || e.leaves.length !== e.size - e.from) fail('the list does not hold one leaf per log entry');
    const prefix = hashes(e.prefix, 'ERR_LOG_INCOMPLETE');
    if (prefix.length !== prefixRanges(e.from).length) fail('the prefix does not cover the first entries');
    if (e.from > 0) {
      if (since === undefined) fail('a list that starts after entry 0 needs { since: the head of that size, checked earlier }');
      const s = this.verifyHead(since);
      if (s.tenant !== h.tenant || s.size !== e.from || !equal(rootFrom(e.from, prefix, []), fromB64(s.root, 32)!)) {
        fail('the prefix does not match the earlier head');
      }
    }
    const byIndex = new Map<number, LogEntry>();
    for (const x of e.entries as unknown[]) {
      if (!isObject(x) || !isCount(x.index) || !isName(x.device) || !isCount(x.ts) || !fromB64(x.identity_key, 32)) {
        fail('an entry is {index, device, identity_key, ts}');
      }
      const entry = x as unknown as LogEntry;
      if (byIndex.has(entry.index)) fail(`entry ${entry.index} is listed twice`);
      byIndex.set(entry.index, { index: entry.index, device: entry.device, identity_key: entry.identity_key, ts: entry.ts });
    }
    const from = e.from;
    const tag = userTag(h.tenant, e.user);
    const leafHashes: Uint8Array[] = [];
    const mine: LogEntry[] = [];
    (e.leaves as unknown[]).forEach((l, i) => {
      const leaf = fromB64(l, 64);
      const index = from + i;
      if (!leaf) return fail(`leaf ${index} is not 64 bytes of base64url`);
      if (equal(leaf.subarray(0, 32), tag)) {
        const entry = byIndex.get(index);
        if (!entry) return fail(`entry ${index} belongs to ${e.user} and is missing from the list`);
        if (!equal(leaf.subarray(32), entryHash(entry.device, fromB64(entry.identity_key, 32)!, entry.ts))) {
          return fail(`entry ${index} is not the one logged`);
        }
        mine.push(entry);
        byIndex.delete(index);
      }
      leafHashes.push(leafHash(leaf));
    });
    if (byIndex.size > 0) fail(`entries ${[...byIndex.keys()].join(', ')} are not ${e.user}'s in the log`);
    if (!equal(rootFrom(from, prefix, leafHashes), fromB64(h.root, 32)!)) fail('the leaves do not hash to the head root');
    return mine;
  }
}
