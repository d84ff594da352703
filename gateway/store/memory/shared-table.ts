// A fixed-capacity hash table in one SharedArrayBuffer, so every worker thread of a process reads
// and writes the same entries with no message per request. Keys are 64-bit hashes (of a string or
// of raw bytes), values are a few float64 fields per slot. Nothing is allocated per lookup and the
// table never grows: its size in bytes is fixed at creation (see `SharedTable.bytes`).
//
// Layout: slots are grouped in aligned groups of GROUP slots; a key probes only its own group
// (bounded linear probing) under that group's lock. One lock per group rather than per slot keeps
// two threads from inserting the same key into two different free slots, and needs no lock order.
//
//   header  Int32[HEADER]          seeds and shared counters
//   locks   Int32[groups]          0 free, 1 held, 2 held with waiters (Drepper's futex mutex)
//   keys    Int32[slots * 2]       h1, h2; h2 === 0 means the slot is empty (h2 always has bit 0 set)
//   vals    Float64[slots * fields]
//
// Memory ordering: lock and unlock are Atomics operations (sequentially consistent), so the plain
// typed-array reads and writes made while holding a lock are seen by the next holder.

export const GROUP = 8;
const HEADER = 8;
const H_SEED1 = 0;
const H_SEED2 = 1;
const H_EVICTIONS = 2;
const H_UNPLACED = 3;

/** What `shared()` returns: structured-cloneable, pass it in `workerData`. */
export interface SharedTableHandle {
  readonly sab: SharedArrayBuffer;
  readonly slots: number;
  readonly fields: number;
}

/**
 * How willing a claim is to reuse an occupied slot: `IDLE` (0) = its entry carries no state worth
 * keeping, reuse freely; a positive number = live, may be evicted (the smallest goes first);
 * `NEVER` = must not be evicted. Must be a plain function (no closure per call).
 */
export type EvictRank = (vals: Float64Array, base: number, nowMs: number) => number;
export const IDLE = 0;
export const NEVER = Infinity;

export class SharedTable {
  /** The value fields: slot s, field k is `vals[s * fields + k]`. Touch only under the slot's group lock. */
  readonly vals: Float64Array;
  readonly slots: number;
  readonly fields: number;
  /** The current key, set by hashString/hashBytes; the other methods act on it. Per thread. */
  h1 = 0;
  h2 = 0;
  private readonly header: Int32Array;
  private readonly locks: Int32Array;
  private readonly keys: Int32Array;
  private readonly groupMask: number;
  private readonly sab: SharedArrayBuffer;
  private readonly seed1: number;
  private readonly seed2: number;

  private constructor(h: SharedTableHandle) {
    const groups = h.slots / GROUP;
    this.sab = h.sab;
    this.slots = h.slots;
    this.fields = h.fields;
    this.groupMask = groups - 1;
    this.header = new Int32Array(h.sab, 0, HEADER);
    this.locks = new Int32Array(h.sab, HEADER * 4, groups);
    this.keys = new Int32Array(h.sab, (HEADER + groups) * 4, h.slots * 2);
    this.vals = new Float64Array(h.sab, valsOffset(h.slots), h.slots * h.fields);
    this.seed1 = this.header[H_SEED1]!;
    this.seed2 = this.header[H_SEED2]!;
  }

  /** `slots`: a power of two, at least GROUP. */
  static create(opts: { slots: number; fields: number }): SharedTable {
    const { slots, fields } = opts;
    if (!Number.isInteger(slots) || slots < GROUP || (slots & (slots - 1)) !== 0) {
      throw new RangeError(`table slots must be a power of two >= ${GROUP}, e.g. 65536; got ${slots}`);
    }
    if (!Number.isInteger(fields) || fields < 1) throw new RangeError(`table fields must be a positive integer; got ${fields}`);
    const sab = new SharedArrayBuffer(SharedTable.bytes(slots, fields));
    // Seeded hashes keep an outsider from aiming many keys at one group (not a cryptographic MAC).
    crypto.getRandomValues(new Int32Array(sab, 0, 2));
    return new SharedTable({ sab, slots, fields });
  }

  static attach(h: SharedTableHandle): SharedTable {
    if (!(h?.sab instanceof SharedArrayBuffer) || h.sab.byteLength !== SharedTable.bytes(h.slots, h.fields)) {
      throw new TypeError('SharedTable.attach needs the object returned by table.shared()');
    }
    return new SharedTable(h);
  }

  /** The fixed size of a table, in bytes: the whole memory it will ever use. */
  static bytes(slots: number, fields: number): number {
    return valsOffset(slots) + slots * fields * 8;
  }

  shared(): SharedTableHandle {
    return { sab: this.sab, slots: this.slots, fields: this.fields };
  }

  /** Live entries displaced to make room (idle reuse is not counted). */
  get evictions(): number {
    return Atomics.load(this.header, H_EVICTIONS);
  }
  /** Claims refused because every slot of the group was `NEVER`. */
  get unplaced(): number {
    return Atomics.load(this.header, H_UNPLACED);
  }

  /** Sets the current key to a hash of a string, UTF-16 code unit by code unit. */
  hashString(key: string): void {
    let a = 0x811c9dc5 ^ this.seed1;
    let b = 0x2f8b3d1d ^ this.seed2;
    for (let i = 0; i < key.length; i++) {
      const c = key.charCodeAt(i);
      a = Math.imul(a ^ c, 0x01000193);
      b = Math.imul(b ^ c, 0x5bd1e995);
    }
    this.finish(a, b, key.length);
  }

  /** Sets the current key to a hash of `length` bytes of `bytes` from `offset`. */
  hashBytes(bytes: Uint8Array, offset: number, length: number): void {
    let a = 0x811c9dc5 ^ this.seed1;
    let b = 0x2f8b3d1d ^ this.seed2;
    for (let i = offset; i < offset + length; i++) {
      const c = bytes[i]!;
      a = Math.imul(a ^ c, 0x01000193);
      b = Math.imul(b ^ c, 0x5bd1e995);
    }
    this.finish(a, b, length);
  }

  /** Locks the current key's group and returns it. Hold it for a few reads and writes only. */
  lock(): number {
    const g = this.h1 & this.groupMask;
    const locks = this.locks;
    let c = Atomics.compareExchange(locks, g, 0, 1);
    if (c === 0) return g;
    for (let spin = 0; spin < 64 && c !== 0; spin++) {
      c = Atomics.compareExchange(locks, g, 0, 1);
    }
    if (c === 0) return g;
    // Contended: mark the lock 2 and sleep until the holder's unlock notifies us.
    if (c !== 2) c = Atomics.exchange(locks, g, 2);
    while (c !== 0) {
      Atomics.wait(locks, g, 2);
      c = Atomics.exchange(locks, g, 2);
    }
    return g;
  }

  unlock(g: number): void {
    if (Atomics.sub(this.locks, g, 1) !== 1) {
      Atomics.store(this.locks, g, 0);
      Atomics.notify(this.locks, g, 1);
    }
  }

  /** The slot holding the current key in group g (whose lock is held), or -1. */
  find(g: number): number {
    const keys = this.keys;
    const first = g * GROUP;
    for (let s = first; s < first + GROUP; s++) {
      if (keys[2 * s + 1] === this.h2 && keys[2 * s] === this.h1) return s;
    }
    return -1;
  }

  /**
   * Takes a slot of group g (lock held) for the current key, its fields zeroed: an empty slot,
   * else the occupied slot of lowest rank (IDLE first, then the live entry closest to idle).
   * Returns -1 when every slot ranks NEVER: the caller decides what an unplaced key means.
   */
  claim(g: number, rank: EvictRank, nowMs: number): number {
    const keys = this.keys;
    const first = g * GROUP;
    let best = -1;
    let bestRank = NEVER;
    for (let s = first; s < first + GROUP; s++) {
      if (keys[2 * s + 1] === 0) {
        best = s;
        bestRank = -1;
        break;
      }
      const r = rank(this.vals, s * this.fields, nowMs);
      if (r < bestRank) {
        best = s;
        bestRank = r;
      }
    }
    if (best < 0) {
      Atomics.add(this.header, H_UNPLACED, 1);
      return -1;
    }
    if (bestRank > IDLE) Atomics.add(this.header, H_EVICTIONS, 1);
    keys[2 * best] = this.h1;
    keys[2 * best + 1] = this.h2;
    this.vals.fill(0, best * this.fields, (best + 1) * this.fields);
    return best;
  }

  /** Empties slot s (its group's lock held). */
  free(s: number): void {
    this.keys[2 * s] = 0;
    this.keys[2 * s + 1] = 0;
  }

  /** Whether slot s holds a key. Lock-free: for approximate scans (metrics) only. */
  used(s: number): boolean {
    return this.keys[2 * s + 1] !== 0;
  }

  private finish(a: number, b: number, length: number): void {
    this.h1 = fmix32(a ^ length);
    this.h2 = fmix32(b ^ length) | 1;
  }
}

function valsOffset(slots: number): number {
  const end = (HEADER + slots / GROUP + slots * 2) * 4;
  return Math.ceil(end / 8) * 8;
}

/** MurmurHash3's finaliser: spreads every input bit over the low bits the group index uses. */
function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return (h ^ (h >>> 16)) | 0;
}
