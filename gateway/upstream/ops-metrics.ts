// The contract's metrics for upstream health, gray release and the console, read at scrape time
// from the shared target tables (all threads' traffic), the release controller and the admin
// actions, all of which live in the main thread.

import { Counter, Gauge, type Registry } from 'prom-client';
import { TARGET_STATES, type UpstreamGroup } from './upstream-group.js';

export interface OpsMetricSources {
  upstreams(): readonly UpstreamGroup<unknown>[];
  releases?(): { metricValues(): { share: Record<string, number>; decisions: Record<string, Record<string, number>> } } | undefined;
  adminActions?(): { metricValues(): Array<{ action: string; result: string; value: number }> } | undefined;
}

/** Registers ward_upstream_*, ward_release_* and ward_admin_actions_total on `registry`. */
export function registerOpsMetrics(registry: Registry, src: OpsMetricSources): void {
  const registers = [registry];
  new Gauge({
    name: 'ward_upstream_target_state',
    help: 'Target state: 1 for the current one of healthy, ejected, down, slow_start, draining, maint',
    labelNames: ['upstream', 'target', 'state'],
    registers,
    collect() {
      this.reset();
      for (const g of src.upstreams()) {
        for (const t of g.view().targets) for (const s of TARGET_STATES) this.set({ upstream: g.name, target: t.url, state: s }, t.state === s ? 1 : 0);
      }
    },
  });
  new Counter({
    name: 'ward_upstream_ejections_total',
    help: 'Targets taken out of rotation: consecutive_failures (passive) or active_probe (down)',
    labelNames: ['upstream', 'target', 'reason'],
    registers,
    collect() {
      this.reset();
      for (const g of src.upstreams()) {
        for (const t of g.view().targets) {
          this.inc({ upstream: g.name, target: t.url, reason: 'consecutive_failures' }, t.ejections);
          this.inc({ upstream: g.name, target: t.url, reason: 'active_probe' }, t.downs);
        }
      }
    },
  });
  new Gauge({
    name: 'ward_upstream_panic',
    help: '1 while the upstream is below its panic threshold and ignores health',
    labelNames: ['upstream'],
    registers,
    collect() {
      this.reset();
      for (const g of src.upstreams()) if (g.spec.health !== undefined) this.set({ upstream: g.name }, g.panic() ? 1 : 0);
    },
  });
  new Gauge({
    name: 'ward_release_share',
    help: "Share of tenants the release's current step puts on the canary by hash (0..1)",
    labelNames: ['release'],
    registers,
    collect() {
      this.reset();
      const m = src.releases?.()?.metricValues();
      for (const [release, v] of Object.entries(m?.share ?? {})) this.set({ release }, v);
    },
  });
  new Counter({
    name: 'ward_release_decisions_total',
    help: 'Release decisions: start, advance, hold, continue, complete, rollback, pause, resume, promote, abort',
    labelNames: ['release', 'decision'],
    registers,
    collect() {
      this.reset();
      const m = src.releases?.()?.metricValues();
      for (const [release, ds] of Object.entries(m?.decisions ?? {})) for (const [decision, v] of Object.entries(ds)) this.inc({ release, decision }, v);
    },
  });
  new Counter({
    name: 'ward_admin_actions_total',
    help: 'Admin console actions by action and result',
    labelNames: ['action', 'result'],
    registers,
    collect() {
      this.reset();
      for (const v of src.adminActions?.()?.metricValues() ?? []) this.inc({ action: v.action, result: v.result }, v.value);
    },
  });
}
