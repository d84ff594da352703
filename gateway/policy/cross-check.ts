// Checks that span sections: names one part of the policy gives to another must exist.
// It runs on the walker's best-effort result, so a section with its own problem still has
// its names declared and does not cascade into "unknown upstream" noise.

import { hint } from './walker.js';
import type { Locations, Path } from './walker.js';
import type { Loc, Problems } from './yaml-source.js';

type Obj = Record<string, unknown>;

const asObj = (v: unknown): Obj | undefined =>
  typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Obj) : undefined;
const asList = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);
const asStr = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);

export interface CrossCheckInput {
  /** The walked gateway.yaml. */
  readonly gateway: Obj;
  /** Bucket and pool names of `tenants."*"` (every one a route names must be there). */
  readonly defaultBuckets: readonly string[];
  readonly defaultPools: readonly string[];
}

export function crossCheck({ gateway, defaultBuckets, defaultPools }: CrossCheckInput, locs: Locations, problems: Problems): void {
  const report = (path: Path, message: string): void => {
    const at: Loc | undefined = locs.value(path);
    if (at) problems.add(at, message);
  };
  const upstreams = Object.keys(asObj(gateway.upstreams) ?? {});
  const unknownUpstream = (path: Path, name: string | undefined): void => {
    if (name === undefined || upstreams.includes(name)) return;
    const tail = upstreams.length ? hint(name, upstreams, 'defined') : ' (no upstreams are defined)';
    report(path, `unknown upstream ${JSON.stringify(name)}${tail}`);
  };
  const needDefault = (path: Path, name: string | undefined, kind: 'bucket' | 'pool'): void => {
    const have = kind === 'bucket' ? defaultBuckets : defaultPools;
    if (name === undefined || have.includes(name)) return;
    const section = kind === 'bucket' ? 'buckets' : 'concurrency';
    const near = hint(name, have, 'defined');
    const why = near.startsWith(' (did') ? near : ` (every ${kind} a route names needs a default there)`;
    report(path, `${kind} ${JSON.stringify(name)} is not defined in tenants."*".${section}${why}`);
  };

  // Routes: unique names; upstream, buckets and pools that exist.
  const routes = asList(gateway.routes);
  const routeUpstream = new Map<string, string | undefined>();
  const firstRoute = new Map<string, number>();
  routes.forEach((r, i) => {
    const route = asObj(r);
    if (!route) return;
    const name = asStr(route.name);
    if (name !== undefined) {
      const first = firstRoute.get(name);
      if (first !== undefined) report(['routes', i, 'name'], `route name ${JSON.stringify(name)} is already used by routes[${first}]`);
      else {
        firstRoute.set(name, i);
        routeUpstream.set(name, asStr(route.upstream));
      }
    }
    unknownUpstream(['routes', i, 'upstream'], asStr(route.upstream));
    needDefault(['routes', i, 'bucket'], asStr(route.bucket), 'bucket');
    needDefault(['routes', i, 'message_bucket'], asStr(route.message_bucket), 'bucket');
    needDefault(['routes', i, 'concurrency'], asStr(route.concurrency), 'pool');
    needDefault(['routes', i, 'call_pool'], asStr(route.call_pool), 'pool');
  });

  // Releases: upstreams and routes that exist, groups that are defined, steps that only move forward.
  const releaseOf = new Map<string, string>();
  for (const [name, r] of Object.entries(asObj(gateway.releases) ?? {})) {
    const rel = asObj(r);
    if (!rel) continue;
    const base = ['releases', name];
    const stable = asStr(rel.stable);
    const canary = asStr(rel.canary);
    unknownUpstream([...base, 'stable'], stable);
    unknownUpstream([...base, 'canary'], canary);
    if (canary !== undefined && canary === stable) report([...base, 'canary'], `the canary upstream must differ from stable ("${stable}")`);
    asList(rel.routes).forEach((rn, j) => {
      const route = asStr(rn);
      if (route === undefined) return;
      const at = [...base, 'routes', j];
      if (!routeUpstream.has(route)) {
        report(at, `unknown route ${JSON.stringify(route)}${hint(route, [...routeUpstream.keys()], 'defined')}`);
        return;
      }
      const goesTo = routeUpstream.get(route);
      if (stable !== undefined && goesTo !== undefined && goesTo !== stable) {
        report(at, `route "${route}" goes to upstream "${goesTo}", not to this release's stable upstream "${stable}"`);
      }
      const other = releaseOf.get(route);
      if (other !== undefined) report(at, `route "${route}" is already in release "${other}"`);
      else releaseOf.set(route, name);
    });
    const groups = asObj(rel.tenant_groups) ?? {};
    for (const [group, members] of Object.entries(groups)) {
      asList(members).forEach((m, k) => {
        if (m === '*') report([...base, 'tenant_groups', group, k], '"*" is the default for every tenant, not a tenant (use a percent step for everyone)');
      });
    }
    let highest = -1;
    asList(rel.steps).forEach((s, k) => {
      const step = asObj(s);
      if (!step) return;
      asList(step.groups).forEach((g, m) => {
        const group = asStr(g);
        if (group !== undefined && !Object.hasOwn(groups, group)) {
          report([...base, 'steps', k, 'groups', m], `unknown tenant group ${JSON.stringify(group)}${hint(group, Object.keys(groups), 'defined')}`);
        }
      });
      const pct = step.percent;
      if (typeof pct !== 'number') return;
      if (pct < highest) report([...base, 'steps', k, 'percent'], `percent ${pct} is lower than an earlier step's ${highest}: a release only moves forward`);
      highest = Math.max(highest, pct);
    });
  }

  // Two listeners on one port cannot both bind.
  const listen = asObj(gateway.listen);
  const admin = asObj(gateway.admin);
  if (listen && admin && typeof listen.port === 'number' && listen.port !== 0 && listen.port === admin.port) {
    const wild = (h: unknown): boolean => h === '0.0.0.0' || h === '::';
    if (listen.host === admin.host || wild(listen.host) || wild(admin.host)) {
      const at = locs.value(['admin', 'port']) ? ['admin', 'port'] : ['listen', 'port'];
      report(at, `admin.port ${admin.port} is also listen.port: the two need different ports`);
    }
  }
}
