// The request path's shared vocabulary. A stage returns a Grant-in-progress (continue) or a
// Verdict (a refusal is a value, not a throw). See pipeline/admit.ts for the order of stages.

import type { RouteSpec } from '../policy/types.js';
import type { AdmitPlan } from '../store/types.js';
import type { Lease, LimitStore } from '../store/types.js';
import type { Outcome } from '../metrics/edge-metrics.js';
import type { RefusalPace } from '../stages/admit/refusal-pace.js';

/** What the edge copied synchronously from the uWS request (uWS request objects die when the
 * handler returns). Header names are lower-case; `headers` is flat: [name, value, name, value...]. */
export interface RequestHead {
  readonly method: string;
  /** Path without the query. */
  readonly url: string;
  /** Raw query string without '?', '' when none. */
  readonly query: string;
  readonly headers: string[];
  /** Remote address as uWS gives it: 4 bytes (IPv4) or 16 bytes (IPv6). */
  readonly remoteBytes: Uint8Array;
  /** Remote address as text, for X-Forwarded-For and logs. */
  readonly remoteText: string;
  readonly requestId: string;
  /** true when this is a WebSocket upgrade request. */
  readonly upgrade: boolean;
  /** Size of the header lines (names, values, separators), for flood.max_header_bytes. */
  readonly headBytes: number;
}

/** A refusal: the HTTP answer the edge sends, or `drop` to close the connection with no answer. */
export interface Verdict {
  readonly status: number;
  /** JSON body without request_id; the edge adds it. */
  readonly error: string;
  /** Extra JSON fields, e.g. { bucket: 'api' }. */
  readonly extra?: Readonly<Record<string, string>>;
  /** Extra response headers, flat [name, value...]. */
  readonly headers?: readonly string[];
  /** Close the connection without answering (deny-listed or banned source). */
  readonly drop?: boolean;
  /** The refused tenant's pace (flood.refusal_pace): the answer may wait for it. */
  readonly pace?: RefusalPace;
}

/** Per-tenant limits of one policy version: plans are built once and reused for every request. */
export interface TenantLimits {
  readonly tenant: string;
  /** Plan charging one token of bucket `name` (undefined if the tenant has no such bucket). */
  bucketPlan(name: string): AdmitPlan | undefined;
  /** Plan taking one lease of pool `name` (undefined if the tenant has no such pool). */
  poolPlan(name: string): AdmitPlan | undefined;
}

/** An admitted request or upgrade. Whoever holds it calls finish() exactly once when it ends
 * (response end, client abort, error, WebSocket close); finish() releases every lease. */
export interface Grant {
  readonly tenant: string;
  readonly sub: string | undefined;
  readonly route: RouteSpec;
  /** Upstream name to use (the route's, or a release's canary). */
  readonly upstream: string;
  readonly limits: TenantLimits;
  readonly store: LimitStore;
  readonly leases: Lease[];
  finish(): void;
  /** Counts the request's outcome in ward_requests_total{tenant,route,outcome}. */
  record(outcome: Outcome): void;
}

export type AdmitOutcome = Grant | Verdict;

export function isVerdict(o: AdmitOutcome): o is Verdict {
  return (o as Verdict).status !== undefined;
}
