// Where ward's time goes: the top functions by self time in a V8 .cpuprofile (what `node --cpu-prof`
// writes), as a report table, so a throughput run with --profile points straight at the hot spots.

import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Table } from './report.js';

interface ProfileNode {
  readonly id: number;
  readonly callFrame: { readonly functionName: string; readonly url: string; readonly lineNumber: number };
  readonly hitCount?: number;
}

interface CpuProfile {
  readonly nodes: readonly ProfileNode[];
  readonly samples?: readonly number[];
  readonly timeDeltas?: readonly number[];
}

export interface HotFunction {
  readonly name: string;
  readonly where: string;
  readonly selfPercent: number;
}

/** Self time per function (same name and place merged) as a share of busy time, highest first. */
export function hotFunctions(profile: CpuProfile, top = 20): HotFunction[] {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const self = new Map<number, number>();
  if (profile.samples && profile.timeDeltas) {
    profile.samples.forEach((id, i) => self.set(id, (self.get(id) ?? 0) + (profile.timeDeltas![i] ?? 0)));
  } else {
    for (const n of profile.nodes) self.set(n.id, n.hitCount ?? 0);
  }
  const merged = new Map<string, { name: string; where: string; t: number }>();
  let total = 0;
  for (const [id, t] of self) {
    const cf = byId.get(id)?.callFrame;
    if (!cf) continue;
    // Shares are of the time the thread was busy: idle time would only dilute them.
    if (cf.functionName === '(idle)') continue;
    total += t;
    const file = cf.url.replace(/^file:\/\//, '').split('/').slice(-2).join('/');
    const where = file ? `${file}:${cf.lineNumber + 1}` : '';
    const key = `${cf.functionName}@${where}`;
    const e = merged.get(key) ?? { name: cf.functionName || '(anonymous)', where, t: 0 };
    e.t += t;
    merged.set(key, e);
  }
  return [...merged.values()]
    .sort((a, b) => b.t - a.t)
    .slice(0, top)
    .map((e) => ({ name: e.name, where: e.where, selfPercent: total ? (e.t * 100) / total : 0 }));
}

/** A table of the hottest functions of every .cpuprofile in dir (one per ward thread). */
export function profileTables(dir: string, top = 15): Table[] {
  let files: string[];
  try {
    files = readdirSync(dir).filter((f) => f.endsWith('.cpuprofile'));
  } catch {
    return [];
  }
  return files.map((f) => ({
    title: `Hottest functions by self time: ${f}`,
    columns: ['function', 'where', 'self % of busy time'],
    rows: hotFunctions(JSON.parse(readFileSync(join(dir, f), 'utf8')) as CpuProfile, top).map((h) => [h.name, h.where, h.selfPercent]),
    note: `Open ${join(dir, f)} in Chrome DevTools (Performance → load) or speedscope for the flame graph.`,
  }));
}
