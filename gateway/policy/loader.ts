// Loads a policy directory: parse → validate → cross-check → freeze. Every problem found
// anywhere is reported (sorted by file, line, column), and a policy is handed out only when
// there is none, with every default applied and every named file already read.

import { createHash } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import { join, relative } from 'node:path';
import type { JWK } from 'jose';
import { crossCheck } from './cross-check.js';
import { PolicyFiles, readAdminTokens, readDevKey, readJwks } from './key-files.js';
import { gatewaySchema, tenantFileSchema } from './schema.js';
import type { AdminToken, LoadResult, Policy, TenantSpec } from './types.js';
import { Locations, walk } from './walker.js';
import { Problems, SourceFile, type Loc } from './yaml-source.js';

type Obj = Record<string, unknown>;

/** `tenants/*.yaml` (and `.yml`), in name order so "defined twice" always names the same file. */
async function tenantFiles(files: PolicyFiles, problems: Problems): Promise<string[]> {
  try {
    const entries = await readdir(join(files.abs, 'tenants'), { withFileTypes: true });
    return entries
      .filter((e) => (e.isFile() || e.isSymbolicLink()) && /\.ya?ml$/.test(e.name) && !e.name.startsWith('.'))
      .map((e) => join('tenants', e.name))
      .sort();
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== 'ENOENT') problems.add({ file: files.show('tenants'), line: 1, col: 1 }, `cannot list tenants/ (${code})`);
    return [];
  }
}

/** Freezes the whole tree, dropping keys left undefined so optional fields are simply absent. */
function deepFreeze<T>(value: T): T {
  if (typeof value !== 'object' || value === null || Object.isFrozen(value)) return value;
  for (const [k, v] of Object.entries(value)) {
    if (v === undefined && !Array.isArray(value)) delete (value as Obj)[k];
    else deepFreeze(v);
  }
  return Object.freeze(value);
}

function hashFiles(files: PolicyFiles): string {
  const h = createHash('sha256');
  for (const path of [...files.read.keys()].sort()) {
    const text = files.read.get(path)!;
    h.update(`${relative(files.abs, path)}\0${Buffer.byteLength(text)}\0`).update(text);
  }
  return h.digest('hex');
}

export async function loadPolicy(dir: string): Promise<LoadResult> {
  const files = new PolicyFiles(dir);
  const problems = new Problems();
  const locs = new Locations();
  const failed = (): LoadResult => ({ ok: false, problems: problems.sorted() });

  const main = await files.text('gateway.yaml');
  if ('error' in main) {
    problems.add({ file: files.show('gateway.yaml'), line: 1, col: 1 }, main.error);
    return failed();
  }
  const src = new SourceFile(files.show('gateway.yaml'), main.text, problems);
  const gateway = src.parsed ? (walk(src.doc.contents, gatewaySchema, [], { src, problems, locs }) as Obj) : undefined;

  // Tenants: gateway.yaml's first, then each tenants/*.yaml; a second definition is an error.
  const tenants: Record<string, TenantSpec | undefined> = Object.create(null);
  const definedAt = new Map<string, Loc>();
  for (const [name, spec] of Object.entries((gateway?.tenants ?? {}) as Obj)) {
    tenants[name] = spec as TenantSpec | undefined;
    definedAt.set(name, locs.key(['tenants', name])!);
  }
  for (const rel of await tenantFiles(files, problems)) {
    const read = await files.text(rel);
    if ('error' in read) {
      problems.add({ file: files.show(rel), line: 1, col: 1 }, read.error);
      continue;
    }
    const tsrc = new SourceFile(files.show(rel), read.text, problems);
    if (!tsrc.parsed) continue;
    const tlocs = new Locations();
    const out = walk(tsrc.doc.contents, tenantFileSchema, [], { src: tsrc, problems, locs: tlocs }) as Obj;
    for (const [name, spec] of Object.entries((out.tenants ?? {}) as Obj)) {
      const at = tlocs.key(['tenants', name])!;
      const first = definedAt.get(name);
      if (first) {
        problems.add(at, `tenant ${JSON.stringify(name)} is already defined at ${first.file}:${first.line}:${first.col}`);
        continue;
      }
      definedAt.set(name, at);
      tenants[name] = spec as TenantSpec | undefined;
    }
  }
  const star: TenantSpec = tenants['*'] ?? { buckets: Object.create(null), concurrency: Object.create(null) };

  if (gateway) {
    crossCheck(
      { gateway, defaultBuckets: Object.keys(star.buckets ?? {}), defaultPools: Object.keys(star.concurrency ?? {}) },
      locs,
      problems,
    );
  }

  // Files the policy names: read now, so the stages never touch the disk.
  const auth = (gateway?.auth ?? {}) as Obj;
  const algorithms = ((auth.algorithms ?? []) as unknown[]).filter((a): a is string => typeof a === 'string');
  const jwks =
    typeof auth.jwks_file === 'string'
      ? await readJwks(files, auth.jwks_file, algorithms, locs.value(['auth', 'jwks_file'])!, problems)
      : undefined;
  let devKey: JWK | undefined;
  if (typeof auth.dev_signing_key === 'string') {
    const at = locs.value(['auth', 'dev_signing_key'])!;
    devKey = await readDevKey(files, auth.dev_signing_key, jwks, algorithms, at, problems);
  }
  const adminSection = (gateway?.admin ?? {}) as Obj;
  const consoleSection = adminSection.console as Obj | undefined;
  let tokens: AdminToken[] | undefined;
  if (typeof consoleSection?.tokens_file === 'string') {
    const at = locs.value(['admin', 'console', 'tokens_file'])!;
    tokens = await readAdminTokens(files, consoleSection.tokens_file, at, problems);
  }

  if (problems.count > 0 || !gateway || !jwks) return failed();

  // "*" is every tenant's default; a named tenant replaces it per bucket name and per pool name.
  // Name-keyed maps have a null prototype (see walker.ts): lookups by any name are safe.
  const byName = <T>(entries: [string, T][]): Record<string, T> => Object.assign(Object.create(null), Object.fromEntries(entries));
  const merged: Record<string, TenantSpec> = byName([['*', star]]);
  for (const [name, t] of Object.entries(tenants)) {
    if (name === '*' || !t) continue;
    merged[name] = {
      buckets: Object.assign(Object.create(null), star.buckets, t.buckets),
      concurrency: Object.assign(Object.create(null), star.concurrency, t.concurrency),
    };
  }
  const named = <T>(m: unknown): Record<string, T> =>
    byName(Object.entries(m as Obj).map(([name, v]) => [name, { name, ...(v as Obj) } as T]));

  const policy: Policy = {
    dir: files.abs,
    hash: hashFiles(files),
    listen: gateway.listen as Policy['listen'],
    admin: {
      host: adminSection.host as string,
      port: adminSection.port as number,
      ...(tokens ? { console: { tokens } } : {}),
    },
    store: gateway.store as Policy['store'],
    auth: {
      jwks,
      issuer: auth.issuer as string,
      audience: auth.audience as string,
      algorithms,
      tenant_claim: auth.tenant_claim as string,
      clock_tolerance_s: auth.clock_tolerance_s as number,
      ...(devKey ? { dev_signing_key: devKey } : {}),
    },
    upstreams: named(gateway.upstreams),
    routes: gateway.routes as Policy['routes'],
    flood: gateway.flood as Policy['flood'],
    tenants: merged,
    e2e: gateway.e2e as Policy['e2e'],
    releases: named(gateway.releases),
    files: [...files.read.keys()].sort(),
  };
  return { ok: true, policy: deepFreeze(policy) };
}
