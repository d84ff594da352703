// /metrics: prom-client renders what the listener threads counted (merged across threads) and
// the gauges the supervisor reads at scrape time.

import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import { EdgeMetrics } from './edge-metrics.js';
import { WsMetricVecs } from '../ws/ws-metrics.js';
import { mergeSnapshots, type CounterSnapshot } from './hot-counters.js';

export interface GaugeSample {
  readonly labels: Record<string, string>;
  readonly value: number;
}

export class MetricsRegistry {
  readonly registry = new Registry();
  private readonly counters = new Map<string, Counter>();
  private readonly gauges = new Map<string, Gauge>();
  /** Supervisor-side counters (policy reloads, admin actions...). */
  readonly local = new Map<string, Counter>();

  constructor() {
    // process_* and nodejs_* under their conventional names, as dashboards expect them.
    collectDefaultMetrics({ register: this.registry });
    const ws = new WsMetricVecs();
    for (const c of [...new EdgeMetrics().all(), ...ws.counters()]) {
      this.counters.set(c.name, new Counter({ name: c.name, help: c.help, labelNames: [...c.labelNames], registers: [this.registry] }));
    }
    for (const g of ws.gauges()) this.threadGauges.add(g.name), this.gauge(g.name, g.help, [...g.labelNames]);
  }

  /** Gauges the threads count (sessions open, calls in progress): summed like counters. */
  private readonly threadGauges = new Set<string>();

  counter(name: string, help: string, labelNames: string[]): Counter {
    let c = this.local.get(name);
    if (c === undefined) {
      c = new Counter({ name, help, labelNames, registers: [this.registry] });
      this.local.set(name, c);
    }
    return c;
  }

  gauge(name: string, help: string, labelNames: string[]): Gauge {
    let g = this.gauges.get(name);
    if (g === undefined) {
      g = new Gauge({ name, help, labelNames, registers: [this.registry] });
      this.gauges.set(name, g);
    }
    return g;
  }

  /** Replaces every thread-counted counter and gauge with the sum of the threads' snapshots. */
  setThreadCounters(snaps: ReadonlyArray<Record<string, CounterSnapshot>>): void {
    for (const name of this.threadGauges) {
      const g = this.gauges.get(name)!;
      g.reset();
      const labelNames = (g as unknown as { labelNames: string[] }).labelNames;
      for (const [labels, n] of mergeSnapshots(snaps.map((s) => s[name] ?? []))) {
        const obj: Record<string, string> = {};
        labelNames.forEach((l, i) => (obj[l] = labels[i]!));
        g.set(obj, n);
      }
    }
    for (const [name, counter] of this.counters) {
      counter.reset();
      const labelNames = (counter as unknown as { labelNames: string[] }).labelNames;
      for (const [labels, n] of mergeSnapshots(snaps.map((s) => s[name] ?? []))) {
        const obj: Record<string, string> = {};
        labelNames.forEach((l, i) => (obj[l] = labels[i]!));
        counter.inc(obj, n);
      }
    }
  }

  /** A counter whose total is kept elsewhere (e.g. the kernel's): set to the read values. */
  setCounter(name: string, help: string, labelNames: string[], samples: readonly GaugeSample[]): void {
    const c = this.counter(name, help, labelNames);
    c.reset();
    for (const s of samples) c.inc(s.labels, s.value);
  }

  setGauge(name: string, help: string, labelNames: string[], samples: readonly GaugeSample[]): void {
    const g = this.gauge(name, help, labelNames);
    g.reset();
    for (const s of samples) g.set(s.labels, s.value);
  }

  text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
