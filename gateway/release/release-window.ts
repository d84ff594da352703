// Request and error counts of a release's two sides over the last `window_s` seconds, in
// one-second slots: the analysis compares canary and stable on what just happened, not since start.

export interface WindowSums {
  canary: number;
  canaryErrors: number;
  stable: number;
  stableErrors: number;
}

export class ReleaseWindow {
  private readonly slots: Float64Array;
  private readonly seconds: Float64Array;

  constructor(readonly windowS: number) {
    this.slots = new Float64Array(Math.max(1, windowS) * 4);
    this.seconds = new Float64Array(Math.max(1, windowS)).fill(-1);
  }

  add(nowMs: number, c: readonly [number, number, number, number]): void {
    const sec = Math.floor(nowMs / 1000);
    const i = sec % this.seconds.length;
    if (this.seconds[i] !== sec) {
      this.seconds[i] = sec;
      this.slots.fill(0, i * 4, i * 4 + 4);
    }
    for (let k = 0; k < 4; k++) this.slots[i * 4 + k]! += c[k]!;
  }

  sums(nowMs: number): WindowSums {
    const sec = Math.floor(nowMs / 1000);
    const out: WindowSums = { canary: 0, canaryErrors: 0, stable: 0, stableErrors: 0 };
    for (let i = 0; i < this.seconds.length; i++) {
      const s = this.seconds[i]!;
      if (s < 0 || s <= sec - this.seconds.length || s > sec) continue;
      out.canary += this.slots[i * 4]!;
      out.canaryErrors += this.slots[i * 4 + 1]!;
      out.stable += this.slots[i * 4 + 2]!;
      out.stableErrors += this.slots[i * 4 + 3]!;
    }
    return out;
  }

  clear(): void {
    this.slots.fill(0);
    this.seconds.fill(-1);
  }
}
