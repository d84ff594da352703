// Counters on the request path are plain numbers in cells that callers look up once and keep
// (per tenant limits, per route), so a request pays `cell.n++`, not a label-hash. prom-client
// reads them at scrape time; worker threads send their snapshots to the thread serving /metrics.

export interface Cell {
  n: number;
}

export type CounterSnapshot = Array<[labels: string[], value: number]>;

export class HotCounterVec {
  private readonly cells = new Map<string, { labels: string[]; cell: Cell }>();

  constructor(
    readonly name: string,
    readonly help: string,
    readonly labelNames: readonly string[],
  ) {}

  cell(...labels: string[]): Cell {
    const key = labels.join('\u0000');
    let e = this.cells.get(key);
    if (e === undefined) {
      e = { labels, cell: { n: 0 } };
      this.cells.set(key, e);
    }
    return e.cell;
  }

  inc(...labels: string[]): void {
    this.cell(...labels).n++;
  }

  snapshot(): CounterSnapshot {
    const out: CounterSnapshot = [];
    for (const { labels, cell } of this.cells.values()) out.push([labels, cell.n]);
    return out;
  }
}

/** Sums snapshots of the same counter from several threads. */
export function mergeSnapshots(snaps: readonly CounterSnapshot[]): CounterSnapshot {
  const acc = new Map<string, [string[], number]>();
  for (const snap of snaps) {
    for (const [labels, n] of snap) {
      const key = labels.join('\u0000');
      const e = acc.get(key);
      if (e) e[1] += n;
      else acc.set(key, [labels, n]);
    }
  }
  return [...acc.values()];
}
