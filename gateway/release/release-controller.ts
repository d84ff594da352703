// The deciding half of gray release, once per instance (main thread): it keeps each release's
// state in the ReleaseStateStore, advances steps every step_interval_s, runs the analysis (canary
// against stable error rate over window_s, given min_requests), rolls back by itself, and applies
// operator actions. Listener threads only resolve tenants (ReleaseRouter) from the states this
// controller hands out through onChange, and send their counts back with addCounts.
//
// Decisions: a failing canary (error rate above max_error_rate and above stable's) is rolled back
// at once, whatever the step: nothing new goes to it, and only an operator's resume restarts it.
// When a step's time is up and the window holds fewer than min_requests canary requests, the
// release pauses itself (`insufficient_traffic`) and goes on by itself once traffic suffices.

import type { Policy, ReleaseSpec } from '../policy/types.js';
import { ReleaseRouter, type ReleaseCounts } from './release-router.js';
import { MemoryReleaseStateStore, type ReleaseState, type ReleaseStateStore } from './release-state.js';
import { ReleaseWindow, type WindowSums } from './release-window.js';

export type ReleaseAction = 'pause' | 'resume' | 'promote' | 'abort';
export const RELEASE_ACTIONS: readonly ReleaseAction[] = ['pause', 'resume', 'promote', 'abort'];
export type ReleaseDecision = 'start' | 'advance' | 'complete' | 'rollback' | 'hold' | 'continue' | ReleaseAction;

const INSUFFICIENT = 'insufficient_traffic';

export interface ReleaseControllerOptions {
  store?: ReleaseStateStore;
  /** Epoch ms. */
  now?: () => number;
  /** How often steps and analysis are evaluated and the store re-read (default 1000 ms). */
  tickMs?: number;
  /** Every change of any release's state (post these to listener threads' routers). */
  onChange?: (states: Record<string, ReleaseState>) => void;
  onDecision?: (release: string, decision: ReleaseDecision, state: ReleaseState) => void;
  /** A store failure: routing goes on with the last known states, decisions wait for the store. */
  onError?: (err: unknown, release: string) => void;
}

export interface SideView {
  requests: number;
  errors: number;
  error_rate: number;
}

export interface ReleaseView {
  name: string;
  routes: readonly string[];
  stable: string;
  canary: string;
  status: ReleaseState['status'];
  reason?: string;
  step: number;
  steps: ReleaseSpec['steps'];
  /** Share of tenants the current step puts on the canary by hash (listed groups come on top). */
  percent: number;
  groups: string[];
  /** Share of requests that went to the canary in the window. */
  share: number;
  step_started_at: number;
  next_step_at?: number;
  by: string;
  canary_side: SideView;
  stable_side: SideView;
  analysis?: ReleaseSpec['analysis'];
  decisions: Record<string, number>;
}

export interface ActionResult {
  ok: boolean;
  error?: 'unknown_release' | 'conflict' | 'store_unavailable';
  before?: ReleaseState;
  after?: ReleaseState;
}

function side(requests: number, errors: number): SideView {
  return { requests, errors, error_rate: requests > 0 ? errors / requests : 0 };
}

export class ReleaseController {
  readonly router: ReleaseRouter;
  private specs: Record<string, ReleaseSpec> = {};
  private readonly states: Record<string, ReleaseState> = {};
  private readonly windows = new Map<string, ReleaseWindow>();
  private readonly decisions = new Map<string, Map<string, number>>();
  private readonly store: ReleaseStateStore;
  private readonly now: () => number;
  private timer: NodeJS.Timeout | undefined;
  private ticking: Promise<void> | undefined;

  constructor(
    private policy: Pick<Policy, 'routes' | 'releases'>,
    private readonly opts: ReleaseControllerOptions = {},
  ) {
    this.store = opts.store ?? new MemoryReleaseStateStore();
    this.now = opts.now ?? Date.now;
    this.router = new ReleaseRouter(policy);
  }

  /** Loads (or creates) every release's state, then evaluates every tickMs. */
  async start(): Promise<void> {
    await this.apply(this.policy);
    if (this.timer !== undefined) return;
    this.timer = setInterval(() => void this.tick(), this.opts.tickMs ?? 1000);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
    await this.ticking;
  }

  /** A new policy: new releases start at their first step at once; known ones keep their state. */
  async apply(policy: Pick<Policy, 'routes' | 'releases'>): Promise<void> {
    this.policy = policy;
    this.specs = { ...policy.releases };
    for (const name of Object.keys(this.states)) if (this.specs[name] === undefined) delete this.states[name];
    for (const spec of Object.values(this.specs)) {
      const windowS = spec.analysis?.window_s ?? 60;
      if (this.windows.get(spec.name)?.windowS !== windowS) this.windows.set(spec.name, new ReleaseWindow(windowS));
      const now = this.now();
      const fresh: ReleaseState = { step: 0, status: 'running', stepStartedAt: now, updatedAt: now, by: 'policy', version: 1 };
      try {
        let st = await this.store.load(spec.name);
        if (st === undefined) {
          st = (await this.store.save(spec.name, fresh, 0)) ? fresh : await this.store.load(spec.name);
          if (st === fresh) this.count(spec.name, 'start');
        }
        if (st !== undefined) this.states[spec.name] = st;
      } catch (err) {
        // Store unreachable at load: keep what this instance knew, or the first step (version 0: never stored).
        this.states[spec.name] ??= { ...fresh, version: 0 };
        this.opts.onError?.(err, spec.name);
      }
    }
    this.router.apply(policy);
    this.publish();
  }

  /** Counts from a listener thread's router.takeCounts(). */
  addCounts(counts: ReleaseCounts): void {
    const now = this.now();
    for (const [name, c] of Object.entries(counts)) this.windows.get(name)?.add(now, c);
  }

  /** One evaluation round (the timer calls it; tests may too). */
  tick(): Promise<void> {
    this.ticking ??= this.evaluate().finally(() => {
      this.ticking = undefined;
    });
    return this.ticking;
  }

  private async evaluate(): Promise<void> {
    this.addCounts(this.router.takeCounts());
    let changed = false;
    for (const spec of Object.values(this.specs)) {
      try {
        const stored = await this.store.load(spec.name);
        if (stored !== undefined && stored.version !== this.states[spec.name]?.version) {
          this.states[spec.name] = stored; // another instance (or an admin action there) moved it
          changed = true;
        }
        const d = this.decide(spec);
        if (d !== undefined && (await this.commit(spec.name, d.decision, d.next))) changed = true;
      } catch (err) {
        this.opts.onError?.(err, spec.name);
      }
    }
    if (changed) this.publish();
  }

  private decide(spec: ReleaseSpec): { decision: ReleaseDecision; next: Partial<ReleaseState> } | undefined {
    const st = this.states[spec.name];
    if (st === undefined || (st.status !== 'running' && st.status !== 'paused')) return undefined;
    const now = this.now();
    const a = spec.analysis;
    const w = this.windows.get(spec.name)!.sums(now);
    if (a !== undefined && w.canary >= a.min_requests) {
      const rate = w.canaryErrors / w.canary;
      const stableRate = w.stable > 0 ? w.stableErrors / w.stable : 0;
      if (rate > a.max_error_rate && rate > stableRate) {
        return { decision: 'rollback', next: { status: 'rolled_back', reason: `error_rate ${rate.toFixed(4)} > ${a.max_error_rate} (stable ${stableRate.toFixed(4)})` } };
      }
    }
    if (st.status === 'paused' && st.reason !== INSUFFICIENT) return undefined; // an operator's pause holds
    if (now - st.stepStartedAt < spec.step_interval_s * 1000) return undefined;
    const enough = a === undefined || w.canary >= a.min_requests;
    if (!enough) return st.status === 'paused' ? undefined : { decision: 'hold', next: { status: 'paused', reason: INSUFFICIENT } };
    const last = spec.steps.length - 1;
    if (st.step < last) return { decision: 'advance', next: { status: 'running', reason: undefined, step: st.step + 1, stepStartedAt: now } };
    if ((spec.steps[last]!.percent ?? 0) >= 100) return { decision: 'complete', next: { status: 'promoted', reason: 'completed' } };
    return st.status === 'paused' ? { decision: 'continue', next: { status: 'running', reason: undefined } } : undefined;
  }

  /** Compare-and-set of one release's state; false when another instance changed it first. */
  private async commit(name: string, decision: ReleaseDecision, patch: Partial<ReleaseState>, by = 'analysis'): Promise<boolean> {
    const cur = this.states[name]!;
    const next: ReleaseState = { ...cur, ...patch, updatedAt: this.now(), by, version: cur.version + 1 };
    if (next.reason === undefined) delete (next as { reason?: string }).reason;
    if (!(await this.store.save(name, next, cur.version))) {
      const fresh = await this.store.load(name);
      if (fresh !== undefined) this.states[name] = fresh;
      return false;
    }
    this.states[name] = next;
    this.count(name, decision);
    this.opts.onDecision?.(name, decision, next);
    return true;
  }

  /** An operator's action; `by` is the admin token's name (kept in the state and the audit log). */
  async action(name: string, action: ReleaseAction, by: string): Promise<ActionResult> {
    const spec = this.specs[name];
    if (spec === undefined || this.states[name] === undefined) return { ok: false, error: 'unknown_release' };
    try {
      const fresh = await this.store.load(name);
      if (fresh !== undefined) this.states[name] = fresh;
    } catch (err) {
      this.opts.onError?.(err, name);
      return { ok: false, error: 'store_unavailable' };
    }
    const before = this.states[name]!;
    const now = this.now();
    const patch: Partial<ReleaseState> =
      action === 'pause'
        ? { status: 'paused', reason: 'operator' }
        : action === 'resume'
          ? { status: 'running', reason: undefined, stepStartedAt: now }
          : action === 'promote'
            ? { status: 'promoted', reason: 'operator', step: spec.steps.length - 1 }
            : { status: 'aborted', reason: 'operator' };
    // A rollback's failures must not roll a resumed release straight back.
    if (action === 'resume' && (before.status === 'rolled_back' || before.status === 'aborted')) this.windows.get(name)?.clear();
    try {
      if (!(await this.commit(name, action, patch, by))) return { ok: false, error: 'conflict', before };
    } catch (err) {
      this.opts.onError?.(err, name);
      return { ok: false, error: 'store_unavailable', before };
    }
    this.publish();
    return { ok: true, before, after: this.states[name]! };
  }

  /** Re-reads states from the store now (an admin action on another instance announced itself). */
  async refresh(): Promise<void> {
    await this.tick();
  }

  private count(name: string, decision: ReleaseDecision): void {
    let m = this.decisions.get(name);
    if (m === undefined) this.decisions.set(name, (m = new Map()));
    m.set(decision, (m.get(decision) ?? 0) + 1);
  }

  private publish(): void {
    const states = this.snapshot();
    this.router.setStates(states);
    this.opts.onChange?.(states);
  }

  snapshot(): Record<string, ReleaseState> {
    return { ...this.states };
  }

  private percentOf(spec: ReleaseSpec, st: ReleaseState): { percent: number; groups: string[] } {
    if (st.status === 'rolled_back' || st.status === 'aborted') return { percent: 0, groups: [] };
    if (st.status === 'promoted') return { percent: 100, groups: [] };
    let percent = 0;
    const groups: string[] = [];
    for (let i = 0; i <= Math.min(st.step, spec.steps.length - 1); i++) {
      percent = Math.max(percent, spec.steps[i]!.percent ?? 0);
      groups.push(...(spec.steps[i]!.groups ?? []));
    }
    return { percent, groups };
  }

  view(): ReleaseView[] {
    const now = this.now();
    return Object.values(this.specs).flatMap((spec) => {
      const st = this.states[spec.name];
      if (st === undefined) return [];
      const w: WindowSums = this.windows.get(spec.name)!.sums(now);
      const { percent, groups } = this.percentOf(spec, st);
      const total = w.canary + w.stable;
      const v: ReleaseView = {
        name: spec.name,
        routes: spec.routes,
        stable: spec.stable,
        canary: spec.canary,
        status: st.status,
        step: st.step,
        steps: spec.steps,
        percent,
        groups,
        share: total > 0 ? w.canary / total : 0,
        step_started_at: st.stepStartedAt,
        by: st.by,
        canary_side: side(w.canary, w.canaryErrors),
        stable_side: side(w.stable, w.stableErrors),
        decisions: Object.fromEntries(this.decisions.get(spec.name) ?? []),
      };
      if (st.reason !== undefined) v.reason = st.reason;
      if (spec.analysis !== undefined) v.analysis = spec.analysis;
      if (st.status === 'running' && st.step < spec.steps.length) v.next_step_at = st.stepStartedAt + spec.step_interval_s * 1000;
      return [v];
    });
  }

  /** `ward_release_share{release}` (the current step's nominal share, 0..1) and `ward_release_decisions_total{release,decision}`. */
  metricValues(): { share: Record<string, number>; decisions: Record<string, Record<string, number>> } {
    const share: Record<string, number> = {};
    const decisions: Record<string, Record<string, number>> = {};
    for (const spec of Object.values(this.specs)) {
      const st = this.states[spec.name];
      if (st !== undefined) share[spec.name] = this.percentOf(spec, st).percent / 100;
      decisions[spec.name] = Object.fromEntries(this.decisions.get(spec.name) ?? []);
    }
    return { share, decisions };
  }
}
