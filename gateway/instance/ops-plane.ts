// The instance-wide half of upstream health, gray release and the ops console, in the main thread
// of `ward serve`: one UpstreamRegistry whose target tables (SharedArrayBuffers) every listener
// thread attaches to, the HealthChecker probing them once per instance, the ReleaseController
// deciding steps and rollbacks, and the AdminActions the console calls. Listener threads only
// pick/report/release against the shared tables and resolve tenants with their ReleaseRouter.
//
// Where state lives: with a Redis store, release state and admin overrides/audit are in Redis
// (shared by every instance on the same prefix); with the memory store, release state is a JSON
// file in the state directory ($WARD_STATE_DIR, else a folder in the OS temp dir named after the
// policy directory), so it survives restarts; the audit log then lives in memory.

import { createHash } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import type { Registry } from 'prom-client';
import type { Policy } from '../policy/types.js';
import type { Logger } from '../log.js';
import { UpstreamRegistry } from '../upstream/upstream-registry.js';
import { HealthChecker } from '../upstream/health-checker.js';
import { registerOpsMetrics } from '../upstream/ops-metrics.js';
import { ReleaseController } from '../release/release-controller.js';
import type { ReleaseCounts } from '../release/release-router.js';
import { FileReleaseStateStore, type ReleaseState, type ReleaseStateStore } from '../release/release-state.js';
import { RedisReleaseStateStore } from '../release/redis-release-store.js';
import { AdminActions } from '../admin/admin-actions.js';
import { LocalAdminBus, RedisAdminBus, type AdminBus } from '../admin/admin-bus.js';
import { handleAdmin, type AdminOverview } from '../admin/admin-api.js';
import { createWardClient, type WardClient } from '../store/redis/client.js';

/** Where a memory-store instance keeps release state: $WARD_STATE_DIR, or tmp/ward-state-<hash of the policy dir>. */
export function stateDir(policyDir: string, env: NodeJS.ProcessEnv = process.env): string {
  if (env.WARD_STATE_DIR) return env.WARD_STATE_DIR;
  return join(tmpdir(), `ward-state-${createHash('sha256').update(policyDir).digest('hex').slice(0, 16)}`);
}

/** The file store, creating its folder on the first write (a policy without releases leaves none). */
class StateDirReleaseStore extends FileReleaseStateStore {
  override async save(name: string, next: ReleaseState, expected: number): Promise<boolean> {
    mkdirSync(dirname(this.path), { recursive: true });
    return super.save(name, next, expected);
  }
}

export interface OpsPlaneOptions {
  readonly log: Logger;
  /** Release states changed: hand them to every listener thread's router. */
  onReleaseStates(states: Record<string, ReleaseState>): void;
}

/** Resolves when the client is connected, or after `ms` (it keeps trying by itself). */
function connected(client: WardClient, ms: number): Promise<void> {
  if (client.status === 'ready') return Promise.resolve();
  return new Promise((resolve) => {
    const t = setTimeout(done, ms);
    client.once('ready', done);
    function done(): void {
      clearTimeout(t);
      client.off('ready', done);
      resolve();
    }
  });
}

export class OpsPlane {
  readonly registry = new UpstreamRegistry();
  private checker!: HealthChecker;
  private releases!: ReleaseController;
  private actions!: AdminActions;
  private bus!: AdminBus;
  private stateStore!: ReleaseStateStore;
  private client: WardClient | undefined;
  private eventTimer: NodeJS.Timeout | undefined;
  /** Last table event logged, per table. */
  private readonly logged = new WeakMap<object, number>();
  private readonly errorLoggedAt = new Map<string, number>();

  private constructor(private readonly opts: OpsPlaneOptions) {}

  static async start(policy: Policy, opts: OpsPlaneOptions): Promise<OpsPlane> {
    const ops = new OpsPlane(opts);
    await ops.init(policy);
    return ops;
  }

  private async init(policy: Policy): Promise<void> {
    const { log } = this.opts;
    this.registry.apply(policy);
    const spec = policy.store;
    if (spec.kind !== 'memory') {
      this.client = createWardClient(spec, { commandTimeoutMs: 1000, connectTimeoutMs: 2000 });
      this.client.on('error', () => undefined); // reconnects by itself; failures are handled per call
      await connected(this.client, 2000);
      this.stateStore = new RedisReleaseStateStore(this.client, spec.prefix);
      this.bus = new RedisAdminBus(this.client, spec.prefix);
    } else {
      this.stateStore = new StateDirReleaseStore(join(stateDir(policy.dir), 'releases.json'));
      this.bus = new LocalAdminBus();
    }
    this.releases = new ReleaseController(policy, {
      store: this.stateStore,
      onChange: (states) => this.opts.onReleaseStates(states),
      onDecision: (release, decision, st) => log.info({ release, decision, step: st.step, status: st.status, reason: st.reason, by: st.by }, 'release decision'),
      onError: (err, release) => this.logError(`release:${release}`, err, 'release state store unreachable; routing keeps the last known state'),
    });
    await this.releases.start();
    this.checker = new HealthChecker(this.registry, {
      onEvent: (e) => {
        if (e.kind === 'suspect') log.error('health detector suspect: most targets of every upstream failed at once (ward\'s own network?); ejections frozen');
        else if (e.kind === 'unsuspect') log.warn('health detector back to normal; ejections resume');
        else if (e.kind === 'voided') log.warn({ upstream: e.upstream, stall_ms: Math.round(e.stallMs ?? 0) }, 'probe round voided: ward\'s event loop stalled');
      },
    }).start();
    this.actions = new AdminActions({
      upstreams: () => this.registry.groups(),
      releases: () => this.releases,
      bus: this.bus,
      onError: (err) => this.logError('admin', err, 'admin state store unreachable'),
    });
    await this.actions.start();
    // Ejections happen in listener threads; their shared event rings are logged from here.
    this.eventTimer = setInterval(() => this.logEvents(), 1000);
    this.eventTimer.unref();
    this.logEvents(true);
  }

  /** A new policy version: groups (state carried over by target URL) and releases; then post buffers() to the threads. */
  async apply(policy: Policy): Promise<void> {
    this.logEvents();
    this.registry.apply(policy);
    this.logEvents(true); // a changed target list copies the old events into a new table: logged already
    await this.releases.apply(policy);
  }

  /** The shared target tables of the policy in force, for listener threads. */
  buffers(): Record<string, SharedArrayBuffer> {
    return this.registry.buffers();
  }

  releaseStates(): Record<string, ReleaseState> {
    return this.releases.snapshot();
  }

  /** A listener thread's counts for release analysis. */
  addCounts(counts: ReleaseCounts): void {
    this.releases.addCounts(counts);
  }

  /** `upstream_panic:NAME` and `health_detector_suspect`, for /readyz. */
  readinessReasons(): string[] {
    return this.checker.readinessReasons();
  }

  /** ward_upstream_*, ward_release_*, ward_admin_actions_total on the /metrics registry. */
  registerMetrics(registry: Registry): void {
    registerOpsMetrics(registry, { upstreams: () => this.registry.groups(), releases: () => this.releases, adminActions: () => this.actions });
  }

  /** The admin server's handler for /admin/...: the console and its JSON API. */
  console(tokens: () => Policy['admin'], overview: () => Promise<AdminOverview>): (req: IncomingMessage, res: ServerResponse) => void {
    const ctx = { tokens: () => tokens().console?.tokens ?? [], actions: this.actions, overview };
    return (req, res) => void handleAdmin(req, res, ctx);
  }

  async close(): Promise<void> {
    if (this.eventTimer !== undefined) clearInterval(this.eventTimer);
    this.checker.stop();
    this.actions.stop();
    await this.releases.stop();
    await this.bus.close();
    await this.stateStore.close();
    if (this.client !== undefined) await this.client.quit().catch(() => this.client?.disconnect());
  }

  private logEvents(skip = false): void {
    for (const g of this.registry.groups()) {
      const last = this.logged.get(g.table) ?? 0;
      let seen = last;
      for (const e of g.table.events()) {
        if (e.seq <= last) continue;
        seen = e.seq;
        if (skip) continue;
        const fields = { upstream: g.name, target: e.target, event: e.kind, reason: e.reason, until: e.until === undefined ? undefined : new Date(e.until).toISOString() };
        if (e.kind === 'ejected' || e.kind === 'down' || e.kind === 'frozen') this.opts.log.warn(fields, 'upstream target event');
        else this.opts.log.info(fields, 'upstream target event');
      }
      this.logged.set(g.table, seen);
    }
  }

  /** Store errors repeat every second while it is down: one line per subject per 30 s. */
  private logError(subject: string, err: unknown, msg: string): void {
    const now = Date.now();
    if (now - (this.errorLoggedAt.get(subject) ?? 0) < 30_000) return;
    this.errorLoggedAt.set(subject, now);
    this.opts.log.warn({ subject, err: (err as Error)?.message }, msg);
  }
}
