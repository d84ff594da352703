// `ward policy check DIR`: the loader's verdict as lines for a terminal or an editor's
// problem matcher — one summary line, or one `FILE:LINE:COL: message` line per problem.

import { loadPolicy } from './loader.js';
import type { Policy } from './types.js';

const count = (n: number, word: string): string => `${n} ${word}${n === 1 ? '' : 's'}`;

function summary(dir: string, p: Policy): string {
  const tenants = Object.keys(p.tenants).filter((t) => t !== '*').length;
  const buckets = new Set(Object.values(p.tenants).flatMap((t) => Object.keys(t.buckets))).size;
  const pools = new Set(Object.values(p.tenants).flatMap((t) => Object.keys(t.concurrency))).size;
  const releases = Object.keys(p.releases).length;
  const parts = [
    count(p.routes.length, 'route'),
    count(Object.keys(p.upstreams).length, 'upstream'),
    count(tenants, 'tenant'),
    count(buckets, 'bucket'),
    count(pools, 'pool'),
    ...(releases ? [count(releases, 'release')] : []),
  ];
  return `${dir}: ok — ${parts.join(', ')} (sha256 ${p.hash.slice(0, 12)})`;
}

export async function policyCheck(dir: string): Promise<{ code: 0 | 1; lines: string[] }> {
  const r = await loadPolicy(dir);
  if (r.ok) return { code: 0, lines: [summary(dir, r.policy)] };
  return { code: 1, lines: r.problems.map((p) => `${p.file}:${p.line}:${p.col}: ${p.message}`) };
}
