// What `npm run bench` measures side by side: the upstream alone, ward, nginx and haproxy, each set
// up for the same three jobs (proxy a tenant's request, refuse a spent tenant with 429, drop a banned
// address's connection) and placed on the same cores.

import { runConnectFlood } from './connect-flood.js';
import { spawnFloorProxy } from './floor-proxy.js';
import { startHaproxy, startNginx, type ReferenceSetup } from './references.js';
import { mintToken, startWard, wardAvailable, wardCliPath, writeWardPolicy, type SigningKeys } from './ward.js';

export type TargetName = 'upstream' | 'floor' | 'ward' | 'ward-serial' | 'nginx' | 'haproxy';

export interface BenchTarget {
  readonly name: TargetName;
  readonly port: number;
  /** Root of the process tree whose CPU is counted (for the upstream: the upstream itself). */
  readonly pid: number;
  /** false for the bare upstream and the floor proxy: they have no 429 or ban path (and for
   * ward-serial, whose 429 path is ward's). */
  readonly limits: boolean;
  /** Whether its banned connections are measured, and how it drops them. */
  readonly drops?: 'kernel' | 'userland';
  stop(): Promise<void>;
}

export interface BenchTokens {
  /** A tenant whose bucket and pool never refuse. */
  readonly ok: string;
  /** A tenant whose bucket holds one token a day: every request after the first is a 429. */
  readonly tiny: string;
}

export const BENCH_PATH = '/v1/bench';

export async function benchTokens(keys: SigningKeys): Promise<BenchTokens> {
  return { ok: await mintToken(keys, 'bench'), tiny: await mintToken(keys, 'tiny') };
}

export interface TargetSetup {
  readonly upstreamPort: number;
  readonly keys: SigningKeys;
  readonly tokens: BenchTokens;
  readonly banned: readonly string[];
  readonly workers: number;
  readonly cpus?: string;
  readonly include: ReadonlySet<TargetName>;
  /** `ward` (not ward-serial) runs with --kernel-bans: its drops are the kernel's. */
  readonly kernelBans?: boolean;
  /** Extra node flags for ward (e.g. --cpu-prof). */
  readonly nodeFlags?: readonly string[];
  /** Lines for the report: what was skipped and why. */
  readonly notes: string[];
}

/** ward on the bench policy: JWT auth, a bucket and a concurrency pool on every request, per-address
 * flood rule with bans (127.0.0.1, the load generator, is allow-listed as a trusted NAT would be).
 * `ward` pipelines to the upstream (`pipeline: true`: a uWS server, which takes pipelined requests);
 * `ward-serial` is the same with the default, one request per upstream connection at a time.
 * With `s.kernelBans`, `ward` also runs with --kernel-bans and ward-serial drops in userland, so
 * the bench shows both ways of dropping. */
export async function startBenchWard(s: TargetSetup, name: 'ward' | 'ward-serial' = 'ward'): Promise<BenchTarget> {
  const policy = await writeWardPolicy(
    {
      upstreams: { app: { targets: [`http://127.0.0.1:${s.upstreamPort}`], pipeline: name === 'ward' } },
      routes: [{ name: 'bench', prefix: '/v1/', upstream: 'app', bucket: 'api', concurrency: 'inflight' }],
      // refusal_pace off: the bench measures what answering each 429 costs, as nginx's limit_req
      // answers every one; pacing (which answers a hammering tenant's 429s later) is isolation's.
      flood: { per_ip: { rate: 50, per_s: 1, ban_s: 3600 }, allow: ['127.0.0.1/32'], refusal_pace: false },
      tenants: {
        '*': { buckets: { api: { rate: 100_000_000, per_s: 1, burst: 100_000_000 } }, concurrency: { inflight: 100_000 } },
        tiny: { buckets: { api: { rate: 1, per_s: 86_400, burst: 1 } } },
      },
    },
    s.keys,
  );
  const kernelBans = name === 'ward' && !!s.kernelBans;
  const child = await startWard(policy, { workers: s.workers, cpus: s.cpus, nodeFlags: s.nodeFlags, kernelBans });
  // Refusals never reach the upstream: ward-serial's 429s would be ward's again. Its drops differ
  // only when ward's are the kernel's.
  const limits = name === 'ward';
  const drops = kernelBans ? 'kernel' : limits || s.kernelBans ? 'userland' : undefined;
  const target: BenchTarget = { name, port: policy.port, pid: child.pid, limits, ...(drops ? { drops } : {}), stop: () => child.stop() };
  if (!drops || !s.banned.length) return target;
  // Get the banned addresses banned: their first requests go over the per-address rate.
  const warm = await runConnectFlood({ host: '127.0.0.1', port: policy.port, addresses: s.banned, durationS: 1, path: BENCH_PATH });
  if (warm.dropped + warm.refused === 0) s.notes.push(`${name} did not ban ${s.banned.join(', ')} while warming up (${warm.answered} answered): its drop cost is not measured`);
  return target;
}

export async function startTargets(s: TargetSetup, upstream: BenchTarget): Promise<BenchTarget[]> {
  const out: BenchTarget[] = [];
  if (s.include.has('upstream')) out.push(upstream);
  if (s.include.has('ward')) {
    if (!wardAvailable()) s.notes.push(`ward skipped: ${wardCliPath()} does not exist (build the gateway first)`);
    else {
      try {
        out.push(await startBenchWard(s));
      } catch (e) {
        s.notes.push(`ward skipped: it did not start: ${(e as Error).message.split('\n').slice(0, 3).join(' / ')}`);
      }
    }
  }
  if (s.include.has('ward-serial') && s.workers === 1 && wardAvailable()) {
    try {
      out.push(await startBenchWard(s, 'ward-serial'));
    } catch (e) {
      s.notes.push(`ward-serial skipped: it did not start: ${(e as Error).message.split('\n')[0]}`);
    }
  }
  // The floor proxy is single-threaded: it has no place in the two-worker comparison.
  if (s.include.has('floor') && s.workers === 1) {
    try {
      const f = await spawnFloorProxy(s.upstreamPort, s.cpus);
      out.push({ name: 'floor', port: f.port, pid: f.pid, limits: false, stop: () => f.stop() });
    } catch (e) {
      s.notes.push(`floor skipped: ${(e as Error).message.split('\n')[0]}`);
    }
  }
  const ref: ReferenceSetup = { upstreamPort: s.upstreamPort, tenantToken: s.tokens.ok, tinyToken: s.tokens.tiny, banned: s.banned, workers: s.workers, cpus: s.cpus };
  for (const [name, start] of [
    ['nginx', startNginx],
    ['haproxy', startHaproxy],
  ] as const) {
    if (!s.include.has(name)) continue;
    try {
      const r = await start(ref);
      out.push({ name, port: r.port, pid: r.pid, limits: true, drops: 'userland', stop: () => r.stop() });
    } catch (e) {
      s.notes.push(`${name} skipped: ${(e as Error).message.split('\n').slice(0, 3).join(' / ')}`);
    }
  }
  return out;
}
