// One listener thread of a ward instance: its uWS app, pipeline per policy version, limit store
// and flood guard views (shared with the other threads), upstream pools and counters. It runs in
// the main thread (--workers 1) or in a worker thread; the supervisor talks to it the same way.

import type { Policy } from '../policy/types.js';
import { Pipeline } from '../pipeline/pipeline.js';
import { EdgeMetrics } from '../metrics/edge-metrics.js';
import type { CounterSnapshot } from '../metrics/hot-counters.js';
import { FloodGuard, type FloodGuardHandle } from '../stages/admit/flood-guard.js';
import { openStore, type StoreHandle } from '../store/create-store.js';
import type { LimitStore, StoreStatus } from '../store/types.js';
import { SimpleUpstreams } from '../proxy/upstreams.js';
import { HttpListener } from '../server/http-listener.js';
import type { Logger } from '../log.js';

export interface EdgeThreadInit {
  readonly policy: Policy;
  readonly store: StoreHandle;
  readonly flood: FloodGuardHandle;
  /** Port to bind (the supervisor resolves port 0 once so every thread shares one port). */
  readonly port: number;
}

export interface ThreadSnapshot {
  readonly counters: Record<string, CounterSnapshot>;
  /** [tenant, pool name, pool key] of every pool a tenant of the current policy has touched. */
  readonly pools: Array<[string, string, string]>;
  readonly inFlight: number;
  readonly store: StoreStatus;
}

export class EdgeThread {
  readonly metrics = new EdgeMetrics();
  private pipeline: Pipeline;
  private readonly upstreams = new SimpleUpstreams();
  private readonly listener: HttpListener;
  /** Pools touched under earlier policy versions, by pool key: a lease taken before a reload
   * stays visible in ward_concurrency_in_use while its request is still in flight. */
  private readonly earlierPools = new Map<string, [string, string, string]>();
  port = 0;

  private constructor(
    policy: Policy,
    readonly store: LimitStore,
    private readonly flood: FloodGuard,
    private readonly log: Logger,
  ) {
    flood.configure(policy.flood);
    this.upstreams.apply(policy);
    this.pipeline = this.compile(policy);
    this.listener = new HttpListener({ current: () => this.pipeline, upstreams: this.upstreams, log });
  }

  static async start(init: EdgeThreadInit, log: Logger): Promise<EdgeThread> {
    const store = openStore(init.store, (s, cause) => log.warn({ store: s, err: cause?.message }, 'store state changed'));
    const t = new EdgeThread(init.policy, store, FloodGuard.attach(init.flood), log);
    t.port = await t.listener.listen(init.policy.listen.host, init.port);
    return t;
  }

  /** Swaps in a new policy version; requests in flight keep the pipeline they started with. */
  apply(policy: Policy): void {
    for (const p of this.pipeline.touchedPools()) this.earlierPools.set(p[2], p);
    this.flood.configure(policy.flood);
    this.upstreams.apply(policy);
    this.pipeline = this.compile(policy);
  }

  snapshot(): ThreadSnapshot {
    return {
      counters: this.metrics.snapshot(),
      pools: [...this.earlierPools.values(), ...this.pipeline.touchedPools()],
      inFlight: this.listener.requestsInFlight,
      store: this.store.status(),
    };
  }

  async drain(timeoutMs: number): Promise<void> {
    await this.listener.drain(timeoutMs);
    this.upstreams.close();
    await this.store.close();
  }

  private compile(policy: Policy): Pipeline {
    return new Pipeline(policy, { store: this.store, flood: this.flood, metrics: this.metrics });
  }
}
