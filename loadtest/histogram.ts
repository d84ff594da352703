// A small HDR-like latency histogram: log-linear buckets (64 sub-buckets per power of two), so any
// recorded value is kept within 1/64 (~1.6 %) of its true value from 1 µs up to ~70 min, in a fixed
// 2.7k-slot array with no allocation per record.

const SUB_BITS = 6;
const SUB = 1 << SUB_BITS;
const MAGNITUDES = 32;

export class Histogram {
  readonly counts = new Float64Array(MAGNITUDES * SUB);
  count = 0;
  sum = 0;
  min = Infinity;
  max = 0;

  /** Records one value in microseconds (fractions are rounded down; negatives count as 0). */
  record(us: number): void {
    const v = us > 0 ? Math.min(Math.floor(us), 0xffffffff) : 0;
    this.counts[slotOf(v)]++;
    this.count++;
    this.sum += v;
    if (v < this.min) this.min = v;
    if (v > this.max) this.max = v;
  }

  merge(other: Histogram): void {
    for (let i = 0; i < this.counts.length; i++) this.counts[i] += other.counts[i];
    this.count += other.count;
    this.sum += other.sum;
    if (other.min < this.min) this.min = other.min;
    if (other.max > this.max) this.max = other.max;
  }

  /** Value at percentile p (0..100), in µs: the upper edge of the slot holding that rank. */
  percentile(p: number): number {
    if (this.count === 0) return 0;
    const rank = Math.max(1, Math.ceil((p / 100) * this.count));
    let seen = 0;
    for (let i = 0; i < this.counts.length; i++) {
      seen += this.counts[i];
      if (seen >= rank) return Math.min(upperOf(i), this.max);
    }
    return this.max;
  }

  mean(): number {
    return this.count ? this.sum / this.count : 0;
  }

  summary(): LatencySummary {
    return {
      count: this.count,
      mean_us: Math.round(this.mean()),
      p50_us: this.percentile(50),
      p99_us: this.percentile(99),
      p999_us: this.percentile(99.9),
      max_us: this.count ? this.max : 0,
    };
  }
}

export interface LatencySummary {
  readonly count: number;
  readonly mean_us: number;
  readonly p50_us: number;
  readonly p99_us: number;
  readonly p999_us: number;
  readonly max_us: number;
}

function slotOf(v: number): number {
  if (v < SUB) return v;
  const mag = 31 - Math.clz32(v) - SUB_BITS + 1; // values in [SUB·2^(mag-1), SUB·2^mag)
  const slot = mag * SUB + ((v >>> (mag - 1)) - SUB);
  return Math.min(slot, MAGNITUDES * SUB - 1);
}

function upperOf(slot: number): number {
  if (slot < SUB) return slot;
  const mag = Math.floor(slot / SUB);
  const sub = slot % SUB;
  return (SUB + sub + 1) * 2 ** (mag - 1) - 1;
}
