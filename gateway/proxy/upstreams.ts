// Target selection for one listener thread. The upstream groups (gateway/upstream/) hold the
// health state in tables shared with the main thread and every other listener thread; this file
// adapts them to the request path: hash keys compiled once per policy version, one keep-alive
// TargetPool per origin (kept across reloads while some upstream names it), and the release
// router's per-request counts.
//
// Per request or WebSocket session, exactly: pick → report (response head or failure) → release
// (when the exchange or session ends). A retry picks again with `exclude` = the failed target,
// after which the failed one is released.

import type { Policy } from '../policy/types.js';
import type { Grant, RequestHead } from '../pipeline/types.js';
import { headerOf } from '../pipeline/pipeline.js';
import { TargetPool } from './http-client.js';
import { compileHashKey, type HashKeyFn, type HashKeySource } from '../upstream/hash-key.js';
import { UpstreamRegistry } from '../upstream/upstream-registry.js';
import type { Target as GroupTarget, UpstreamGroup } from '../upstream/upstream-group.js';
import { I_INFLIGHT } from '../upstream/target-table.js';
import type { ReleaseRouter } from '../release/release-router.js';

export type TargetOutcome = 'ok' | '4xx' | '5xx' | 'connect' | 'reset' | 'timeout' | 'protocol';

/** A picked target: its URL and the keep-alive pool to send through (plus its place in the shared table). */
export type Target = GroupTarget<TargetPool>;

export interface Upstreams {
  /** A target of upstream `name` for this request or session, other than `exclude` when possible;
   * counted in flight until release(). undefined: no target can take it (all drained or excluded). */
  pick(name: string, grant: Grant, head: RequestHead, exclude?: Target): Target | undefined;
  /** The outcome of the exchange with `target` (once per pick): response head or failure. With the
   * grant, a request on a route under gray release is counted for the release's analysis. */
  report(target: Target, outcome: TargetOutcome, latencyMs: number, grant?: Grant): void;
  /** The request or session that picked `target` has ended. Exactly once per pick. */
  release(target: Target): void;
  timeoutMs(name: string): number;
  /** What a proxied request to upstream `name` is sent with: one lookup per request. */
  callSettings(name: string): CallSettings;
}

export interface CallSettings {
  /** The upstream's `timeout_ms`. */
  readonly timeoutMs: number;
  /** Its `pipeline` key: requests may be pipelined (proxy/http-client.ts). */
  readonly pipelined: boolean;
}

const DEFAULT_CALL_SETTINGS: CallSettings = Object.freeze({ timeoutMs: 30_000, pipelined: false });

interface Entry {
  readonly group: UpstreamGroup<TargetPool>;
  /** balance: hash only. */
  readonly key: HashKeyFn | undefined;
  readonly call: CallSettings;
}

/** One reusable key source per thread: a pick allocates nothing for the hash key's inputs. */
class KeySource implements HashKeySource {
  tenant = '';
  sub: string | undefined = undefined;
  query = '';
  head: RequestHead | undefined = undefined;
  header(name: string): string | undefined {
    return this.head === undefined ? undefined : headerOf(this.head, name);
  }
}

export interface PolicyUpstreamsOptions {
  /** Counts proxied requests of routes under gray release (the listener thread's router). */
  readonly router?: ReleaseRouter;
  /** Errors thrown while handling an upstream connection (TargetPoolOptions.onFault). */
  readonly onFault?: (err: unknown) => void;
  /** A target stopped taking pipelined requests for a while (TargetPoolOptions.onPipeliningOff). */
  readonly onPipeliningOff?: (origin: string, offMs: number) => void;
}

/** The policy's upstreams as the proxy sees them, in one listener thread. */
export class PolicyUpstreams implements Upstreams {
  private readonly registry = new UpstreamRegistry<TargetPool>({ createPool: (origin) => new TargetPool(origin, { onFault: this.opts.onFault, onPipeliningOff: this.opts.onPipeliningOff }) });
  private entries = new Map<string, Entry>();
  private readonly src = new KeySource();

  constructor(private readonly opts: PolicyUpstreamsOptions = {}) {}

  /**
   * A new policy version. `shared`: the main thread's target tables (UpstreamRegistry.buffers()),
   * so health, drains and in-flight counts are one state for the whole instance; without it this
   * thread keeps tables of its own (tests, tools).
   */
  apply(policy: Pick<Policy, 'upstreams'>, shared?: Readonly<Record<string, SharedArrayBuffer>>): void {
    this.registry.apply(policy, shared);
    const entries = new Map<string, Entry>();
    for (const group of this.registry.groups()) {
      entries.set(group.name, {
        group,
        key: group.spec.balance === 'hash' ? compileHashKey(group.spec.hash) : undefined,
        call: Object.freeze({ timeoutMs: group.timeoutMs, pipelined: group.spec.pipeline === true }),
      });
    }
    this.entries = entries;
  }

  pick(name: string, grant: Grant, head: RequestHead, exclude?: Target): Target | undefined {
    const e = this.entries.get(name);
    if (e === undefined) return undefined;
    let key: string | undefined;
    if (e.key !== undefined) {
      const s = this.src;
      s.tenant = grant.tenant;
      s.sub = grant.sub;
      s.query = head.query;
      s.head = head;
      key = e.key(s);
      s.head = undefined;
      if (key === '') key = undefined; // a public route has no tenant: balance by load instead
    }
    return e.group.pick(key, exclude);
  }

  report(target: Target, outcome: TargetOutcome, latencyMs: number, grant?: Grant): void {
    this.entries.get(target.upstream)?.group.report(target, outcome, latencyMs);
    if (grant !== undefined && this.opts.router !== undefined) this.opts.router.record(grant.route.name, target.upstream, outcome);
  }

  release(target: Target): void {
    // UpstreamGroup.release, on the target's own table: right even when a reload replaced its group.
    target.table.add(target.index, I_INFLIGHT, -1);
  }

  timeoutMs(name: string): number {
    return this.callSettings(name).timeoutMs;
  }

  callSettings(name: string): CallSettings {
    return this.entries.get(name)?.call ?? DEFAULT_CALL_SETTINGS;
  }

  /** The groups of the policy in force (tests, tools). */
  group(name: string): UpstreamGroup<TargetPool> | undefined {
    return this.entries.get(name)?.group;
  }

  close(): void {
    this.registry.close();
    this.entries.clear();
  }
}

/** @deprecated the name the placeholder round-robin had; PolicyUpstreams replaces it. */
