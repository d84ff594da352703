// The health state of one upstream's targets, in one SharedArrayBuffer: the main thread (health
// checker, admin console) and every listener thread (balancing, passive detection) read and write
// the same table, so probe results, ejections, drains and global in-flight counts need no
// messages. Counters and flags are Int32 cells updated with Atomics; times are Float64 cells in
// epoch-based monotonic ms (see clockNow), written by one party at a time, where a torn race
// between two writers of nearly the same instant is harmless.

/** Epoch-based monotonic ms: immune to wall-clock jumps within a thread, comparable across threads. */
export function clockNow(): number {
  return performance.timeOrigin + performance.now();
}

const HEADER = 8;
const H_FROZEN = 0;
const H_PROBING = 1;
const H_EVENT_SEQ = 2;

const S32 = 10;
export const I_FLAGS = 0; // bit 0 drain, bit 1 maint
export const I_PROBE = 1; // 0 unknown (treated as up), 1 up, 2 down
export const I_FAILS = 2; // consecutive upstream-attributable failures
export const I_INFLIGHT = 3; // requests and sessions in flight, all threads
export const I_MULT = 4; // ejection multiplier: the next ejection lasts base · 2^mult
export const I_EJ_PASSIVE = 5; // passive ejections, total
export const I_EJ_ACTIVE = 6; // transitions to down by active probes, total
export const I_EJECTED = 7; // 1 from a passive ejection until the target is back
export const I_VOIDED = 8; // failures voided by the stall guard
export const I_LAST_FAIL = 9; // outcome code of the failure that triggered the last ejection

const S64 = 5;
export const T_EJ_AT = 0;
export const T_EJ_UNTIL = 1;
export const T_RETURNED = 2; // end of the last ejection, or when probes brought it back up: slow start runs from here
export const T_PROBE_OK = 3; // last passing probe
export const T_SINCE = 4; // when drain/maint was set

export const FLAG_DRAIN = 1;
export const FLAG_MAINT = 2;

export const EVENT_KINDS = ['ejected', 'returned', 'down', 'up', 'drain', 'undrain', 'maint', 'voided', 'frozen', 'unfrozen'] as const;
export type EventKind = (typeof EVENT_KINDS)[number];
export const FAILURE_KINDS = ['none', '5xx', 'connect', 'reset', 'timeout', 'protocol', 'probe'] as const;
export type FailureKind = (typeof FAILURE_KINDS)[number];

export interface TableEvent {
  readonly seq: number;
  /** Epoch ms. */
  readonly at: number;
  readonly kind: EventKind;
  /** Target URL, or undefined for upstream-wide events (frozen, voided rounds). */
  readonly target?: string;
  /** Ejections: epoch ms when the ejection ends. */
  readonly until?: number;
  /** Ejections: the failure kind that tipped it; down: 'probe'. */
  readonly reason?: FailureKind;
}

const EVENTS = 128;
const EV_FIELDS = 6;

function layout(n: number): { i32: number; f64: number; ev: number; bytes: number } {
  const i32Bytes = (HEADER + n * S32) * 4;
  const f64Off = Math.ceil(i32Bytes / 8) * 8;
  const evOff = f64Off + n * S64 * 8;
  return { i32: i32Bytes, f64: f64Off, ev: evOff, bytes: evOff + EVENTS * EV_FIELDS * 8 };
}

export class TargetTable {
  readonly i32: Int32Array;
  readonly f64: Float64Array;
  private readonly ev: Float64Array;

  private constructor(
    readonly buffer: SharedArrayBuffer,
    readonly targets: readonly string[],
  ) {
    const l = layout(targets.length);
    if (buffer.byteLength !== l.bytes) throw new Error(`TargetTable: buffer of ${buffer.byteLength} bytes does not fit ${targets.length} targets; attach with the same target list it was created for`);
    this.i32 = new Int32Array(buffer, 0, l.i32 / 4);
    this.f64 = new Float64Array(buffer, l.f64, targets.length * S64);
    this.ev = new Float64Array(buffer, l.ev, EVENTS * EV_FIELDS);
  }

  /** A new table; state of targets also in `prev` (same URL) is carried over, except in-flight counts. */
  static create(targets: readonly string[], prev?: TargetTable): TargetTable {
    const t = new TargetTable(new SharedArrayBuffer(layout(targets.length).bytes), targets);
    if (prev !== undefined) {
      targets.forEach((url, i) => {
        const j = prev.targets.indexOf(url);
        if (j < 0) return;
        for (let k = 0; k < S32; k++) if (k !== I_INFLIGHT) t.i32[HEADER + i * S32 + k] = Atomics.load(prev.i32, HEADER + j * S32 + k);
        for (let k = 0; k < S64; k++) t.f64[i * S64 + k] = prev.f64[j * S64 + k]!;
      });
      t.i32[H_FROZEN] = Atomics.load(prev.i32, H_FROZEN);
      for (const e of prev.events()) {
        const ti = e.target === undefined ? -1 : targets.indexOf(e.target);
        if (e.target === undefined || ti >= 0) t.push(e.kind, ti, e.until ?? 0, e.reason, e.at);
      }
    }
    return t;
  }

  /** The same table seen from another thread. */
  static attach(buffer: SharedArrayBuffer, targets: readonly string[]): TargetTable {
    return new TargetTable(buffer, targets);
  }

  get size(): number {
    return this.targets.length;
  }

  /** Index of cell `field` of target `i` in i32. */
  cell(i: number, field: number): number {
    return HEADER + i * S32 + field;
  }
  /** A plain read, on the pick path: 2-3× cheaper than Atomics.load, an Int32 cell never tears, and a
   * value a moment stale is harmless there. Every write and read-modify-write below is atomic. */
  get(i: number, field: number): number {
    return this.i32[HEADER + i * S32 + field]!;
  }
  set(i: number, field: number, v: number): void {
    Atomics.store(this.i32, HEADER + i * S32 + field, v);
  }
  add(i: number, field: number, d: number): number {
    return Atomics.add(this.i32, HEADER + i * S32 + field, d) + d;
  }
  cas(i: number, field: number, expect: number, v: number): boolean {
    return Atomics.compareExchange(this.i32, HEADER + i * S32 + field, expect, v) === expect;
  }
  time(i: number, field: number): number {
    return this.f64[i * S64 + field]!;
  }
  setTime(i: number, field: number, v: number): void {
    this.f64[i * S64 + field] = v;
  }

  /** Set while the health detector suspects ward's own network: no new ejections or downs. */
  get frozen(): boolean {
    return Atomics.load(this.i32, H_FROZEN) === 1;
  }
  set frozen(v: boolean) {
    Atomics.store(this.i32, H_FROZEN, v ? 1 : 0);
  }
  /** Set by the health checker while it probes this upstream: an ejection then ends only after a passing probe. */
  get probing(): boolean {
    return Atomics.load(this.i32, H_PROBING) === 1;
  }
  set probing(v: boolean) {
    Atomics.store(this.i32, H_PROBING, v ? 1 : 0);
  }

  push(kind: EventKind, target: number, until = 0, reason?: FailureKind, at = clockNow()): void {
    const seq = Atomics.add(this.i32, H_EVENT_SEQ, 1) + 1;
    const o = (seq % EVENTS) * EV_FIELDS;
    this.ev[o + 1] = at;
    this.ev[o + 2] = target;
    this.ev[o + 3] = EVENT_KINDS.indexOf(kind);
    this.ev[o + 4] = until;
    this.ev[o + 5] = reason === undefined ? -1 : FAILURE_KINDS.indexOf(reason);
    this.ev[o] = seq; // written last: a reader skips slots whose seq does not match
  }

  /** The latest events, oldest first. */
  events(): TableEvent[] {
    const last = Atomics.load(this.i32, H_EVENT_SEQ);
    const out: TableEvent[] = [];
    for (let seq = Math.max(1, last - EVENTS + 1); seq <= last; seq++) {
      const o = (seq % EVENTS) * EV_FIELDS;
      if (this.ev[o] !== seq) continue;
      const ti = this.ev[o + 2]!;
      const ri = this.ev[o + 5]!;
      const until = this.ev[o + 4]!;
      out.push({
        seq,
        at: this.ev[o + 1]!,
        kind: EVENT_KINDS[this.ev[o + 3]!] ?? 'voided',
        ...(ti >= 0 && this.targets[ti] !== undefined ? { target: this.targets[ti] } : {}),
        ...(until > 0 ? { until } : {}),
        ...(ri >= 0 ? { reason: FAILURE_KINDS[ri] } : {}),
      });
    }
    return out;
  }
}
