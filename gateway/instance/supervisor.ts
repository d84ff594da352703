// `ward serve`: loads the policy, creates the shared tables, starts N listener threads on one
// port, the admin port, the policy watcher (and SIGHUP), and drains on SIGTERM.

import { MessageChannel, Worker } from 'node:worker_threads';
import { E2EService } from '../e2e/e2e-service.js';
import { serveE2E } from '../e2e/e2e-rpc.js';
import { availableParallelism } from 'node:os';
import { createServer, type AddressInfo } from 'node:net';
import { loadPolicy } from '../policy/loader.js';
import { watchPolicy } from '../policy/watch.js';
import type { Policy, PolicyProblem } from '../policy/types.js';
import { FloodGuard } from '../stages/admit/flood-guard.js';
import { KernelBans } from '../stages/admit/kernel-bans.js';
import { createStoreHandle, openStore } from '../store/create-store.js';
import type { LimitStore, StoreStatus } from '../store/types.js';
import { EdgeThread, type EdgeThreadInit, type ThreadSnapshot } from './edge-thread.js';
import type { FromWorker, ToWorker } from './messages.js';
import { AdminServer, type Readiness } from '../admin/admin-server.js';
import { MetricsRegistry } from '../metrics/registry.js';
import { StoreMetrics } from '../metrics/store-metrics.js';
import { OpsPlane } from './ops-plane.js';
import type { ReleaseCounts } from '../release/release-router.js';
import type { ReleaseState } from '../release/release-state.js';
import type { AdminOverview } from '../admin/admin-api.js';
import type { Logger } from '../log.js';

export interface ServeOptions {
  readonly dir: string;
  readonly workers?: number;
  readonly log: Logger;
  /** ms a drain waits for in-flight requests before exiting anyway. */
  readonly drainTimeoutMs?: number;
  /** A listener thread died after start (threw, or exited on its own): the process cannot be
   * trusted to hold its budget (leases the thread held are lost), so the caller drains and exits
   * non-zero for the service manager to restart it. Called once. */
  readonly onThreadDied?: (reason: string) => void;
  /** `--kernel-bans`: mirror deny/allow and bans into an nftables table (needs CAP_NET_ADMIN). */
  readonly kernelBans?: boolean;
}

/** A listener thread as the supervisor sees it, in this thread or a worker. */
interface ThreadLink {
  readonly port: number;
  /** upstreamBuffers: the ops plane's shared target tables for this policy. */
  apply(policy: Policy, upstreamBuffers: Record<string, SharedArrayBuffer>): void;
  releaseStates(states: Record<string, ReleaseState>): void;
  snapshot(): Promise<ThreadSnapshot>;
  drain(timeoutMs: number): Promise<void>;
  /** After every thread drained: the thread closes what is left and ends. */
  close(): Promise<void>;
}

function inlineLink(t: EdgeThread): ThreadLink {
  return {
    port: t.port,
    apply: (p, buffers) => t.apply(p, buffers),
    releaseStates: (s) => t.setReleaseStates(s),
    snapshot: async () => t.snapshot(),
    drain: (ms) => t.drain(ms),
    close: () => t.close(),
  };
}

function workerLink(init: EdgeThreadInit, onReleaseCounts: (c: ReleaseCounts) => void, onDied: (reason: string) => void, onBan: (addr: Uint8Array, forMs: number) => void): Promise<ThreadLink> {
  const worker = new Worker(new URL('./worker-main.js', import.meta.url), { workerData: init, transferList: init.e2ePort ? [init.e2ePort] : [] });
  const waiting = new Map<number, (s: ThreadSnapshot) => void>();
  let drained: (() => void) | undefined;
  let closed: (() => void) | undefined;
  let draining = false;
  let ready = false;
  let exited = false;
  const id = worker.threadId;
  // After start, a thread only ends when asked to drain; anything else is a death to report.
  worker.on('error', (err) => ready && onDied(`listener thread ${id} threw: ${err.message}`));
  worker.on('exit', (code) => {
    exited = true;
    if (ready && !draining) onDied(`listener thread ${id} exited (code ${code})`);
  });
  let nextId = 0;
  const send = (m: ToWorker) => worker.postMessage(m);
  return new Promise((resolve, reject) => {
    worker.once('error', reject);
    worker.on('message', (m: FromWorker) => {
      switch (m.type) {
        case 'ready':
          ready = true;
          resolve({
            port: m.port,
            apply: (policy, upstreamBuffers) => send({ type: 'policy', policy, upstreamBuffers }),
            releaseStates: (states) => send({ type: 'release-states', states }),
            snapshot: () =>
              new Promise((res) => {
                const id = ++nextId;
                waiting.set(id, res);
                send({ type: 'snapshot', id });
              }),
            drain: (timeoutMs) =>
              new Promise((res) => {
                draining = true;
                if (exited) return res();
                drained = res;
                worker.once('exit', () => res());
                send({ type: 'drain', timeoutMs });
              }),
            // Resolved once the thread closed its sockets: the process may exit then (what aborts
            // is only a thread stopped while uWS still holds sockets), even if some other handle
            // (a Redis client's timer) would keep the thread's loop alive a while longer.
            close: () =>
              new Promise((res) => {
                if (exited) return res();
                closed = res;
                worker.once('exit', () => res());
                send({ type: 'close' });
              }),
          });
          break;
        case 'failed':
          reject(new Error(m.message));
          break;
        case 'snapshot':
          waiting.get(m.id)?.(m.snapshot);
          waiting.delete(m.id);
          break;
        case 'drained':
          drained?.();
          break;
        case 'closed':
          closed?.();
          break;
        case 'died':
          onDied(`listener thread ${id} threw: ${m.message}`);
          break;
        case 'release-counts':
          onReleaseCounts(m.counts);
          break;
        case 'ban':
          onBan(m.addr, m.forMs);
          break;
      }
    });
  });
}

/** uWS binds with SO_REUSEPORT (so worker threads share a port), which would also let a second
 * ward silently share a port with a running one. A plain bind first catches that. */
function assertPortFree(host: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', (err: NodeJS.ErrnoException) =>
      reject(new Error(err.code === 'EADDRINUSE' ? `${host}:${port} is already in use (another ward?)` : `cannot listen on ${host}:${port}: ${err.message}`)),
    );
    probe.listen({ host, port, exclusive: true }, () => probe.close(() => resolve()));
  });
}

/** A port free now. uWS sets SO_REUSEPORT only when asked for a non-zero port, so a socket
 * bound to port 0 cannot be shared: with several threads, port 0 is resolved here first. */
function freePort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen({ host, port: 0, exclusive: true }, () => {
      const { port } = probe.address() as AddressInfo;
      probe.close(() => resolve(port));
    });
  });
}

export function describeProblems(problems: readonly PolicyProblem[]): string[] {
  return problems.map((p) => `${p.file}:${p.line}:${p.col}: ${p.message}`);
}

export class Supervisor {
  private threads: ThreadLink[] = [];
  private policy!: Policy;
  private admin!: AdminServer;
  private starting: Promise<void> | undefined;
  private store!: LimitStore;
  /** Upstream health, gray release and the console's actions (main thread). */
  private ops!: OpsPlane;
  private lastReloadError: string | undefined;
  private e2e!: E2EService;
  /** `--kernel-bans`: set once the listener's port is known; bans before then stay in userland. */
  private kernelBans: KernelBans | undefined;
  private readonly metrics = new MetricsRegistry();
  private readonly storeMetrics = new StoreMetrics(this.metrics.registry);
  private draining = false;
  /** Why a listener thread died, once one has. */
  private threadDeath: string | undefined;
  private lastReload = { at: new Date().toISOString(), result: 'success' as 'success' | 'failure', hash: '' };
  private watcher: { close(): void } | undefined;
  private reloading: Promise<void> | undefined;
  private reloadAgain = false;
  port = 0;
  adminPort = 0;

  constructor(private readonly opts: ServeOptions) {
    const reloads = this.metrics.counter('ward_policy_reloads_total', 'Policy reloads by result', ['result']);
    reloads.inc({ result: 'success' }, 0);
    reloads.inc({ result: 'failure' }, 0);
  }

  /** Starts everything; throws with a one-line reason when the policy is invalid. */
  start(): Promise<void> {
    this.starting = this.startUp();
    return this.starting;
  }

  private async startUp(): Promise<void> {
    const { log } = this.opts;
    const res = await loadPolicy(this.opts.dir);
    if (!res.ok) {
      const lines = describeProblems(res.problems);
      throw new Error(`invalid policy: ${lines[0]}${lines.length > 1 ? ` (and ${lines.length - 1} more problems)` : ''}`);
    }
    this.policy = res.policy;
    this.lastReload.hash = res.policy.hash;
    const storeHandle = createStoreHandle(this.policy.store);
    this.store = openStore(storeHandle);
    this.ops = await OpsPlane.start(this.policy, { log, onReleaseStates: (s) => this.threads.forEach((t) => t.releaseStates(s)) });
    const onReleaseCounts = (c: ReleaseCounts) => this.ops.addCounts(c);
    this.e2e = new E2EService(this.policy.store, log);
    const flood = FloodGuard.create().shared();
    const workers = Math.max(1, this.opts.workers ?? availableParallelism());
    if (this.policy.listen.port !== 0) await assertPortFree(this.policy.listen.host, this.policy.listen.port);
    const init = (port: number): EdgeThreadInit => ({
      policy: this.policy, store: storeHandle, flood, port, upstreamBuffers: this.ops.buffers(), releaseStates: this.ops.releaseStates(),
      ...(this.opts.kernelBans ? { kernelBans: true } : {}),
    });
    const onBan = (addr: Uint8Array, forMs: number) => this.kernelBans?.ban(addr, forMs);
    /** A worker's init, with its own port to the supervisor's E2E directory. */
    const workerInit = (port: number): EdgeThreadInit => {
      const { port1, port2 } = new MessageChannel();
      serveE2E(port1, this.e2e.handle);
      return { ...init(port), e2ePort: port2 };
    };
    if (workers === 1) {
      this.threads.push(inlineLink(await EdgeThread.start(init(this.policy.listen.port), log, this.e2e.handle, { onReleaseCounts, ...(this.opts.kernelBans ? { onBan } : {}) })));
    } else {
      // Every thread binds the same non-zero port (SO_REUSEPORT); see freePort for port 0.
      const port = this.policy.listen.port !== 0 ? this.policy.listen.port : await freePort(this.policy.listen.host);
      const died = (reason: string) => this.threadDied(reason);
      const first = await workerLink(workerInit(port), onReleaseCounts, died, onBan);
      this.threads.push(first);
      const rest = await Promise.allSettled(Array.from({ length: workers - 1 }, () => workerLink(workerInit(first.port), onReleaseCounts, died, onBan)));
      for (const r of rest) if (r.status === 'fulfilled') this.threads.push(r.value);
      const failed = rest.find((r) => r.status === 'rejected');
      if (failed) await this.abandon((failed as PromiseRejectedResult).reason as Error);
    }
    this.port = this.threads[0]!.port;
    if (this.opts.kernelBans) {
      this.kernelBans = await KernelBans.install({ port: this.port, flood: this.policy.flood, log }).catch((err: Error) => this.abandon(err));
      log.info({ table: this.kernelBans.table }, 'kernel bans on: denied and banned addresses are refused by nftables');
    }
    this.ops.registerMetrics(this.metrics.registry);
    this.admin = new AdminServer({
      readiness: () => this.readiness(),
      metrics: () => this.renderMetrics(),
      console: this.ops.console(() => this.policy.admin, () => this.overview()),
    });
    const { host, port } = this.policy.admin;
    this.adminPort = await this.admin.listen(host, port).catch((err: Error) => this.abandon(new Error(`cannot listen on the admin port ${host}:${port}: ${err.message}`)));
    this.watcher = watchPolicy(this.opts.dir, () => void this.reload('watch'));
    log.info(
      { port: this.port, admin_port: this.adminPort, host: this.policy.listen.host, workers, store: this.policy.store.kind, policy: this.policy.hash.slice(0, 12) },
      'listening',
    );
  }

  /** A start-up failure once listener threads run: close their sockets first, since a process
   * exiting under a worker thread that still holds uWS sockets aborts with a native assertion. */
  private async abandon(err: Error): Promise<never> {
    await Promise.all(this.threads.map((t) => t.drain(0)));
    await Promise.all(this.threads.map((t) => t.close()));
    throw err;
  }

  /** Re-reads the policy; an invalid edit is refused whole and the last good policy stays. */
  reload(cause: string): Promise<void> {
    if (this.reloading) {
      this.reloadAgain = true;
      return this.reloading;
    }
    this.reloading = this.doReload(cause).finally(() => {
      this.reloading = undefined;
      if (this.reloadAgain) {
        this.reloadAgain = false;
        void this.reload(cause);
      }
    });
    return this.reloading;
  }

  private async doReload(cause: string): Promise<void> {
    const { log } = this.opts;
    const res = await loadPolicy(this.opts.dir);
    const reloads = this.metrics.local.get('ward_policy_reloads_total')!;
    if (!res.ok) {
      reloads.inc({ result: 'failure' });
      this.lastReload = { at: new Date().toISOString(), result: 'failure', hash: this.policy.hash };
      this.lastReloadError = describeProblems(res.problems)[0];
      log.error({ cause, problems: describeProblems(res.problems) }, 'policy reload refused; the last good policy stays in force');
      return;
    }
    if (res.policy.hash === this.policy.hash) return;
    const p = res.policy;
    if (JSON.stringify(p.store) !== JSON.stringify(this.policy.store)) log.warn('store settings changed: they take effect at the next restart');
    if (p.listen.port !== this.policy.listen.port || p.admin.port !== this.policy.admin.port) log.warn('listen/admin ports changed: they take effect at the next restart');
    await this.ops.apply(p);
    this.policy = p;
    const buffers = this.ops.buffers();
    for (const t of this.threads) t.apply(p, buffers);
    this.kernelBans?.configure(p.flood);
    this.lastReloadError = undefined;
    reloads.inc({ result: 'success' });
    this.lastReload = { at: new Date().toISOString(), result: 'success', hash: p.hash };
    log.info({ cause, policy: p.hash.slice(0, 12) }, 'policy reloaded');
  }

  private threadDied(reason: string): void {
    if (this.draining || this.threadDeath !== undefined) return;
    this.threadDeath = reason;
    this.opts.log.fatal({ reason }, 'a listener thread died: draining the others, then exiting 1 for the service manager to restart ward');
    this.opts.onThreadDied?.(reason);
  }

  /** How long a drain waits for in-flight requests before closing what is left. */
  get drainTimeoutMs(): number {
    return this.opts.drainTimeoutMs ?? 10_000;
  }

  /** SIGTERM: stop accepting, let in-flight requests finish (bounded), close everything. */
  async drain(): Promise<void> {
    if (this.draining) return;
    this.draining = true;
    // A listener thread can die while ward is still starting: let the start finish, then close
    // everything it opened (the admin server, the table of kernel bans, the watcher).
    await this.starting?.catch(() => undefined);
    this.watcher?.close();
    await Promise.all(this.threads.map((t) => t.drain(this.drainTimeoutMs)));
    // Tests only: a close that never finishes, for the exit watchdog in cli.ts.
    if (process.env.WARD_FAULT_DRAIN_HANG) await new Promise(() => {});
    // Only now: a thread done early keeps answering its kept-alive clients 503 while others finish.
    await Promise.all(this.threads.map((t) => t.close()));
    await this.kernelBans?.close();
    await this.ops.close();
    await this.admin.close();
    await this.store.close();
    await this.e2e.close();
    this.opts.log.info('drained');
  }

  private async readiness(): Promise<Readiness> {
    if (this.draining) return { serving: false, reasons: ['draining'] };
    const reasons: string[] = [];
    // The threads' stores carry the traffic (a slow Redis shows there first); this one only reads.
    const degraded = [this.store.status(), ...(await this.threadStores())].find((s) => s.state === 'degraded');
    if (degraded) reasons.push(degraded.reason ?? 'store_degraded');
    reasons.push(...this.ops.readinessReasons());
    return { serving: true, reasons };
  }

  /** The console's overview: policy version, last reload, readiness, top tenants by refusals. */
  private async overview(): Promise<AdminOverview> {
    const r = await this.readiness();
    const snaps = await Promise.all(this.threads.map((t) => t.snapshot()));
    const byTenant = new Map<string, Record<string, number>>();
    for (const s of snaps) {
      for (const [[tenant, , outcome], n] of s.counters['ward_requests_total'] ?? []) {
        if (!tenant || n === 0 || (outcome !== 'rate_limited' && outcome !== 'concurrency_limited')) continue;
        const m = byTenant.get(tenant) ?? {};
        m[outcome] = (m[outcome] ?? 0) + n;
        byTenant.set(tenant, m);
      }
    }
    const top = [...byTenant].map(([tenant, reasons]) => ({ tenant, count: Object.values(reasons).reduce((a, b) => a + b, 0), reasons }));
    top.sort((a, b) => b.count - a.count);
    const lr = this.lastReload;
    return {
      policy_version: this.policy.hash,
      last_reload: { at: Date.parse(lr.at), result: lr.result, ...(this.lastReloadError !== undefined ? { error: this.lastReloadError } : {}) },
      readiness: { status: !r.serving ? 'unavailable' : r.reasons.length > 0 ? 'degraded' : 'ok', reasons: r.reasons },
      top_refusals: top.slice(0, 10),
    };
  }

  /** The listener threads' store states; none from a thread that does not answer within 500 ms. */
  private async threadStores(): Promise<StoreStatus[]> {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<ThreadSnapshot[]>((r) => (timer = setTimeout(() => r([]), 500)));
    const snaps = await Promise.race([Promise.all(this.threads.map((t) => t.snapshot())), late]);
    clearTimeout(timer);
    return snaps.map((s) => s.store);
  }

  /** `--kernel-bans`: what the kernel refused, and how the hand-over to nft went. */
  private async kernelMetrics(kb: KernelBans): Promise<void> {
    const m = this.metrics;
    const drops = await kb.drops();
    if (drops) {
      m.setCounter('ward_kernel_dropped_packets_total', 'Packets to the listen port the kernel refused (--kernel-bans); a refused connection attempt is one packet', ['reason'], [
        { labels: { reason: 'denied' }, value: drops.denied },
        { labels: { reason: 'banned' }, value: drops.banned },
      ]);
    }
    const st = kb.stats();
    m.setCounter('ward_kernel_bans_total', 'Bans handed to the kernel (--kernel-bans), by result', ['result'], [
      { labels: { result: 'installed' }, value: st.bans },
      { labels: { result: 'overflow' }, value: st.overflow },
    ]);
    m.setCounter('ward_kernel_nft_failures_total', 'nft runs that failed (--kernel-bans); each is logged', [], [{ labels: {}, value: st.failures }]);
    m.setCounter('ward_kernel_table_reinstalls_total', 'Times the kernel ban table was found removed from outside ward and put back (--kernel-bans)', [], [{ labels: {}, value: st.reinstalls }]);
  }

  private async renderMetrics(): Promise<{ contentType: string; text: string }> {
    const snaps = await Promise.all(this.threads.map((t) => t.snapshot()));
    this.metrics.setThreadCounters(snaps.map((s) => s.counters));
    this.storeMetrics.set(snaps.map((s) => s.storeStats));
    const pools = new Map<string, [string, string]>();
    for (const s of snaps) for (const [tenant, pool, key] of s.pools) pools.set(key, [tenant, pool]);
    const inUse = await Promise.all([...pools].map(async ([key, [tenant, pool]]) => ({ labels: { tenant, pool }, value: await this.store.inUse(key) })));
    this.metrics.setGauge('ward_concurrency_in_use', 'Concurrency leases held per tenant pool', ['tenant', 'pool'], inUse);
    this.metrics.setGauge('ward_requests_in_flight', 'Requests in flight: proxied, and ward\'s own /v1/e2e/ ones', [], [{ labels: {}, value: snaps.reduce((a, s) => a + s.inFlight, 0) }]);
    if (this.kernelBans) await this.kernelMetrics(this.kernelBans);
    const st = this.store.status();
    this.metrics.setGauge('ward_store_state', 'Limit store state (1 for the current one)', ['kind', 'state'], [
      { labels: { kind: this.policy.store.kind, state: 'ok' }, value: st.state === 'ok' ? 1 : 0 },
      { labels: { kind: this.policy.store.kind, state: 'degraded' }, value: st.state === 'degraded' ? 1 : 0 },
    ]);
    this.metrics.setGauge('ward_policy_info', 'The policy version in force', ['hash', 'last_reload', 'result'], [
      { labels: { hash: this.policy.hash.slice(0, 12), last_reload: this.lastReload.at, result: this.lastReload.result }, value: 1 },
    ]);
    return { contentType: this.metrics.contentType, text: await this.metrics.text() };
  }
}
