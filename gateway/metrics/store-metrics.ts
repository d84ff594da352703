// The Redis store's own counters, summed over an instance's listener threads (each thread has
// its own client) at scrape time: how often the local insurance limits answered (Envoy's
// fail-open counter), how many outages began, how many commands failed, and the admit script's
// round-trip time as a summary (sum and count).

import type { Registry } from 'prom-client';
import type { RedisLimitStoreStats } from '../store/create-store.js';

interface Sample {
  readonly metricName?: string;
  readonly labels: Record<string, string>;
  readonly value: number;
}

type Totals = Pick<RedisLimitStoreStats, 'failOpenTotal' | 'outagesTotal' | 'commandErrorsTotal' | 'scriptCalls' | 'scriptMsSum'>;

const ZERO: Totals = { failOpenTotal: 0, outagesTotal: 0, commandErrorsTotal: 0, scriptCalls: 0, scriptMsSum: 0 };

/** prom-client renders any object with name/help/type/get(); these values are set, not observed. */
function fixedMetric(name: string, help: string, type: 'counter' | 'summary', values: () => Sample[]) {
  return {
    name,
    help,
    type,
    get: async () => ({ name, help, type, values: values(), aggregator: 'sum' }),
    reset: () => undefined,
  };
}

export class StoreMetrics {
  private totals: Totals = ZERO;

  constructor(registry: Registry) {
    const one = (value: number): Sample[] => [{ labels: {}, value }];
    const metrics = [
      fixedMetric('ward_store_fail_open_total', 'Admissions answered by the local insurance limits while the shared store was unreachable', 'counter',
        () => one(this.totals.failOpenTotal)),
      fixedMetric('ward_store_outages_total', 'Switches from the shared store to local insurance limits', 'counter', () => one(this.totals.outagesTotal)),
      fixedMetric('ward_store_command_errors_total', 'Shared store commands that failed or timed out', 'counter', () => one(this.totals.commandErrorsTotal)),
      fixedMetric('ward_store_script_seconds', 'Round-trip time of the admit script (one per limited request)', 'summary', () => [
        { metricName: 'ward_store_script_seconds_sum', labels: {}, value: this.totals.scriptMsSum / 1000 },
        { metricName: 'ward_store_script_seconds_count', labels: {}, value: this.totals.scriptCalls },
      ]),
    ];
    for (const m of metrics) registry.registerMetric(m as unknown as Parameters<Registry['registerMetric']>[0]);
  }

  /** Sums the threads' stats (undefined for a memory store: everything stays 0). */
  set(stats: ReadonlyArray<RedisLimitStoreStats | undefined>): void {
    const t = { ...ZERO };
    for (const s of stats) {
      if (!s) continue;
      t.failOpenTotal += s.failOpenTotal;
      t.outagesTotal += s.outagesTotal;
      t.commandErrorsTotal += s.commandErrorsTotal;
      t.scriptCalls += s.scriptCalls;
      t.scriptMsSum += s.scriptMsSum;
    }
    this.totals = t;
  }
}
