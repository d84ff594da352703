// The false-detection guard's sensor: a timer that should fire every `intervalMs`; when it fires
// late, this thread's event loop was stalled (GC, a busy loop, SIGSTOP, a starved VM) for the
// lateness, and any timeout that fired during or right after it may be ward's fault, not the
// target's. A wall-clock jump (Date.now() moving unlike the monotonic clock) is recorded the
// same way. Each thread has its own loop, so each thread has its own watch.

import { clockNow } from './target-table.js';

export interface Stall {
  /** clockNow() ms: the last moment the loop was known to run, and when it ran again. */
  readonly start: number;
  readonly end: number;
  readonly ms: number;
  readonly kind: 'stall' | 'clock_jump';
}

const KEEP = 64;

export class LoopWatch {
  private timer: NodeJS.Timeout | undefined;
  private lastTick = clockNow();
  private lastWall = Date.now();
  private readonly stalls: Stall[] = [];

  constructor(
    readonly intervalMs = 50,
    /** Lateness below this is ordinary jitter, not a stall. */
    readonly minStallMs = 100,
  ) {}

  start(): this {
    if (this.timer !== undefined) return this;
    this.lastTick = clockNow();
    this.lastWall = Date.now();
    this.timer = setInterval(() => this.tick(), this.intervalMs);
    this.timer.unref();
    return this;
  }

  stop(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
  }

  get running(): boolean {
    return this.timer !== undefined;
  }

  private tick(): void {
    const now = clockNow();
    const wall = Date.now();
    const late = now - this.lastTick - this.intervalMs;
    if (late >= this.minStallMs) this.record({ start: this.lastTick, end: now, ms: late, kind: 'stall' });
    const jump = Math.abs(wall - this.lastWall - (now - this.lastTick));
    if (jump >= this.minStallMs) this.record({ start: this.lastTick, end: now, ms: jump, kind: 'clock_jump' });
    this.lastTick = now;
    this.lastWall = wall;
  }

  private record(s: Stall): void {
    this.stalls.push(s);
    if (this.stalls.length > KEEP) this.stalls.shift();
  }

  /**
   * The longest stall (ms) overlapping [from, to] (clockNow() ms, `to` defaults to now), including
   * one this thread is only now catching up on: timeouts that expired during a stall run before
   * the watch's own late timer, so lateness is also measured right here.
   */
  stallWithin(from: number, to = clockNow()): number {
    let worst = 0;
    for (let i = this.stalls.length - 1; i >= 0; i--) {
      const s = this.stalls[i]!;
      if (s.end < from) break;
      if (s.start <= to && s.ms > worst) worst = s.ms;
    }
    if (this.timer !== undefined) {
      const overdue = clockNow() - this.lastTick - this.intervalMs;
      if (overdue >= this.minStallMs && this.lastTick <= to && overdue > worst) worst = overdue;
    }
    return worst;
  }

  /** Recorded stalls, oldest first (for the console and tests). */
  recent(): readonly Stall[] {
    return this.stalls;
  }
}

let shared: LoopWatch | undefined;

/** This thread's watch, started on first use (its timer never keeps the process alive). */
export function sharedLoopWatch(): LoopWatch {
  shared ??= new LoopWatch().start();
  return shared;
}
