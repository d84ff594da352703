// How ward grows with what it tracks: for 1, 10k and 1M distinct tenants and source addresses, a
// fresh ward gets one request from each of N addresses (each address then has a flood counter), then
// wrk rotates over N tenants' tokens (each tenant then has a bucket). Reported: RSS after each phase,
// bytes per tracked address and per tenant, and req/s while rotating over N tenants.

import { createPrivateKey, sign, type KeyObject } from 'node:crypto';
import { BENCH_PATH } from './bench-targets.js';
import { runConnectFlood } from './connect-flood.js';
import { treeRssBytes } from './cpu.js';
import type { Progress } from './progress.js';
import type { Table } from './report.js';
import { AUDIENCE, ISSUER, startWard, writeWardPolicy, type SigningKeys } from './ward.js';
import { runWrk } from './wrk.js';

export interface ScalingRow {
  readonly n: number;
  readonly rssStartMb: number;
  readonly rssAfterAddressesMb: number;
  readonly rssAfterTenantsMb: number;
  readonly bytesPerAddress: number;
  readonly bytesPerTenant: number;
  readonly rps: number;
  /** Requests of the req/s measurement. */
  readonly requests: number;
  /** Requests sent in all (each to the next tenant in the rotation): ≥ N means every tenant has a bucket. */
  readonly seen: number;
}

export interface ScalingOptions {
  readonly upstreamPort: number;
  readonly keys: SigningKeys;
  readonly cpus: string;
  readonly loadgenCpus: string;
  readonly durationS: number;
  readonly sizes?: readonly number[];
  readonly progress: Progress;
  readonly notes: string[];
}

/** Longest time spent making sure every one of N tenants sent a request. */
const MAX_COVER_S = 900;

const b64 = (s: string | Buffer) => Buffer.from(s).toString('base64url');

/** Many tokens fast: node:crypto Ed25519 straight on the JWS signing input (same shape as mintToken). */
export function mintTokensFast(keys: SigningKeys, count: number, tenantOf: (i: number) => string): string[] {
  const key: KeyObject = createPrivateKey({ key: keys.privateJwk as never, format: 'jwk' });
  const header = b64(JSON.stringify({ alg: 'EdDSA', kid: keys.kid, typ: 'JWT' }));
  const now = Math.floor(Date.now() / 1000);
  const out = new Array<string>(count);
  for (let i = 0; i < count; i++) {
    const payload = b64(JSON.stringify({ tenant: tenantOf(i), iss: ISSUER, aud: AUDIENCE, sub: 'loadtest', iat: now, exp: now + 6 * 3600 }));
    const input = `${header}.${payload}`;
    out[i] = `${input}.${b64(sign(null, Buffer.from(input), key))}`;
  }
  return out;
}

/** The i-th distinct loopback address, outside 127.0.0.0/16 (used by the other scenarios). */
export function loopbackAddress(i: number): string {
  const a = 1 + Math.floor(i / (254 * 254));
  const rest = i % (254 * 254);
  return `127.${a}.${1 + Math.floor(rest / 254)}.${1 + (rest % 254)}`;
}

export async function measureScaling(o: ScalingOptions): Promise<ScalingRow[]> {
  const rows: ScalingRow[] = [];
  const mb = (b: number) => Math.round((b / 2 ** 20) * 10) / 10;
  for (const n of o.sizes ?? [1, 10_000, 1_000_000]) {
    o.progress.update(`scaling ${n}: minting ${n} tokens`);
    const tokens = mintTokensFast(o.keys, n, (i) => `t${i}`);
    const policy = await writeWardPolicy(
      {
        upstreams: { app: { targets: [`http://127.0.0.1:${o.upstreamPort}`] } },
        routes: [{ name: 'bench', prefix: '/v1/', upstream: 'app', bucket: 'api', concurrency: 'inflight' }],
        // Every address below the rule's rate is tracked; wrk's own 127.0.0.1 is allow-listed so it is never banned.
        flood: { per_ip: { rate: 1000, per_s: 1, ban_s: 60 }, allow: ['127.0.0.1/32'] },
        tenants: { '*': { buckets: { api: { rate: 100_000_000, per_s: 1, burst: 100_000_000 } }, concurrency: { inflight: 100_000 } } },
      },
      o.keys,
    );
    const ward = await startWard(policy, { workers: 1, cpus: o.cpus });
    try {
      await new Promise((r) => setTimeout(r, 500));
      const rss0 = treeRssBytes(ward.pid);
      const flood = await o.progress.countdown(
        `scaling ${n}: one request from each of ${n} addresses`,
        Math.ceil(n / 5000),
        runConnectFlood({ host: '127.0.0.1', port: policy.port, addressAt: loopbackAddress, count: n, durationS: 600, concurrency: 64, path: BENCH_PATH, headers: { authorization: `Bearer ${tokens[0]}` } }),
      );
      if (flood.answered < n * 0.99) o.notes.push(`scaling ${n}: only ${flood.answered} of ${n} addresses were answered`);
      const rss1 = treeRssBytes(ward.pid);
      // req/s while rotating over the N tenants...
      const w = await o.progress.countdown(
        `scaling ${n}: wrk over ${n} tenants`,
        o.durationS,
        runWrk({ url: `http://127.0.0.1:${policy.port}${BENCH_PATH}`, connections: 64, durationS: o.durationS, tokens, cpus: o.loadgenCpus }),
      );
      if (w.non2xx) o.notes.push(`scaling ${n}: ${w.non2xx} answers were not 2xx`);
      // ...then more rounds, each starting where the last stopped, until every tenant has been seen once.
      let seen = w.requests;
      const deadline = Date.now() + MAX_COVER_S * 1000;
      while (seen < n && Date.now() < deadline) {
        const left = n - seen;
        const secs = Math.min(60, Math.max(2, Math.ceil(left / Math.max(1000, w.rps))));
        o.progress.update(`scaling ${n}: reaching the remaining ${left} tenants`);
        seen += (await runWrk({ url: `http://127.0.0.1:${policy.port}${BENCH_PATH}`, connections: 64, durationS: secs, tokens, tokenOffset: seen, cpus: o.loadgenCpus })).requests;
      }
      if (seen < n) o.notes.push(`scaling ${n}: only ${seen} requests in ${MAX_COVER_S} s, so not every tenant was reached: bytes per tenant is over what was reached`);
      const rss2 = treeRssBytes(ward.pid);
      const row: ScalingRow = {
        n,
        rssStartMb: mb(rss0),
        rssAfterAddressesMb: mb(rss1),
        rssAfterTenantsMb: mb(rss2),
        bytesPerAddress: n > 1 ? Math.round((rss1 - rss0) / n) : NaN,
        bytesPerTenant: n > 1 ? Math.round((rss2 - rss1) / Math.min(n, seen)) : NaN,
        rps: w.rps,
        requests: w.requests,
        seen,
      };
      rows.push(row);
      o.progress.log(`scaling ${n}: ${Math.round(w.rps)} req/s, RSS ${row.rssStartMb} → ${row.rssAfterAddressesMb} → ${row.rssAfterTenantsMb} MB`);
    } finally {
      await ward.stop();
    }
  }
  return rows;
}

export function scalingTable(rows: readonly ScalingRow[]): Table {
  return {
    title: 'Scaling with distinct tenants and addresses (ward, 1 worker, memory store)',
    columns: ['tenants = addresses', 'req/s rotating over the tenants', 'RSS at start MB', 'after N addresses MB', 'after N tenants MB', 'bytes per address', 'bytes per tenant'],
    rows: rows.map((r) => [r.n, r.rps, r.rssStartMb, r.rssAfterAddressesMb, r.rssAfterTenantsMb, r.bytesPerAddress, r.bytesPerTenant]),
    note:
      'Bytes per entry = RSS growth over the phase ÷ N. Only the 1M row means much: at small N the heap growth from handling the connections themselves dominates. ' +
      '"Bytes per tenant" includes whatever ward keeps per distinct token (the verified-token cache) besides the bucket. A fixed-size table shows as a step at start-up and ~0 bytes per entry afterwards.',
  };
}
