// What an operator's action does, apart from HTTP: apply it here, record it in the audit log,
// announce it to the other instances, and apply what the others announce. Counted in
// ward_admin_actions_total{action,result}.

import type { ReleaseAction, ReleaseController, ReleaseView } from '../release/release-controller.js';
import type { TargetState, UpstreamGroup, UpstreamView } from '../upstream/upstream-group.js';
import { LocalAdminBus, overrideKey, type AdminBus, type AdminMessage, type AuditEntry, type TargetAction } from './admin-bus.js';

export interface Principal {
  readonly name: string;
  readonly role: 'viewer' | 'operator';
}

export interface ActionOutcome {
  readonly status: number;
  readonly body: Record<string, unknown>;
}

export interface AdminActionsOptions {
  /** This instance's upstream groups (main thread: the registry's groups()). */
  upstreams: () => readonly UpstreamGroup<unknown>[];
  releases?: () => ReleaseController | undefined;
  bus?: AdminBus;
  now?: () => number;
  /** How often the overrides kept in the bus are re-applied (default 1000 ms). */
  syncMs?: number;
  onError?: (err: unknown) => void;
}

function applyTarget(g: UpstreamGroup<unknown>, url: string, action: TargetAction): boolean {
  return action === 'drain' ? g.drain(url) : action === 'maint' ? g.maint(url) : g.undrain(url);
}

export class AdminActions {
  readonly bus: AdminBus;
  private readonly counts = new Map<string, number>();
  private unsubscribe: (() => void) | undefined;
  private timer: NodeJS.Timeout | undefined;
  private readonly now: () => number;

  constructor(private readonly opts: AdminActionsOptions) {
    this.bus = opts.bus ?? new LocalAdminBus();
    this.now = opts.now ?? Date.now;
  }

  /** Listens to the other instances and re-applies the bus's overrides every syncMs. */
  async start(): Promise<void> {
    this.unsubscribe ??= this.bus.subscribe((m) => void this.receive(m));
    await this.sync();
    if (this.timer === undefined) {
      this.timer = setInterval(() => void this.sync(), this.opts.syncMs ?? 1000);
      this.timer.unref();
    }
  }

  stop(): void {
    this.unsubscribe?.();
    this.unsubscribe = undefined;
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
  }

  private group(name: string): UpstreamGroup<unknown> | undefined {
    return this.opts.upstreams().find((g) => g.name === name);
  }

  private async receive(m: AdminMessage): Promise<void> {
    try {
      if (m.kind === 'target') {
        const g = this.group(m.upstream);
        if (g !== undefined) applyTarget(g, m.target, m.action);
      } else {
        await this.opts.releases?.()?.refresh();
      }
    } catch (err) {
      this.opts.onError?.(err);
    }
  }

  /** Makes this instance's drains and maintenance match the overrides recorded in the bus. */
  async sync(): Promise<void> {
    let over;
    try {
      over = await this.bus.overrides();
    } catch (err) {
      this.opts.onError?.(err);
      return;
    }
    for (const g of this.opts.upstreams()) {
      for (const t of g.targets) {
        const want = over[overrideKey(g.name, t.url)];
        const state = g.stateOf(t.url);
        const has = state === 'draining' ? 'drain' : state === 'maint' ? 'maint' : undefined;
        if (want !== has) applyTarget(g, t.url, want ?? 'undrain');
      }
    }
  }

  count(action: string, result: string): void {
    const k = `${action}\n${result}`;
    this.counts.set(k, (this.counts.get(k) ?? 0) + 1);
  }

  /** `ward_admin_actions_total{action,result}`. */
  metricValues(): Array<{ action: string; result: string; value: number }> {
    return [...this.counts].map(([k, value]) => {
      const [action, result] = k.split('\n') as [string, string];
      return { action, result, value };
    });
  }

  private async record(who: Principal, action: string, subject: string, before: unknown, after: unknown, error?: string): Promise<void> {
    const entry: AuditEntry = {
      at: this.now(),
      who: who.name,
      role: who.role,
      action,
      subject,
      before,
      after,
      result: error === undefined ? 'ok' : 'error',
      ...(error !== undefined ? { error } : {}),
      instance: this.bus.instanceId,
    };
    try {
      await this.bus.appendAudit(entry);
    } catch (err) {
      this.opts.onError?.(err);
    }
  }

  async target(who: Principal, upstream: string, url: string, action: TargetAction): Promise<ActionOutcome> {
    const g = this.group(upstream);
    const before: TargetState | undefined = g?.stateOf(url);
    if (g === undefined || before === undefined) {
      this.count(action, 'not_found');
      return { status: 404, body: { error: g === undefined ? 'unknown_upstream' : 'unknown_target' } };
    }
    let stored = true;
    try {
      // Recorded before it is applied, so the overrides poll never undoes it in between.
      await this.bus.setOverride(upstream, url, action === 'undrain' ? undefined : action);
    } catch (err) {
      stored = false; // applied here only; the other instances will not hear of it until the store is back
      this.opts.onError?.(err);
    }
    applyTarget(g, url, action);
    const after = g.stateOf(url)!;
    if (stored) {
      try {
        await this.bus.publish({ kind: 'target', from: this.bus.instanceId, upstream, target: url, action });
      } catch (err) {
        this.opts.onError?.(err); // the others still pick it up from the overrides within syncMs
      }
    }
    await this.record(who, action, `upstream ${upstream} target ${url}`, before, after, stored ? undefined : 'store_unavailable');
    this.count(action, stored ? 'ok' : 'local_only');
    const view = g.view().targets.find((t) => t.url === url)!;
    return { status: 200, body: { upstream, target: view, before, after, shared: stored } };
  }

  async release(who: Principal, name: string, action: ReleaseAction): Promise<ActionOutcome> {
    const rc = this.opts.releases?.();
    if (rc === undefined) {
      this.count(action, 'not_found');
      return { status: 404, body: { error: 'unknown_release' } };
    }
    const r = await rc.action(name, action, who.name);
    if (!r.ok) {
      const status = r.error === 'unknown_release' ? 404 : r.error === 'conflict' ? 409 : 503;
      this.count(action, r.error === 'unknown_release' ? 'not_found' : r.error!);
      if (r.error !== 'unknown_release') await this.record(who, action, `release ${name}`, r.before, r.before, r.error);
      return { status, body: { error: r.error } };
    }
    const brief = (s: typeof r.before) => (s === undefined ? undefined : { status: s.status, step: s.step });
    await this.record(who, action, `release ${name}`, brief(r.before), brief(r.after));
    try {
      await this.bus.publish({ kind: 'release', from: this.bus.instanceId, release: name, action });
    } catch (err) {
      this.opts.onError?.(err); // the state is in the release store; the others read it within a tick
    }
    this.count(action, 'ok');
    return { status: 200, body: { release: rc.view().find((v) => v.name === name), before: brief(r.before), after: brief(r.after) } };
  }

  upstreamViews(): UpstreamView[] {
    return this.opts.upstreams().map((g) => g.view());
  }

  releaseViews(): ReleaseView[] {
    return this.opts.releases?.()?.view() ?? [];
  }

  async audit(limit = 100): Promise<AuditEntry[]> {
    return this.bus.audit(limit);
  }
}
