// The validated policy: what the loader hands the gateway after parse → validate → cross-check.
// Every default of ../shared/CONTRACT.md is applied here, paths are resolved and files are read,
// so the stages never see a missing key or touch the disk. The whole object is deep-frozen.

import type { JSONWebKeySet, JWK } from 'jose';
import type { RefusalPaceSpec } from '../stages/admit/refusal-pace.js';

export interface BucketSpec {
  readonly rate: number;
  readonly per_s: number;
  /** Capacity; defaults to `rate`. */
  readonly burst: number;
}

export interface TenantSpec {
  readonly buckets: Readonly<Record<string, BucketSpec>>;
  readonly concurrency: Readonly<Record<string, number>>;
}

export interface ActiveHealthSpec {
  readonly path: string;
  readonly interval_ms: number;
  readonly timeout_ms: number;
  readonly rise: number;
  readonly fall: number;
}

export interface PassiveHealthSpec {
  readonly consecutive_failures: number;
  readonly base_ejection_ms: number;
  readonly max_ejection_ms: number;
}

export interface HealthSpec {
  readonly active?: ActiveHealthSpec;
  readonly passive?: PassiveHealthSpec;
  readonly max_ejection_percent: number;
  readonly panic_threshold_percent: number;
  readonly slow_start_ms: number;
}

export type BalanceKind = 'least_request' | 'round_robin' | 'hash';

export interface HashSpec {
  /** `tenant` | `tenant_sub` | `call_id` | `header:NAME` (NAME lower-cased). */
  readonly key: string;
  readonly balance_factor: number;
}

export interface UpstreamSpec {
  readonly name: string;
  /** Absolute URLs, `http://` or `ws://` (the same target list serves both). */
  readonly targets: readonly string[];
  readonly timeout_ms: number;
  /** Bodiless GET/HEAD requests of one tenant started in the same event-loop turn share one
   * upstream connection, pipelined (proxy/http-client.ts). */
  readonly pipeline?: boolean;
  readonly balance: BalanceKind;
  readonly hash?: HashSpec;
  readonly health?: HealthSpec;
}

export interface RouteSpec {
  readonly name: string;
  readonly prefix: string;
  /** Upper-case methods; undefined = any method. */
  readonly methods?: readonly string[];
  readonly websocket: boolean;
  readonly public: boolean;
  readonly upstream: string;
  readonly bucket?: string;
  readonly concurrency?: string;
  /** `enforce: false` = shadow mode for this route's bucket and pool. */
  readonly enforce: boolean;
  // WebSocket routes
  readonly message_bucket?: string;
  readonly max_message_bytes: number;
  readonly idle_timeout_s: number;
  // SIP over WebSocket
  readonly sip: boolean;
  readonly call_pool?: string;
  readonly max_call_s: number;
}

export interface PerIpSpec {
  readonly rate: number;
  readonly per_s: number;
  readonly ban_s: number;
}

export interface FloodSpec {
  readonly per_ip?: PerIpSpec;
  /** IPv6 clients count for per_ip and bans by this prefix of their address (default /64: one
   * subscriber's allocation); /40 to /128. */
  readonly ipv6_prefix: number;
  readonly max_body_bytes: number;
  /** Request head (names + values) larger than this: 431. uWS itself cuts heads past ~80 KiB. */
  readonly max_header_bytes: number;
  readonly deny: readonly string[];
  readonly allow: readonly string[];
  /** A tenant refused with 429 faster than this gets the rest of its refusals at this pace;
   * undefined when set to false. */
  readonly refusal_pace?: RefusalPaceSpec;
  /** `enforce: false` = shadow mode for the whole flood stage. */
  readonly enforce: boolean;
}

export interface StoreSpec {
  readonly kind: 'memory' | 'redis' | 'redis-cluster';
  readonly url?: string;
  readonly nodes?: readonly string[];
  readonly prefix: string;
  /** Share of each limit one instance may grant on its own while the shared store is unreachable. */
  readonly outage_share: number;
  /** ms a request waits on Redis before the insurance limits answer (default 100). */
  readonly command_timeout_ms?: number;
}

export interface AuthSpec {
  readonly jwks: JSONWebKeySet;
  readonly issuer: string;
  readonly audience: string;
  readonly algorithms: readonly string[];
  readonly tenant_claim: string;
  /** Seconds of clock skew tolerated on exp/nbf/iat. */
  readonly clock_tolerance_s: number;
  /** Demo only: the private JWK `ward token` signs with. */
  readonly dev_signing_key?: JWK;
}

export interface ReleaseStep {
  readonly groups?: readonly string[];
  readonly percent?: number;
}

export interface ReleaseSpec {
  readonly name: string;
  readonly routes: readonly string[];
  readonly stable: string;
  readonly canary: string;
  readonly tenant_groups: Readonly<Record<string, readonly string[]>>;
  readonly steps: readonly ReleaseStep[];
  readonly step_interval_s: number;
  readonly analysis?: { readonly window_s: number; readonly min_requests: number; readonly max_error_rate: number };
}

export interface AdminToken {
  readonly name: string;
  readonly role: 'viewer' | 'operator';
  /** Lower-case hex SHA-256 of the token. */
  readonly sha256: string;
}

export interface Policy {
  /** Absolute path of the policy directory. */
  readonly dir: string;
  /** SHA-256 (hex) over the files that make up this policy: identifies the version in logs and /admin. */
  readonly hash: string;
  readonly listen: { readonly host: string; readonly port: number };
  readonly admin: { readonly host: string; readonly port: number; readonly console?: { readonly tokens: readonly AdminToken[] } };
  readonly store: StoreSpec;
  readonly auth: AuthSpec;
  readonly upstreams: Readonly<Record<string, UpstreamSpec>>;
  /** In file order: first match wins. */
  readonly routes: readonly RouteSpec[];
  readonly flood: FloodSpec;
  /** `"*"` is the default; every named tenant here is already merged over `"*"`. */
  readonly tenants: Readonly<Record<string, TenantSpec>>;
  readonly e2e: { readonly cors_origins: readonly string[] };
  readonly releases: Readonly<Record<string, ReleaseSpec>>;
  /** Absolute paths of every file read to build this policy (watched for changes). */
  readonly files: readonly string[];
}

export interface PolicyProblem {
  /** Path relative to the policy directory's parent as given on the command line (what the operator typed). */
  readonly file: string;
  readonly line: number;
  readonly col: number;
  readonly message: string;
}

export type LoadResult = { readonly ok: true; readonly policy: Policy } | { readonly ok: false; readonly problems: readonly PolicyProblem[] };
