// The flood guard: the first stage, run on every request and upgrade before any per-tenant work.
// Deny/allow CIDRs, then a per-address rate (GCRA, burst = rate) whose excess bans the address for
// ban_s. State lives in memory only (floods never reach Redis), in one SharedArrayBuffer table
// shared by every worker thread of the process: one budget and one ban list per `ward serve`.
//
// Memory bound: the table is fixed at creation. Each slot is 24 bytes (a 64-bit key hash, and two
// float64s: arrival time and ban end) plus 4 bytes of lock per 8 slots, so the default 2^20 slots
// take 25,690,144 bytes (24.5 MiB) whatever the number of addresses seen; a sweep of spoofed or
// rotated addresses recycles slots instead of growing the process.
//
// Eviction, within the key's 8-slot group: an idle slot first (no rate debt, no ban), else the
// live rate entry closest to idle (that address restarts with a fresh budget), never a live ban.
// If all 8 slots of the group hold live bans, the new address is not tracked and passes (counted
// in stats().unplaced) rather than unbanning anyone; the hash is seeded per process, so an outsider
// cannot aim addresses at one group.

import type { FloodSpec } from '../../policy/types.js';
import { IDLE, NEVER, SharedTable, type SharedTableHandle } from '../../store/memory/shared-table.js';
import { CidrSet, isMapped } from './cidr-set.js';


export const FloodVerdict = {
  /** Go on. */
  Pass: 0,
  /** In `allow`: never limited or banned. */
  Allowed: 1,
  /** In `deny`: drop. */
  Denied: 2,
  /** Banned earlier for flooding, still within ban_s: drop. */
  Banned: 3,
  /** Went over per_ip just now and is banned from now on: drop. */
  Flooding: 4,
} as const;
export type FloodVerdict = (typeof FloodVerdict)[keyof typeof FloodVerdict];

/** Whether a verdict drops the connection (when the flood stage enforces). */
export function isDrop(v: FloodVerdict): boolean {
  return v >= FloodVerdict.Denied;
}

export interface FloodGuardStats {
  /** Addresses with live state (rate debt or a ban) now. */
  readonly tracked: number;
  readonly banned: number;
  /** Live rate entries displaced to make room. */
  readonly evictions: number;
  /** Addresses left untracked because their group held only live bans. */
  readonly unplaced: number;
  readonly capacity: number;
  /** The table's fixed size. */
  readonly bytes: number;
}

export type FloodGuardHandle = SharedTableHandle;

const TAT = 0;
const BANNED_UNTIL = 1;
const FIELDS = 2;
const EPS = 1e-6;
export const DEFAULT_ADDRESS_SLOTS = 1 << 20;

function addressRank(vals: Float64Array, base: number, nowMs: number): number {
  if (vals[base + BANNED_UNTIL]! > nowMs) return NEVER;
  const tat = vals[base + TAT]!;
  return tat <= nowMs ? IDLE : tat - nowMs;
}

export class FloodGuard {
  private deny = CidrSet.from([]);
  private allow = CidrSet.from([]);
  /** 0 = no per_ip. */
  private intervalMs = 0;
  private toleranceMs = 0;
  private banMs = 0;
  private enforcing = true;
  /** An IPv6 client is the first `v6Bytes` bytes of its address, the last one masked by `v6LastMask`
   * (0xff for a prefix on a byte boundary). Always more than 4 bytes, so never an IPv4 key. */
  private v6Bytes = 8;
  private v6LastMask = 0xff;
  private readonly v6Key = new Uint8Array(16);
  /** When the ban behind the last Banned or Flooding verdict ends (ms, the caller's clock). */
  banEndsAt = 0;

  private constructor(private readonly table: SharedTable) {}

  /** addressSlots: a power of two (default 2^20: 24.5 MiB, fixed). */
  static create(opts: { addressSlots?: number } = {}): FloodGuard {
    return new FloodGuard(SharedTable.create({ slots: opts.addressSlots ?? DEFAULT_ADDRESS_SLOTS, fields: FIELDS }));
  }

  static attach(h: FloodGuardHandle): FloodGuard {
    return new FloodGuard(SharedTable.attach(h));
  }

  /** Structured-cloneable: pass it in `workerData`. */
  shared(): FloodGuardHandle {
    return this.table.shared();
  }

  /**
   * Applies a policy version's flood section (this thread only; each worker configures its own
   * guard). Per-address state and bans are kept. Throws on an invalid CIDR, naming it.
   */
  configure(flood: FloodSpec): void {
    const deny = CidrSet.from(flood.deny);
    const allow = CidrSet.from(flood.allow);
    const p = flood.per_ip;
    this.deny = deny;
    this.allow = allow;
    this.enforcing = flood.enforce;
    const bits = flood.ipv6_prefix;
    this.v6Bytes = Math.ceil(bits / 8);
    this.v6LastMask = (0xff << (this.v6Bytes * 8 - bits)) & 0xff;
    if (p && p.rate > 0 && p.per_s > 0) {
      this.intervalMs = (p.per_s * 1000) / p.rate;
      this.toleranceMs = (Math.max(1, p.rate) - 1) * this.intervalMs;
      this.banMs = p.ban_s * 1000;
    } else {
      this.intervalMs = 0;
    }
  }

  /** false = shadow mode: the caller counts drop verdicts instead of dropping. */
  get enforce(): boolean {
    return this.enforcing;
  }

  /**
   * The verdict for one request or upgrade from `addr`: uWS `res.getRemoteAddress()` (4 or 16
   * bytes; ::ffff:a.b.c.d counts as a.b.c.d) or a Uint8Array of the same. Builds no strings.
   * The state is updated the same in shadow mode, so shadow verdicts are what enforcing would say.
   */
  check(addr: ArrayBuffer | Uint8Array, nowMs: number): FloodVerdict {
    const b = addr instanceof Uint8Array ? addr : new Uint8Array(addr);
    let off = 0;
    let len = b.length;
    if (len === 16 && isMapped(b, 0)) {
      off = 12;
      len = 4;
    } else if (len !== 4 && len !== 16) {
      return FloodVerdict.Pass;
    }
    if (this.allow.hasBytes(b)) return FloodVerdict.Allowed;
    if (this.deny.hasBytes(b)) return FloodVerdict.Denied;
    if (this.intervalMs === 0) return FloodVerdict.Pass;

    const t = this.table;
    const vals = t.vals;
    // An IPv6 client counts by its prefix (flood.ipv6_prefix, /64 by default): that is what one
    // subscriber is handed, and keyed by the whole address it could take a fresh address per
    // connection and never meet the rate or a ban.
    if (len !== 16) t.hashBytes(b, off, len);
    else if (this.v6LastMask === 0xff) t.hashBytes(b, 0, this.v6Bytes);
    else {
      const k = this.v6Key;
      const last = this.v6Bytes - 1;
      for (let i = 0; i < last; i++) k[i] = b[i]!;
      k[last] = b[last]! & this.v6LastMask;
      t.hashBytes(k, 0, this.v6Bytes);
    }
    const g = t.lock();
    let s = t.find(g);
    let verdict: FloodVerdict = FloodVerdict.Pass;
    if (s < 0) {
      s = t.claim(g, addressRank, nowMs);
      if (s >= 0) vals[s * FIELDS + TAT] = nowMs + this.intervalMs;
    } else {
      const base = s * FIELDS;
      const tat = Math.max(vals[base + TAT]!, nowMs);
      if (vals[base + BANNED_UNTIL]! > nowMs) {
        verdict = FloodVerdict.Banned;
        this.banEndsAt = vals[base + BANNED_UNTIL]!;
      } else if (tat - nowMs > this.toleranceMs + EPS) {
        vals[base + BANNED_UNTIL] = this.banEndsAt = nowMs + this.banMs;
        verdict = FloodVerdict.Flooding;
      } else {
        vals[base + TAT] = tat + this.intervalMs;
      }
    }
    t.unlock(g);
    return verdict;
  }

  /** For /metrics: a lock-free scan of the table (a few ms at 2^20 slots); approximate under load. */
  stats(nowMs: number = Date.now()): FloodGuardStats {
    const t = this.table;
    const vals = t.vals;
    let tracked = 0;
    let banned = 0;
    for (let s = 0; s < t.slots; s++) {
      if (!t.used(s)) continue;
      const base = s * FIELDS;
      if (vals[base + BANNED_UNTIL]! > nowMs) {
        banned++;
        tracked++;
      } else if (vals[base + TAT]! > nowMs) {
        tracked++;
      }
    }
    return {
      tracked,
      banned,
      evictions: t.evictions,
      unplaced: t.unplaced,
      capacity: t.slots,
      bytes: SharedTable.bytes(t.slots, t.fields),
    };
  }
}
