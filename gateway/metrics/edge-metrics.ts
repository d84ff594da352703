// The counters every listener thread keeps. Names and labels are the contract's (/metrics).

import { HotCounterVec, type CounterSnapshot } from './hot-counters.js';

export type Outcome =
  | 'ok'
  | 'unauthorized'
  | 'rate_limited'
  | 'concurrency_limited'
  | 'body_too_large'
  | 'headers_too_large'
  | 'upstream_unavailable'
  | 'upstream_timeout'
  | 'no_route'
  | 'bad_path'
  | 'bad_request'
  | 'upgrade_required'
  | 'client_aborted'
  | 'error';

export class EdgeMetrics {
  readonly requests = new HotCounterVec('ward_requests_total', 'Requests by tenant, route and outcome', ['tenant', 'route', 'outcome']);
  readonly dropped = new HotCounterVec('ward_dropped_total', 'Connections dropped at the edge without an answer', ['reason']);
  readonly shadow = new HotCounterVec('ward_shadow_refusals_total', 'What enforce:false rules would have refused', ['rule', 'reason']);
  readonly authFailures = new HotCounterVec('ward_auth_failures_total', 'Rejected bearer tokens by reason', ['reason']);
  readonly paced = new HotCounterVec('ward_refusals_paced_total', 'Refusals held back by flood.refusal_pace (waited), or answered at once because too many waited (overflow)', ['result']);

  /** Tenant label values kept; past the cap new tenants count as "_other" (a million tenants
   * must not become a million series). WARD_METRICS_MAX_TENANTS, default 10000. */
  private readonly tenantLabels = new Set<string>();
  private readonly maxTenantLabels = Number(process.env.WARD_METRICS_MAX_TENANTS ?? 10_000);

  tenantLabel(tenant: string): string {
    if (this.tenantLabels.has(tenant)) return tenant;
    if (this.tenantLabels.size >= this.maxTenantLabels) return '_other';
    this.tenantLabels.add(tenant);
    return tenant;
  }

  all(): HotCounterVec[] {
    return [this.requests, this.dropped, this.shadow, this.authFailures, this.paced];
  }

  snapshot(): Record<string, CounterSnapshot> {
    const out: Record<string, CounterSnapshot> = {};
    for (const c of this.all()) out[c.name] = c.snapshot();
    return out;
  }
}
