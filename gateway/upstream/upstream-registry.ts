// Every upstream of the policy in force, rebuilt on each reload without losing what was learnt:
// an upstream whose target list is unchanged keeps its shared table (ejections, drains, in-flight
// counts), a changed list carries each surviving target's state over, and keep-alive pools are
// kept per origin for as long as some upstream still names it.
//
// Threads: the main thread calls apply(policy) and hands buffers() to each listener thread with
// the policy; a listener thread calls apply(policy, buffers) and so shares the main thread's tables.

import type { Policy } from '../policy/types.js';
import type { LoopWatch } from './loop-watch.js';
import { TargetTable } from './target-table.js';
import { UpstreamGroup, type UpstreamView } from './upstream-group.js';

export interface Closable {
  close(): void;
}

export interface UpstreamRegistryOptions<P> {
  /** The keep-alive pool for an origin (ws:// targets are passed as http://). */
  createPool?: (origin: string) => P;
  loopWatch?: LoopWatch;
  random?: () => number;
}

/** `ws://h:p` and `http://h:p` share one pool. */
export function poolOrigin(url: string): string {
  return url.replace(/^ws(s?):/, 'http$1:');
}

export class UpstreamRegistry<P extends Closable | undefined = undefined> {
  private map = new Map<string, UpstreamGroup<P>>();
  private pools = new Map<string, P>();
  private listeners: Array<() => void> = [];

  constructor(private readonly opts: UpstreamRegistryOptions<P> = {}) {}

  /**
   * Builds the groups of `policy`. `shared`: the main thread's buffers() (listener threads);
   * without it, tables are created here or carried over from the previous policy.
   */
  apply(policy: Pick<Policy, 'upstreams'>, shared?: Readonly<Record<string, SharedArrayBuffer>>): void {
    const next = new Map<string, UpstreamGroup<P>>();
    const pools = new Map<string, P>();
    const pool = (url: string): P => {
      const origin = poolOrigin(url);
      let p = pools.get(origin) ?? this.pools.get(origin);
      if (p === undefined && this.opts.createPool !== undefined) p = this.opts.createPool(origin);
      pools.set(origin, p as P);
      return p as P;
    };
    for (const spec of Object.values(policy.upstreams)) {
      const prev = this.map.get(spec.name);
      let table: TargetTable;
      const buf = shared?.[spec.name];
      if (buf !== undefined) table = TargetTable.attach(buf, spec.targets);
      else if (prev !== undefined && prev.table.targets.join('\n') === spec.targets.join('\n')) table = prev.table;
      else table = TargetTable.create(spec.targets, prev?.table);
      next.set(spec.name, new UpstreamGroup<P>(spec, { table, createPool: pool, ...(this.opts.loopWatch ? { loopWatch: this.opts.loopWatch } : {}), ...(this.opts.random ? { random: this.opts.random } : {}) }));
    }
    // Requests of the old policy may still be using a pool that is gone now: close it after they had their time.
    let grace = 0;
    for (const g of this.map.values()) grace = Math.max(grace, g.timeoutMs);
    for (const [origin, p] of this.pools) {
      if (!pools.has(origin) && p !== undefined) setTimeout(() => p.close(), grace + 1000).unref();
    }
    this.map = next;
    this.pools = pools;
    for (const l of this.listeners) l();
  }

  get(name: string): UpstreamGroup<P> | undefined {
    return this.map.get(name);
  }

  groups(): UpstreamGroup<P>[] {
    return [...this.map.values()];
  }

  /** The shared tables, to post to listener threads with the policy (SharedArrayBuffers are shared, not copied). */
  buffers(): Record<string, SharedArrayBuffer> {
    const out: Record<string, SharedArrayBuffer> = {};
    for (const [name, g] of this.map) out[name] = g.table.buffer;
    return out;
  }

  /** Called after every apply (the health checker follows the upstream set with it). */
  onApply(listener: () => void): () => void {
    this.listeners.push(listener);
    return () => {
      this.listeners = this.listeners.filter((l) => l !== listener);
    };
  }

  /** `upstream_panic:NAME` for each upstream with a health block now in panic. */
  panicReasons(): string[] {
    const out: string[] = [];
    for (const g of this.map.values()) if (g.spec.health !== undefined && g.panic()) out.push(`upstream_panic:${g.name}`);
    return out;
  }

  views(): UpstreamView[] {
    return this.groups().map((g) => g.view());
  }

  close(): void {
    for (const p of this.pools.values()) p?.close();
    this.pools.clear();
    this.map.clear();
  }
}
