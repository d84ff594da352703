// Refusal pacing (policy: flood.refusal_pace). A tenant refused with 429 faster than the pace gets
// the rest of its refusals later, released at the pace, instead of at once.
//
// Why: on one event loop, every refusal costs ward a read, a parse, a decision and a write (~10 to
// 30 µs), and a well-behaved tenant's request that arrives behind a burst of another tenant's
// refusals waits for all of them. A client waits for an answer before it sends its next request on
// a connection (uWS reads no further request on a connection until the one before is answered), so
// a paced tenant is slowed to the pace: ward's work for it is bounded by the pace, not by how fast it
// can send. Measured in the isolation scenario (README, Performance): the good tenants' p99 under a
// tenant at 20× its quota fell from 9–12 ms to ~3 ms on a machine where it is ~2.5 ms without one.
//
// Bounds: at most `max_waiting` refusals of a tenant wait (and MAX_WAITING_PER_THREAD in all); past
// them a refusal is answered at once, as without pacing, so memory stays bounded and a tenant with
// more connections than that costs what it did before. Waiting refusals hold no lease and no
// counter; a client that goes away while its refusal waits is skipped.

import { afterBatchLast, type Batched } from '../../event-batch.js';

export interface RefusalPaceSpec {
  /** Refusals answered at once per `per_s` seconds once the burst is spent. */
  readonly rate: number;
  readonly per_s: number;
  /** Refusals answered at once before pacing starts. */
  readonly burst: number;
  /** Most refusals of one tenant waiting at a time (per thread). */
  readonly max_waiting: number;
}

/** A refusal that can wait: written by runBatched() when released, skipped if the client left. */
export interface PacedRefusal extends Batched {
  readonly aborted: boolean;
}

/** Counters of refusals that waited, and of refusals answered at once because too many waited. */
export type PaceCounts = Readonly<Record<'waited' | 'overflow', { n: number }>>;

/** Refusals waiting in all paces of this thread, at most. */
const MAX_WAITING_PER_THREAD = 16384;
let waitingInThread = 0;
/** Paces with refusals waiting; the release timer runs while there are any. */
const active = new Set<RefusalPace>();
let timer: NodeJS.Timeout | undefined;

/** One tenant's pace under one policy version, in one thread. */
export class RefusalPace {
  private tokens: number;
  private at = performance.now();
  private readonly perMs: number;
  private readonly waiting: PacedRefusal[] = [];
  private next = 0;

  constructor(
    private readonly spec: RefusalPaceSpec,
    private readonly counts?: PaceCounts,
  ) {
    this.tokens = spec.burst;
    this.perMs = spec.rate / (spec.per_s * 1000);
  }

  /** Refusals of this tenant waiting now. */
  get waitingCount(): number {
    return this.waiting.length - this.next;
  }

  /**
   * false: answer this refusal as usual (within the pace, or too many already wait). true: the
   * pace keeps it and runs it when the pace allows (runBatched at the end of that event-loop turn).
   */
  hold(item: PacedRefusal): boolean {
    if (this.waitingCount === 0 && this.take(performance.now())) return false;
    if (this.waitingCount >= this.spec.max_waiting || waitingInThread >= MAX_WAITING_PER_THREAD) {
      if (this.counts) this.counts.overflow.n++;
      return false;
    }
    this.waiting.push(item);
    waitingInThread++;
    if (this.counts) this.counts.waited.n++;
    active.add(this);
    timer ??= setInterval(releaseDue, 1);
    return true;
  }

  /** Releases what the pace allows now (everything with `all`); true while refusals still wait. */
  release(now: number, all = false): boolean {
    const w = this.waiting;
    while (this.next < w.length) {
      const item = w[this.next]!;
      if (!item.aborted) {
        if (!all && !this.take(now)) break;
        afterBatchLast(item);
      }
      w[this.next++] = undefined as unknown as PacedRefusal; // let it go
      waitingInThread--;
    }
    if (this.next === w.length) {
      w.length = 0;
      this.next = 0;
      return false;
    }
    if (this.next >= 1024 && this.next * 2 >= w.length) {
      w.splice(0, this.next);
      this.next = 0;
    }
    return true;
  }

  private take(now: number): boolean {
    this.tokens = Math.min(this.spec.burst, this.tokens + (now - this.at) * this.perMs);
    this.at = now;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}

function releaseDue(): void {
  const now = performance.now();
  for (const p of active) if (!p.release(now)) active.delete(p);
  if (active.size === 0) stopTimer();
}

function stopTimer(): void {
  clearInterval(timer);
  timer = undefined;
}

/** Every waiting refusal of this thread goes out at the end of this turn (draining). */
export function releaseAllPaced(): void {
  const now = performance.now();
  for (const p of active) p.release(now, true);
  active.clear();
  stopTimer();
}

/** Refusals waiting in this thread (tests, metrics). */
export function pacedWaiting(): number {
  return waitingInThread;
}
