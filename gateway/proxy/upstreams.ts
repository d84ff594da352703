// Upstream targets per policy: one keep-alive TargetPool per target origin, kept across policy
// reloads while the origin stays in the policy (so a reload does not drop warm connections).

import type { Policy, UpstreamSpec } from '../policy/types.js';
import type { Grant, RequestHead } from '../pipeline/types.js';
import { TargetPool } from './http-client.js';

export type TargetOutcome = 'ok' | '4xx' | '5xx' | 'connect' | 'reset' | 'timeout' | 'protocol';

export interface Target {
  readonly url: string;
  readonly pool: TargetPool;
}

export interface Upstreams {
  /** A target of upstream `name` for this request, other than `exclude` when possible. */
  pick(name: string, grant: Grant, head: RequestHead, exclude?: Target): Target | undefined;
  report(target: Target, outcome: TargetOutcome, latencyMs: number): void;
  timeoutMs(name: string): number;
}

interface Group {
  readonly spec: UpstreamSpec;
  readonly targets: Target[];
  next: number;
}

/** Round-robin over each upstream's targets; the health-aware groups replace this in gateway/upstream. */
export class SimpleUpstreams implements Upstreams {
  private groups = new Map<string, Group>();
  private pools = new Map<string, TargetPool>();

  apply(policy: Policy): void {
    const pools = new Map<string, TargetPool>();
    const groups = new Map<string, Group>();
    for (const spec of Object.values(policy.upstreams)) {
      const targets: Target[] = [];
      for (const url of spec.targets) {
        const origin = url.replace(/^ws:/, 'http:');
        let pool = pools.get(origin) ?? this.pools.get(origin);
        if (pool === undefined) pool = new TargetPool(origin);
        pools.set(origin, pool);
        targets.push({ url, pool });
      }
      groups.set(spec.name, { spec, targets, next: 0 });
    }
    for (const [origin, pool] of this.pools) if (!pools.has(origin)) pool.close();
    this.pools = pools;
    this.groups = groups;
  }

  pick(name: string, _grant: Grant, _head: RequestHead, exclude?: Target): Target | undefined {
    const g = this.groups.get(name);
    if (g === undefined || g.targets.length === 0) return undefined;
    let t = g.targets[g.next++ % g.targets.length]!;
    if (t === exclude && g.targets.length > 1) t = g.targets[g.next++ % g.targets.length]!;
    return t;
  }

  report(): void {}

  timeoutMs(name: string): number {
    return this.groups.get(name)?.spec.timeout_ms ?? 30_000;
  }

  close(): void {
    for (const p of this.pools.values()) p.close();
    this.pools.clear();
  }
}
