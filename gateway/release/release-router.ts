// The per-request half of gray release, in every listener thread: which upstream serves this
// tenant on this route, and how did each side do. Assignment is sticky and monotone: a tenant is
// on the canary when it is in a group listed by the current step or an earlier one, or when
// hash(release, tenant) mod 10000 falls under the highest percentage reached so far; so raising
// the percentage keeps every tenant already moved, and every instance decides alike.

import type { Policy, ReleaseSpec } from '../policy/types.js';
import { hash32 } from '../upstream/hash-ring.js';
import type { ReleaseState } from './release-state.js';

/** Where a tenant falls for a release: 0..9999. */
export function releaseBucket(release: string, tenant: string): number {
  return hash32(`${release}\u0000${tenant}`) % 10000;
}

/** Outcomes as the proxy reports them; the upstream-attributable failures count as errors. */
export type ReleaseOutcome = 'ok' | '4xx' | '5xx' | 'connect' | 'reset' | 'timeout' | 'protocol';

/** Per release: [canary requests, canary errors, stable requests, stable errors] since the last take. */
export type ReleaseCounts = Record<string, [number, number, number, number]>;

interface Compiled {
  readonly spec: ReleaseSpec;
  /** 0: nobody on the canary, 1: listed tenants and buckets under threshold, 2: everyone. */
  readonly mode: 0 | 1 | 2;
  readonly tenants: ReadonlySet<string>;
  readonly threshold: number;
}

/** Which tenants a release puts on its canary in `state`. */
export function compileRelease(spec: ReleaseSpec, state: ReleaseState | undefined): Compiled {
  const status = state?.status ?? 'running';
  if (status === 'rolled_back' || status === 'aborted') return { spec, mode: 0, tenants: new Set(), threshold: 0 };
  if (status === 'promoted') return { spec, mode: 2, tenants: new Set(), threshold: 10000 };
  const last = Math.min(state?.step ?? 0, spec.steps.length - 1);
  const tenants = new Set<string>();
  let percent = 0;
  for (let i = 0; i <= last; i++) {
    const step = spec.steps[i]!;
    for (const g of step.groups ?? []) for (const t of spec.tenant_groups[g] ?? []) tenants.add(t);
    percent = Math.max(percent, step.percent ?? 0);
  }
  const threshold = Math.round(percent * 100);
  return { spec, mode: threshold >= 10000 ? 2 : 1, tenants, threshold };
}

export function onCanary(c: Compiled, tenant: string): boolean {
  if (c.mode !== 1) return c.mode === 2;
  return c.tenants.has(tenant) || releaseBucket(c.spec.name, tenant) < c.threshold;
}

export class ReleaseRouter {
  private byRoute = new Map<string, Compiled>();
  private routeUpstream = new Map<string, string>();
  private states: Record<string, ReleaseState> = {};
  private policy: Pick<Policy, 'routes' | 'releases'> = { routes: [], releases: {} };
  private counts: ReleaseCounts = {};

  constructor(policy?: Pick<Policy, 'routes' | 'releases'>, states?: Readonly<Record<string, ReleaseState>>) {
    if (states !== undefined) this.states = { ...states };
    if (policy !== undefined) this.apply(policy);
  }

  apply(policy: Pick<Policy, 'routes' | 'releases'>): void {
    this.policy = policy;
    this.compile();
  }

  /** The controller's latest states (posted to listener threads on every change). */
  setStates(states: Readonly<Record<string, ReleaseState>>): void {
    this.states = { ...states };
    this.compile();
  }

  private compile(): void {
    const byRoute = new Map<string, Compiled>();
    for (const spec of Object.values(this.policy.releases)) {
      const c = compileRelease(spec, this.states[spec.name]);
      for (const r of spec.routes) if (!byRoute.has(r)) byRoute.set(r, c);
    }
    this.byRoute = byRoute;
    this.routeUpstream = new Map(this.policy.routes.map((r) => [r.name, r.upstream]));
  }

  /** The upstream for this tenant's request on `route`: the canary when the tenant is on it, else the route's own. */
  resolve(route: string, tenant: string): string {
    const c = this.byRoute.get(route);
    if (c !== undefined && onCanary(c, tenant)) return c.spec.canary;
    return this.routeUpstream.get(route) ?? c?.spec.stable ?? '';
  }

  /** Counts one proxied request of `route` that went to `upstream`, for the release's analysis. */
  record(route: string, upstream: string, outcome: ReleaseOutcome): void {
    const c = this.byRoute.get(route);
    if (c === undefined) return;
    let n = this.counts[c.spec.name];
    if (n === undefined) n = this.counts[c.spec.name] = [0, 0, 0, 0];
    const side = upstream === c.spec.canary ? 0 : 2;
    n[side]++;
    if (outcome !== 'ok' && outcome !== '4xx') n[side + 1]++;
  }

  /** The counts since the last call (a listener thread posts them to the controller every second). */
  takeCounts(): ReleaseCounts {
    const out = this.counts;
    this.counts = {};
    return out;
  }
}
