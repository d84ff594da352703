// One listener thread of a ward instance: its uWS app, pipeline per policy version, limit store
// and flood guard views (shared with the other threads), upstream pools and counters. It runs in
// the main thread (--workers 1) or in a worker thread; the supervisor talks to it the same way.

import type { Policy, RouteSpec } from '../policy/types.js';
import { Pipeline } from '../pipeline/pipeline.js';
import { EdgeMetrics } from '../metrics/edge-metrics.js';
import type { CounterSnapshot } from '../metrics/hot-counters.js';
import { FloodGuard, type FloodGuardHandle } from '../stages/admit/flood-guard.js';
import { openStore, storeReady, storeStats, type RedisLimitStoreStats, type StoreHandle } from '../store/create-store.js';
import type { LimitStore, StoreStatus } from '../store/types.js';
import { PolicyUpstreams } from '../proxy/upstreams.js';
import { ReleaseRouter, type ReleaseCounts } from '../release/release-router.js';
import type { ReleaseState } from '../release/release-state.js';
import { HttpListener } from '../server/http-listener.js';
import type { Logger } from '../log.js';
import type { MessagePort } from 'node:worker_threads';
import { E2E_PREFIX, e2eRelayBehavior, serveE2EHttp, type E2EHandler } from '../e2e/e2e-edge.js';
import { e2eClient } from '../e2e/e2e-rpc.js';
import { relayBusFor } from '../e2e/e2e-service.js';
import type { E2ERelay } from '../../crypto/directory/index.js';
import { createWsProxy, type WsProxy } from '../ws/ws-proxy.js';
import { edgeWsDeps } from '../ws/edge-deps.js';
import { WsMetricVecs } from '../ws/ws-metrics.js';

export interface EdgeThreadInit {
  readonly policy: Policy;
  readonly store: StoreHandle;
  readonly flood: FloodGuardHandle;
  /** Port to bind (the supervisor resolves port 0 once so every thread shares one port). */
  readonly port: number;
  /** Worker threads: where /v1/e2e directory requests go (the supervisor's directory). */
  readonly e2ePort?: MessagePort;
  /** The main thread's upstream target tables for this policy (UpstreamRegistry.buffers()). */
  readonly upstreamBuffers?: Readonly<Record<string, SharedArrayBuffer>>;
  /** Gray release states as the main thread's ReleaseController last published them. */
  readonly releaseStates?: Readonly<Record<string, ReleaseState>>;
  /** Worker threads: send each ban to the supervisor (`--kernel-bans`). */
  readonly kernelBans?: boolean;
}

export interface EdgeThreadOptions {
  /** Every second, the gray release counts of this thread's requests (for the ReleaseController). */
  onReleaseCounts?(counts: ReleaseCounts): void;
  /** Each address the flood guard bans, for forMs (`--kernel-bans`); its bytes are only valid during the call. */
  onBan?(remote: Uint8Array, forMs: number): void;
}

export interface ThreadSnapshot {
  readonly counters: Record<string, CounterSnapshot>;
  /** [tenant, pool name, pool key] of every pool a tenant of the current policy has touched. */
  readonly pools: Array<[string, string, string]>;
  readonly inFlight: number;
  readonly store: StoreStatus;
  /** The Redis store's counters (undefined with the memory store), summed by the supervisor. */
  readonly storeStats?: RedisLimitStoreStats;
}

export class EdgeThread {
  readonly metrics = new EdgeMetrics();
  private pipeline: Pipeline;
  /** Gray release: the upstream a tenant's request goes to, and the counts the analysis needs. */
  private readonly router = new ReleaseRouter();
  private readonly upstreams = new PolicyUpstreams({
    router: this.router,
    // A bug met while relaying one upstream answer costs that request (502 or a cut response), not the thread.
    onFault: (err) => this.log.error({ err }, 'uncaught error handling an upstream connection; its request failed'),
    onPipeliningOff: (origin, offMs) =>
      this.log.warn({ target: origin, off_ms: offMs }, 'upstream target broke pipelined requests (closed or timed out with requests behind the answered one); pipelining to it is off for a while'),
  });
  private countsTimer: NodeJS.Timeout | undefined;
  private readonly listener: HttpListener;
  private readonly relay: E2ERelay;
  private readonly wsMetrics = new WsMetricVecs(this.metrics.shadow);
  private readonly ws: WsProxy;
  /** Pools touched under earlier policy versions, by pool key: a lease taken before a reload
   * stays visible in ward_concurrency_in_use while its request is still in flight. */
  private readonly earlierPools = new Map<string, [string, string, string]>();
  port = 0;

  private constructor(
    policy: Policy,
    readonly store: LimitStore,
    private readonly flood: FloodGuard,
    private readonly log: Logger,
    e2e: E2EHandler,
    init?: Pick<EdgeThreadInit, 'upstreamBuffers' | 'releaseStates'>,
    private readonly onBan?: (remote: Uint8Array, forMs: number) => void,
  ) {
    flood.configure(policy.flood);
    this.upstreams.apply(policy, init?.upstreamBuffers);
    if (init?.releaseStates !== undefined) this.router.setStates(init.releaseStates);
    this.router.apply(policy);
    this.pipeline = this.compile(policy);
    const current = () => this.pipeline;
    const relay = e2eRelayBehavior(current, relayBusFor(policy.store));
    this.relay = relay.relay;
    // uWS fixes the largest WebSocket message at start; routes check their own (smaller) limits.
    const maxPayloadLength = Math.max(64 * 1024, ...policy.routes.map((r) => r.max_message_bytes)) + 1;
    this.ws = createWsProxy(edgeWsDeps({ current, upstreams: this.upstreams, metrics: this.wsMetrics, log, maxPayloadLength }));
    this.listener = new HttpListener({
      current,
      upstreams: this.upstreams,
      log,
      local: (res, head, pipeline, inFlight) => serveE2EHttp(res, head, pipeline, e2e, inFlight),
      websockets: [
        [E2E_PREFIX + '/relay', relay.behavior],
        ['/*', this.ws.behavior],
      ],
    });
  }

  /** `e2e` answers /v1/e2e directory requests in this thread; without it they go to `init.e2ePort`. */
  static async start(init: EdgeThreadInit, log: Logger, e2e?: E2EHandler, opts: EdgeThreadOptions = {}): Promise<EdgeThread> {
    const store = openStore(init.store, (s, cause) =>
      s.state === 'ok' ? log.info({ store: s }, 'store state changed') : log.warn({ store: s, err: cause?.message }, 'store state changed'));
    const handler = e2e ?? e2eClient(init.e2ePort!);
    const t = new EdgeThread(init.policy, store, FloodGuard.attach(init.flood), log, handler, init, opts.onBan);
    const onCounts = opts.onReleaseCounts;
    if (onCounts !== undefined) {
      t.countsTimer = setInterval(() => {
        const c = t.router.takeCounts();
        for (const _ in c) return onCounts(c); // only when there is something to send
      }, 1000);
      t.countsTimer.unref();
    }
    // Listen on the shared budget when Redis answers; if it does not within 2 s, start on the
    // insurance limits anyway (the store switches to shared by itself once connected).
    await storeReady(store, 2000);
    t.port = await t.listener.listen(init.policy.listen.host, init.port);
    return t;
  }

  /** Swaps in a new policy version; requests in flight keep the pipeline they started with.
   * `upstreamBuffers`: the main thread's target tables for this version. */
  apply(policy: Policy, upstreamBuffers?: Readonly<Record<string, SharedArrayBuffer>>): void {
    for (const p of this.pipeline.touchedPools()) this.earlierPools.set(p[2], p);
    this.flood.configure(policy.flood);
    this.upstreams.apply(policy, upstreamBuffers);
    this.router.apply(policy);
    this.pipeline = this.compile(policy);
  }

  /** The ReleaseController's latest states. */
  setReleaseStates(states: Readonly<Record<string, ReleaseState>>): void {
    this.router.setStates(states);
  }

  snapshot(): ThreadSnapshot {
    return {
      counters: { ...this.metrics.snapshot(), ...this.wsMetrics.snapshot() },
      pools: [...this.earlierPools.values(), ...this.pipeline.touchedPools()],
      inFlight: this.listener.requestsInFlight,
      store: this.store.status(),
      storeStats: storeStats(this.store),
    };
  }

  /** Stops accepting and waits (at most timeoutMs) for this thread's in-flight requests; its
   * kept-alive connections stay open, answering 503, until close(). */
  async drain(timeoutMs: number): Promise<void> {
    // Open WebSocket sessions close with 1001 and new upgrades get 503 while HTTP drains.
    this.ws.drain();
    await this.listener.drain(timeoutMs);
  }

  /** After every thread drained: closes every connection left and everything else this thread
   * holds, so its event loop can end. */
  async close(): Promise<void> {
    this.listener.closeAll();
    this.ws.stop();
    await this.relay.close();
    if (this.countsTimer !== undefined) clearInterval(this.countsTimer);
    this.upstreams.close();
    await this.store.close();
  }

  private compile(policy: Policy): Pipeline {
    // Without releases, a request's upstream is its route's: no per-request lookup at all.
    const router = this.router;
    const resolveUpstream = Object.keys(policy.releases).length > 0 ? (route: RouteSpec, tenant: string) => router.resolve(route.name, tenant) : undefined;
    const onBan = this.onBan;
    return new Pipeline(policy, { store: this.store, flood: this.flood, metrics: this.metrics, ...(resolveUpstream ? { resolveUpstream } : {}), ...(onBan ? { onBan } : {}) });
  }
}
