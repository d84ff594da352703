// Active health checks, once per `ward serve` instance (main thread): every `interval_ms` each
// upstream with `health.active` gets a round of `GET path` probes, one fresh connection per
// target; `fall` failures in a row mark a target down, `rise` passes bring it back. Results go
// into the upstream's shared TargetTable, which every listener thread reads: nothing is posted.
//
// The false-detection guard, on top of Envoy's panic threshold and max ejection percent:
// - a round during which this thread's event loop stalled (or the clock jumped) for half a probe
//   timeout or more is void: its timeouts may be ward's, not the target's;
// - when at least 80 % of all probed targets, spread over two or more upstreams, fail at once,
//   the fault is most likely ward's own network: no target is marked down, every table is frozen
//   (no passive ejections either) on the last good set, and readiness says health_detector_suspect.

import http from 'node:http';
import https from 'node:https';
import type { ActiveHealthSpec } from '../policy/types.js';
import { sharedLoopWatch, type LoopWatch } from './loop-watch.js';
import { clockNow, FLAG_MAINT, I_EJ_ACTIVE, I_FLAGS, I_PROBE, T_PROBE_OK, T_RETURNED } from './target-table.js';
import type { UpstreamGroup } from './upstream-group.js';
import { poolOrigin } from './upstream-registry.js';

export interface HealthCheckedSet {
  groups(): UpstreamGroup<unknown>[];
  onApply(listener: () => void): () => void;
  panicReasons(): string[];
}

export interface HealthCheckerOptions {
  loopWatch?: LoopWatch;
  /** Share of all probed targets failing in one sweep that points at ward's own network (default 0.8). */
  suspectShare?: number;
  /** Called on every state change worth a log line. */
  onEvent?: (event: { kind: 'down' | 'up' | 'voided' | 'suspect' | 'unsuspect'; upstream?: string; target?: string; stallMs?: number }) => void;
}

interface Streak {
  ok: number;
  fail: number;
  last: boolean | undefined;
}

interface Schedule {
  group: UpstreamGroup<unknown>;
  /** clockNow() ms when its next round is due. */
  due: number;
}

interface Round {
  group: UpstreamGroup<unknown>;
  active: ActiveHealthSpec;
  results: Array<{ ok: boolean; at: number } | undefined>;
}

export interface HealthCheckerStats {
  rounds: number;
  voidedRounds: number;
  suspectSweeps: number;
}

/** One probe: true when the target answered 2xx within the timeout. */
export function probeTarget(url: string, active: ActiveHealthSpec, inFlight?: Set<() => void>): Promise<boolean> {
  return new Promise((resolve) => {
    const u = new URL(poolOrigin(url));
    const mod = u.protocol === 'https:' ? https : http;
    let done = false;
    const finish = (ok: boolean): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      inFlight?.delete(abort);
      req.destroy();
      resolve(ok);
    };
    const abort = (): void => finish(false);
    const req = mod.request(
      { hostname: u.hostname.replace(/^\[|\]$/g, ''), port: u.port, path: active.path, method: 'GET', agent: false, headers: { 'user-agent': 'ward-health-check', connection: 'close' } },
      (res) => {
        const ok = res.statusCode !== undefined && res.statusCode >= 200 && res.statusCode < 300;
        res.on('end', () => finish(ok));
        res.on('error', abort);
        res.resume();
      },
    );
    req.on('error', abort);
    const timer = setTimeout(abort, active.timeout_ms);
    inFlight?.add(abort);
    req.end();
  });
}

export class HealthChecker {
  private readonly schedules = new Map<string, Schedule>();
  private timer: NodeJS.Timeout | undefined;
  private sweeping = false;
  private readonly streaks = new Map<string, Streak>();
  private readonly probes = new Set<() => void>();
  private readonly watch: LoopWatch;
  private readonly share: number;
  private unsubscribe: (() => void) | undefined;
  private stopped = true;
  private suspectNow = false;
  readonly stats: HealthCheckerStats = { rounds: 0, voidedRounds: 0, suspectSweeps: 0 };

  constructor(
    private readonly set: HealthCheckedSet,
    private readonly opts: HealthCheckerOptions = {},
  ) {
    this.watch = opts.loopWatch ?? sharedLoopWatch();
    this.share = opts.suspectShare ?? 0.8;
  }

  start(): this {
    if (!this.stopped) return this;
    this.stopped = false;
    if (!this.watch.running) this.watch.start();
    this.unsubscribe = this.set.onApply(() => this.sync());
    this.sync();
    return this;
  }

  stop(): void {
    this.stopped = true;
    this.unsubscribe?.();
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    for (const s of this.schedules.values()) s.group.table.probing = false;
    this.schedules.clear();
    for (const abort of [...this.probes]) abort();
  }

  get suspect(): boolean {
    return this.suspectNow;
  }

  /** What /readyz adds to `degraded`: `upstream_panic:NAME` and `health_detector_suspect`. */
  readinessReasons(): string[] {
    const out = this.set.panicReasons();
    if (this.suspectNow) out.push('health_detector_suspect');
    return out;
  }

  /** Follows the registry after a reload: new upstreams are probed in the next sweep, removed ones stop. */
  private sync(): void {
    if (this.stopped) return;
    const seen = new Set<string>();
    for (const g of this.set.groups()) {
      if (g.spec.health?.active === undefined) continue;
      seen.add(g.name);
      const s = this.schedules.get(g.name);
      if (s === undefined) this.schedules.set(g.name, { group: g, due: 0 });
      else s.group = g;
      g.table.probing = true;
      if (this.suspectNow) g.table.frozen = true;
    }
    for (const [name, s] of this.schedules) {
      if (seen.has(name)) continue;
      s.group.table.probing = false;
      this.schedules.delete(name);
    }
    this.arm();
  }

  /** Sets the timer for the next sweep: when the earliest round is due. */
  private arm(): void {
    if (this.stopped || this.sweeping) return;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    let next = Infinity;
    for (const s of this.schedules.values()) next = Math.min(next, s.due);
    if (next === Infinity) return;
    this.timer = setTimeout(() => void this.sweep(), Math.max(0, next - clockNow()));
    this.timer.unref();
  }

  /**
   * One sweep: every upstream whose round is due is probed at the same time, so "most targets of
   * every upstream fail at once" is judged on one moment, not on rounds far apart.
   */
  private async sweep(): Promise<void> {
    this.timer = undefined;
    this.sweeping = true;
    const start = clockNow();
    const due = [...this.schedules.values()].filter((s) => s.due <= start + 5);
    for (const s of due) s.due = start + s.group.spec.health!.active!.interval_ms;
    const rounds = await Promise.all(due.map((s) => this.round(s.group)));
    this.sweeping = false;
    if (this.stopped) return;
    const stallMs = this.watch.stallWithin(start);
    const valid: Round[] = [];
    for (const r of rounds) {
      this.stats.rounds++;
      if (stallMs >= r.active.timeout_ms / 2) {
        // Ward itself stood still while these probes waited: their timeouts prove nothing.
        this.stats.voidedRounds++;
        r.group.table.push('voided', -1);
        this.opts.onEvent?.({ kind: 'voided', upstream: r.group.name, stallMs });
        continue;
      }
      valid.push(r);
      r.results.forEach((x, i) => {
        if (x !== undefined) this.streak(r.group.name, r.group.targets[i]!.url).last = x.ok;
      });
    }
    if (valid.length > 0 && !this.sweepSuspect()) {
      for (const r of valid) r.results.forEach((x, i) => x !== undefined && this.apply(r.group, i, x.ok, x.at, r.active));
    }
    this.arm();
  }

  private async round(g: UpstreamGroup<unknown>): Promise<Round> {
    const active = g.spec.health!.active!;
    const t = g.table;
    const results = await Promise.all(
      g.targets.map((x) => ((t.get(x.index, I_FLAGS) & FLAG_MAINT) !== 0 ? undefined : probeTarget(x.url, active, this.probes).then((ok) => ({ ok, at: clockNow() })))),
    );
    return { group: g, active, results };
  }

  private streak(upstream: string, url: string): Streak {
    const key = `${upstream}\n${url}`;
    let s = this.streaks.get(key);
    if (s === undefined) {
      s = { ok: 0, fail: 0, last: undefined };
      this.streaks.set(key, s);
    }
    return s;
  }

  private apply(g: UpstreamGroup<unknown>, i: number, ok: boolean, at: number, active: ActiveHealthSpec): void {
    const t = g.table;
    const s = this.streak(g.name, g.targets[i]!.url);
    const state = t.get(i, I_PROBE);
    if (ok) {
      s.ok++;
      s.fail = 0;
      t.setTime(i, T_PROBE_OK, at);
      if (state === 0) t.set(i, I_PROBE, 1);
      else if (state === 2 && s.ok >= active.rise) {
        t.setTime(i, T_RETURNED, at);
        t.set(i, I_PROBE, 1);
        t.push('up', i, 0, undefined, at);
        this.opts.onEvent?.({ kind: 'up', upstream: g.name, target: g.targets[i]!.url });
      }
    } else {
      s.fail++;
      s.ok = 0;
      if (state !== 2 && s.fail >= active.fall) {
        t.set(i, I_PROBE, 2);
        t.add(i, I_EJ_ACTIVE, 1);
        t.push('down', i, 0, 'probe', at);
        this.opts.onEvent?.({ kind: 'down', upstream: g.name, target: g.targets[i]!.url });
      }
    }
  }

  /** After a round: does the latest result of every probed target point at ward's own network? */
  private sweepSuspect(): boolean {
    let total = 0;
    let failing = 0;
    const failingUpstreams = new Set<string>();
    for (const s of this.schedules.values()) {
      for (const x of s.group.targets) {
        const last = this.streaks.get(`${s.group.name}\n${x.url}`)?.last;
        if (last === undefined) continue;
        total++;
        if (!last) {
          failing++;
          failingUpstreams.add(s.group.name);
        }
      }
    }
    const suspect = total > 0 && failing >= this.share * total && failingUpstreams.size >= 2;
    if (suspect !== this.suspectNow) {
      this.suspectNow = suspect;
      for (const g of this.set.groups()) {
        g.table.frozen = suspect;
        g.table.push(suspect ? 'frozen' : 'unfrozen', -1);
      }
      this.opts.onEvent?.({ kind: suspect ? 'suspect' : 'unsuspect' });
    }
    if (suspect) this.stats.suspectSweeps++;
    return suspect;
  }
}
