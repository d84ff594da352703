// A set of CIDR blocks compiled into two binary tries (IPv4, IPv6) over the address bits: a lookup
// walks at most 32 or 128 nodes whatever the list's length, and allocates nothing.
//
// IPv4-mapped IPv6 (::ffff:a.b.c.d, how a dual-stack socket reports an IPv4 client) is IPv4 here,
// in addresses and in CIDRs (::ffff:10.0.0.0/104 is 10.0.0.0/8). So 0.0.0.0/0 is every IPv4
// client and ::/0 every IPv6 one.

import { isIPv4, isIPv6 } from 'node:net';

export interface ParsedCidr {
  readonly family: 4 | 6;
  /** The network's bytes (4 or 16), host bits cleared. */
  readonly bytes: Uint8Array;
  readonly prefix: number;
}

/** Parses "a.b.c.d/n", "x:y::z/n", or a bare address (a /32 or /128). Throws with the fix. */
export function parseCidr(text: string): ParsedCidr {
  const slash = text.indexOf('/');
  const addr = slash < 0 ? text : text.slice(0, slash);
  let bytes = parseAddress(addr);
  if (!bytes) throw new Error(`"${text}" is not a CIDR: write e.g. "203.0.113.0/24" or "2001:db8::/32"`);
  let max = bytes.length * 8;
  let prefix = max;
  if (slash >= 0) {
    const p = text.slice(slash + 1);
    prefix = /^\d{1,3}$/.test(p) ? Number(p) : NaN;
    if (!(prefix <= max)) throw new Error(`"${text}": prefix length must be 0..${max}, e.g. "${addr}/${max === 32 ? 24 : 64}"`);
  }
  if (bytes.length === 16 && prefix >= 96 && isMapped(bytes, 0)) {
    bytes = bytes.slice(12);
    prefix -= 96;
    max = 32;
  }
  maskHostBits(bytes, prefix);
  return { family: bytes.length === 4 ? 4 : 6, bytes, prefix };
}

/** Clears every bit of `bytes` after the first `prefix` (in place). */
export function maskHostBits(bytes: Uint8Array, prefix: number): void {
  for (let bit = prefix; bit < bytes.length * 8; bit++) bytes[bit >> 3] &= ~(0x80 >> (bit & 7));
}

/** The bytes of an IPv4 (4) or IPv6 (16) address in text, or undefined. */
export function parseAddress(text: string): Uint8Array | undefined {
  if (isIPv4(text)) return Uint8Array.from(text.split('.'), Number);
  if (!isIPv6(text) || text.includes('%')) return undefined;
  const out = new Uint8Array(16);
  let v4: string | undefined;
  const parts = text.split('::');
  const toGroups = (s: string): number[] => {
    if (s === '') return [];
    const g = s.split(':');
    if (g[g.length - 1]!.includes('.')) v4 = g.pop();
    return g.map((h) => parseInt(h, 16));
  };
  const head = toGroups(parts[0]!);
  const tail = parts.length > 1 ? toGroups(parts[1]!) : [];
  const words = 8 - (v4 ? 2 : 0);
  const groups = [...head, ...new Array<number>(words - head.length - tail.length).fill(0), ...tail];
  groups.forEach((g, i) => {
    out[2 * i] = g >> 8;
    out[2 * i + 1] = g & 0xff;
  });
  if (v4) out.set(v4.split('.').map(Number), 12);
  return out;
}

/** Whether `b[off..off+16)` is ::ffff:a.b.c.d. */
export function isMapped(b: Uint8Array, off: number): boolean {
  for (let i = off; i < off + 10; i++) if (b[i] !== 0) return false;
  return b[off + 10] === 0xff && b[off + 11] === 0xff;
}

export class CidrSet {
  readonly size: number;
  private constructor(
    private readonly v4: Trie,
    private readonly v6: Trie,
    size: number,
  ) {
    this.size = size;
  }

  /** Throws on the first invalid entry, naming it. */
  static from(cidrs: readonly string[]): CidrSet {
    const v4 = new TrieBuilder();
    const v6 = new TrieBuilder();
    for (const c of cidrs) {
      const p = parseCidr(c);
      (p.family === 4 ? v4 : v6).add(p.bytes, p.prefix);
    }
    return new CidrSet(v4.build(), v6.build(), cidrs.length);
  }

  /**
   * Whether the address is in the set: an ArrayBuffer or Uint8Array of 4 or 16 bytes (uWS's
   * `getRemoteAddress()`), or text (tests, logs). Anything else is not in the set.
   */
  has(addr: ArrayBuffer | Uint8Array | string): boolean {
    if (typeof addr === 'string') {
      const b = parseAddress(addr);
      return b !== undefined && this.hasBytes(b);
    }
    return this.hasBytes(addr instanceof Uint8Array ? addr : new Uint8Array(addr));
  }

  /** The allocation-free form: 4 bytes, or 16 (mapped IPv4 looked up as IPv4). */
  hasBytes(b: Uint8Array): boolean {
    if (b.length === 4) return this.v4.has(b, 0, 32);
    if (b.length !== 16) return false;
    if (isMapped(b, 0)) return this.v4.has(b, 12, 32);
    return this.v6.has(b, 0, 128);
  }
}

// Nodes live in one Int32Array: node n's children at [3n] (bit 0) and [3n+1] (bit 1), 0 = none
// (the root is node 0, never anyone's child); [3n+2] = 1 when a listed prefix ends at n.
class Trie {
  constructor(private readonly nodes: Int32Array) {}

  has(b: Uint8Array, off: number, bits: number): boolean {
    const nodes = this.nodes;
    let n = 0;
    for (let i = 0; ; i++) {
      if (nodes[3 * n + 2] === 1) return true;
      if (i === bits) return false;
      const bit = (b[off + (i >> 3)]! >> (7 - (i & 7))) & 1;
      n = nodes[3 * n + bit]!;
      if (n === 0) return false;
    }
  }
}

class TrieBuilder {
  private readonly nodes: number[] = [0, 0, 0];

  add(bytes: Uint8Array, prefix: number): void {
    let n = 0;
    for (let i = 0; i < prefix; i++) {
      const bit = (bytes[i >> 3]! >> (7 - (i & 7))) & 1;
      let next = this.nodes[3 * n + bit]!;
      if (next === 0) {
        next = this.nodes.length / 3;
        this.nodes.push(0, 0, 0);
        this.nodes[3 * n + bit] = next;
      }
      n = next;
    }
    this.nodes[3 * n + 2] = 1;
  }

  build(): Trie {
    return new Trie(Int32Array.from(this.nodes));
  }
}
