// The request path, in order. One Pipeline per policy version: everything a stage needs is
// compiled here once and frozen; a request keeps the Pipeline it started with, so a hot reload
// never changes a request mid-flight.
//
//   admit   flood guard (deny/allow CIDRs, per-address rate, bans)   memory only; drop, no answer
//           body size (Content-Length)                                413
//   route   first matching prefix                                     404
//   auth    bearer JWT, verified-token cache                          401
//   limits  token bucket + concurrency lease, one store call          429
//   proxy   (the caller: http adapter, websocket behaviour)           502 / 504

import type { Policy, RouteSpec, TenantSpec } from '../policy/types.js';
import type { AdmitPlan, Admission, Lease, LimitStore } from '../store/types.js';
import { bucketKey, poolKey } from '../store/types.js';
import { RouteTable, hasDotSegment } from '../stages/route/route-table.js';
import { TokenVerifier, bearerToken, type Identity } from '../stages/auth/token-verifier.js';
import { FloodVerdict, type FloodGuard } from '../stages/admit/flood-guard.js';
import type { EdgeMetrics, Outcome } from '../metrics/edge-metrics.js';
import type { Cell } from '../metrics/hot-counters.js';
import type { AdmitOutcome, Grant, RequestHead, TenantLimits, Verdict } from './types.js';
import * as verdicts from './verdicts.js';
import { RefusalPace, type PaceCounts, type RefusalPaceSpec } from '../stages/admit/refusal-pace.js';

interface PaceConfig {
  readonly spec: RefusalPaceSpec;
  readonly counts: PaceCounts;
}

export interface PipelineDeps {
  readonly store: LimitStore;
  readonly flood: FloodGuard;
  readonly metrics: EdgeMetrics;
  /** Release routing: the upstream a tenant's request on a route goes to (canary or stable). */
  readonly resolveUpstream?: (route: RouteSpec, tenant: string) => string;
  /** An address the flood guard has banned, for `forMs` more (`--kernel-bans`: the kernel takes it
   * from here). Called when the ban starts and whenever a banned address still reaches ward (its
   * kernel ban is on its way, failed, or was lost). The bytes are the caller's: copy to keep them. */
  readonly onBan?: (remote: Uint8Array, forMs: number) => void;
}

/** Header lookup in the flat [name, value...] list the edge copied. */
export function headerOf(head: RequestHead, name: string): string | undefined {
  const h = head.headers;
  for (let i = 0; i < h.length; i += 2) if (h[i] === name) return h[i + 1];
  return undefined;
}

export class Pipeline {
  readonly routes: RouteTable;
  readonly verifier: TokenVerifier;
  private readonly tenants = new Map<string, TenantState>();
  /** Requests on public routes count under tenant "". */
  private readonly anonymous: TenantState;
  /** flood.refusal_pace, when on and enforced. */
  private readonly pace: PaceConfig | undefined;

  constructor(
    readonly policy: Policy,
    readonly deps: PipelineDeps,
  ) {
    this.routes = new RouteTable(policy.routes);
    this.verifier = new TokenVerifier(policy.auth);
    this.anonymous = new TenantState('', { buckets: {}, concurrency: {} }, deps.metrics, undefined);
    const m = deps.metrics;
    if (policy.flood.enforce && policy.flood.refusal_pace) {
      this.pace = { spec: policy.flood.refusal_pace, counts: { waited: m.paced.cell('waited'), overflow: m.paced.cell('overflow') } };
    }
    const cells = (reason: string) => ({ dropped: m.dropped.cell(reason), shadow: m.shadow.cell('flood', reason) });
    this.dropCells = { denied: cells('denied'), banned: cells('banned'), flooding: cells('flooding') };
  }

  private readonly dropCells: Record<'denied' | 'banned' | 'flooding', { dropped: Cell; shadow: Cell }>;

  /** Stage 1, before any per-tenant work: a verdict to drop or refuse, or undefined to go on. */
  screen(head: RequestHead, nowMs: number): Verdict | undefined {
    return this.screenAddress(head.remoteBytes, nowMs) ?? this.screenSizes(head);
  }

  /** The flood guard alone (deny/allow, per-address rate, bans): the drop verdict, or undefined.
   * The cheapest check of all, so the edge runs it before copying anything from the request. */
  screenAddress(remote: Uint8Array, nowMs: number): Verdict | undefined {
    const v = this.deps.flood.check(remote, nowMs);
    if (v < FloodVerdict.Denied) return undefined;
    const cell = v === FloodVerdict.Denied ? this.dropCells.denied : v === FloodVerdict.Banned ? this.dropCells.banned : this.dropCells.flooding;
    if (this.policy.flood.enforce) {
      cell.dropped.n++;
      if (v !== FloodVerdict.Denied) this.deps.onBan?.(remote, this.deps.flood.banEndsAt - nowMs);
      return verdicts.DROP;
    }
    cell.shadow.n++;
    return undefined;
  }

  /** Request head and body size limits (431, 413) and unambiguous body framing (400, 501), before
   * any per-tenant work. ward re-frames every body it forwards, so a request whose length could be
   * read two ways (different Content-Length values, a transfer coding other than one `chunked`)
   * is refused rather than guessed at. */
  screenSizes(head: RequestHead): Verdict | undefined {
    if (head.headBytes > this.policy.flood.max_header_bytes) {
      this.deps.metrics.requests.inc('', '', 'headers_too_large');
      return verdicts.HEADERS_TOO_LARGE;
    }
    let cl: string | undefined;
    let codings = 0;
    const h = head.headers;
    for (let i = 0; i < h.length; i += 2) {
      const name = h[i];
      if (name === 'content-length') {
        if (cl !== undefined && cl !== h[i + 1]) return this.badFraming(verdicts.BAD_REQUEST);
        cl = h[i + 1];
      } else if (name === 'transfer-encoding' && (++codings > 1 || !CHUNKED_ONLY.test(h[i + 1]!))) {
        return this.badFraming(verdicts.UNSUPPORTED_TRANSFER_CODING);
      }
    }
    if (cl !== undefined && Number(cl) > this.policy.flood.max_body_bytes) {
      this.deps.metrics.requests.inc('', '', 'body_too_large');
      return verdicts.BODY_TOO_LARGE;
    }
    return undefined;
  }

  /** The whole chain for one request or upgrade. */
  admit(head: RequestHead): AdmitOutcome | Promise<AdmitOutcome> {
    const screened = this.screen(head, Date.now());
    if (screened !== undefined) return screened;
    return this.admitScreened(head);
  }

  /** The chain after screen(): route, auth, limits. */
  admitScreened(head: RequestHead): AdmitOutcome | Promise<AdmitOutcome> {
    const now = Date.now();
    if (hasDotSegment(head.url)) return this.refused(verdicts.BAD_PATH, '', 'bad_path');
    const route = this.routes.match(head.method, head.url);
    if (route === undefined) return this.refused(verdicts.NO_ROUTE, '', 'no_route');
    if (route.websocket !== head.upgrade) {
      if (route.websocket) return this.refused(verdicts.UPGRADE_REQUIRED, route.name, 'upgrade_required');
      return this.refused(verdicts.NO_ROUTE, route.name, 'no_route');
    }
    if (route.public) return this.grant(route, this.anonymous, undefined, undefined);
    const id = this.authenticate(head, now);
    if (id === null) return this.refused(verdicts.UNAUTHORIZED, route.name, 'unauthorized');
    if (!(id instanceof Promise)) return this.limit(route, id, now);
    return id.then((v) => (v === null ? this.refused(verdicts.UNAUTHORIZED, route.name, 'unauthorized') : this.limit(route, v, Date.now())));
  }

  /** The caller's verified identity (from the cache when seen before), or null. */
  authenticate(head: RequestHead, now: number): Identity | null | Promise<Identity | null> {
    const token = this.tokenOf(head);
    if (token === undefined) {
      this.deps.metrics.authFailures.inc('missing');
      return null;
    }
    const cached = this.verifier.lookup(token, now);
    if (cached === null) {
      this.deps.metrics.authFailures.inc('rejected_cached');
      return null;
    }
    if (cached !== undefined) return cached;
    return this.verifier.verify(token, (reason) => this.deps.metrics.authFailures.inc(reason));
  }

  /** The tenant state of a verified identity under this policy version. */
  tenantOf(id: Identity): TenantState {
    let t = id.attached as TenantState | undefined;
    if (t === undefined) id.attached = t = this.limitsFor(id.tenant);
    return t;
  }

  /** The tenant's limits under this policy version (built once per tenant). */
  limitsFor(tenant: string): TenantState {
    let t = this.tenants.get(tenant);
    if (t === undefined) {
      // Bounded: past MAX_TENANT_STATES the table starts over (states are rebuilt on demand;
      // verified tokens keep theirs), so a million tenants cannot grow this without limit.
      if (this.tenants.size >= MAX_TENANT_STATES) this.tenants.clear();
      const spec = this.policy.tenants[tenant] ?? this.policy.tenants['*']!;
      t = new TenantState(tenant, spec, this.deps.metrics, this.pace);
      this.tenants.set(tenant, t);
    }
    return t;
  }

  /** [tenant, pool, store key] for every pool of every tenant this version has seen (metrics). */
  touchedPools(): Array<[string, string, string]> {
    const out: Array<[string, string, string]> = [];
    for (const t of this.tenants.values()) {
      if (this.deps.metrics.tenantLabel(t.tenant) === '_other') continue; // past the metrics cap
      for (const name of t.poolNames()) out.push([t.tenant, name, poolKey(t.tenant, name)]);
    }
    return out;
  }

  private tokenOf(head: RequestHead): string | undefined {
    const auth = headerOf(head, 'authorization');
    if (auth !== undefined) return bearerToken(auth);
    if (head.upgrade && head.query.length > 0) {
      // Browsers cannot set headers on a WebSocket: accept ?access_token= on upgrades only.
      const t = new URLSearchParams(head.query).get('access_token');
      if (t) return t;
    }
    return undefined;
  }

  private limit(route: RouteSpec, id: Identity, now: number): AdmitOutcome | Promise<AdmitOutcome> {
    const t = this.tenantOf(id);
    const plan = t.routePlan(route);
    if (plan === EMPTY_PLAN) return this.grant(route, t, id.sub, undefined);
    const a = this.deps.store.admit(plan, now);
    if (a instanceof Promise) return a.then((adm) => this.decide(route, t, id.sub, plan, adm));
    return this.decide(route, t, id.sub, plan, a);
  }

  private decide(route: RouteSpec, t: TenantState, sub: string | undefined, plan: AdmitPlan, a: Admission): AdmitOutcome {
    if (a.refused !== undefined) {
      const reason = a.refused === 'bucket' ? 'rate_limited' : 'concurrency_limited';
      if (!a.ok) {
        t.cell(route, reason).n++;
        return t.paced(a.refused === 'bucket' ? verdicts.rateLimited(plan.bucket!, a) : verdicts.concurrencyLimited(plan.pool!.name));
      }
      this.deps.metrics.shadow.inc(`route:${route.name}`, reason);
    }
    return this.grant(route, t, sub, a.lease);
  }

  private grant(route: RouteSpec, t: TenantState, sub: string | undefined, lease: Lease | undefined): Grant {
    const upstream = this.deps.resolveUpstream && t !== this.anonymous ? this.deps.resolveUpstream(route, t.tenant) : route.upstream;
    return new RequestGrant(t, sub, route, upstream, this.deps.store, lease);
  }

  /** Refusals before a tenant is known count under tenant "". */
  private badFraming(v: Verdict): Verdict {
    this.deps.metrics.requests.inc('', '', 'bad_request');
    return v;
  }

  private refused(v: Verdict, route: string, outcome: Outcome): Verdict {
    if (!v.drop) this.deps.metrics.requests.inc('', route, outcome);
    return v;
  }
}

const MAX_TENANT_STATES = 100_000;
const CHUNKED_ONLY = /^[ \t]*chunked[ \t]*$/i;

const EMPTY_PLAN: AdmitPlan = Object.freeze({ tenant: '', enforce: true });

/** One tenant under one policy version: its specs, its per-route plans, its counter cells. */
export class TenantState implements TenantLimits {
  // Built lazily: a tenant seen once costs a few hundred bytes, not four Maps.
  private plans: Map<RouteSpec, AdmitPlan> | undefined;
  /** Bucket plans by "b:NAME", pool plans by "p:NAME". */
  private named: Map<string, AdmitPlan | undefined> | undefined;
  private cells: Map<RouteSpec, Map<Outcome, Cell>> | undefined;
  private pace: RefusalPace | undefined;
  /** This tenant's copies of the shared refusal verdicts, carrying its pace. */
  private pacedVerdicts: WeakMap<Verdict, Verdict> | undefined;

  constructor(
    readonly tenant: string,
    private readonly spec: TenantSpec,
    private readonly metrics: EdgeMetrics | undefined,
    private readonly paceConfig: PaceConfig | undefined,
  ) {}

  /** The refusal `v` as this tenant's: the same answer, carrying the tenant's pace (flood.refusal_pace). */
  paced(v: Verdict): Verdict {
    const c = this.paceConfig;
    if (c === undefined) return v;
    const m = (this.pacedVerdicts ??= new WeakMap());
    let p = m.get(v);
    if (p === undefined) {
      this.pace ??= new RefusalPace(c.spec, c.counts);
      m.set(v, (p = Object.freeze({ ...v, pace: this.pace })));
    }
    return p;
  }

  poolNames(): string[] {
    return Object.keys(this.spec.concurrency);
  }

  routePlan(route: RouteSpec): AdmitPlan {
    const plans = (this.plans ??= new Map());
    let p = plans.get(route);
    if (p === undefined) {
      const bucket = route.bucket !== undefined ? this.bucketPlan(route.bucket)?.bucket : undefined;
      const pool = route.concurrency !== undefined ? this.poolPlan(route.concurrency)?.pool : undefined;
      p = bucket === undefined && pool === undefined ? EMPTY_PLAN : Object.freeze({ tenant: this.tenant, bucket, pool, enforce: route.enforce });
      plans.set(route, p);
    }
    return p;
  }

  bucketPlan(name: string): AdmitPlan | undefined {
    return this.plan('b:' + name, () => {
      const b = this.spec.buckets[name];
      return b && { bucket: Object.freeze({ name, key: bucketKey(this.tenant, name), rate: b.rate, perS: b.per_s, burst: b.burst }) };
    });
  }

  poolPlan(name: string): AdmitPlan | undefined {
    return this.plan('p:' + name, () => {
      const limit = this.spec.concurrency[name];
      return limit === undefined ? undefined : { pool: Object.freeze({ name, key: poolKey(this.tenant, name), limit }) };
    });
  }

  private plan(key: string, make: () => Pick<AdmitPlan, 'bucket' | 'pool'> | undefined): AdmitPlan | undefined {
    const named = (this.named ??= new Map());
    if (!named.has(key)) {
      const part = make();
      named.set(key, part && Object.freeze({ tenant: this.tenant, enforce: true, ...part }));
    }
    return named.get(key);
  }

  /** The ward_requests_total cell for (this tenant, route, outcome). */
  cell(route: RouteSpec, outcome: Outcome): Cell {
    const cells = (this.cells ??= new Map());
    let m = cells.get(route);
    if (m === undefined) cells.set(route, (m = new Map()));
    let c = m.get(outcome);
    if (c === undefined) {
      c = this.metrics ? this.metrics.requests.cell(this.metrics.tenantLabel(this.tenant), route.name, outcome) : { n: 0 };
      m.set(outcome, c);
    }
    return c;
  }
}

/** An admitted request: finish() releases its leases exactly once, however the request ends. */
class RequestGrant implements Grant {
  readonly leases: Lease[];
  private done = false;

  constructor(
    readonly limits: TenantState,
    readonly sub: string | undefined,
    readonly route: RouteSpec,
    readonly upstream: string,
    readonly store: LimitStore,
    lease: Lease | undefined,
  ) {
    this.leases = lease === undefined ? [] : [lease];
  }

  get tenant(): string {
    return this.limits.tenant;
  }

  record(outcome: Outcome): void {
    this.limits.cell(this.route, outcome).n++;
  }

  finish(): void {
    if (this.done) return;
    this.done = true;
    for (const l of this.leases) this.store.release(l);
    this.leases.length = 0;
  }
}
