// What the WebSocket proxy needs from the rest of the gateway. The edge (gateway/server/) builds
// one WsDeps per listener thread and registers `app.ws('/*', createWsProxy(deps).behavior)`.

import type { Logger } from 'pino';
import type { HttpRequest, HttpResponse } from 'uWebSockets.js';
import type { Cell } from '../metrics/hot-counters.js';
import type { AdmitOutcome, Grant, RequestHead, Verdict } from '../pipeline/types.js';

/** How an upstream connection ended, for passive health and least-request balancing. */
export type WsUpstreamResult =
  /** TCP connect failed (refused, unreachable, DNS). */
  | 'connect_failed'
  /** No handshake answer within timeoutMs. */
  | 'timeout'
  /** The upstream answered the handshake with something other than 101 (or the wrong subprotocol). */
  | 'refused'
  /** The session ran and ended with a close handshake (by either side). */
  | 'closed'
  /** The upstream connection dropped without a close handshake after it was open. */
  | 'reset'
  /** The client went away before the upstream answered: not the target's fault. */
  | 'aborted';

/** The target chosen for one session. */
export interface WsUpstream {
  /** `ws://host:port/path?query`: the target plus the client's path and query. */
  readonly url: string;
  /** Opening handshake deadline; past it the upgrade is answered 504. */
  readonly timeoutMs: number;
  /** Called exactly once, when the upstream connection fails or the session ends. */
  done?(result: WsUpstreamResult): void;
}

/** Counter cells of one (tenant, route), looked up once per session; a message pays `cell.n++`. */
export interface WsRouteCells {
  /** Gauge: sessions open now. */
  readonly sessionsOpen: Cell;
  /** Messages relayed client → upstream. */
  readonly fromClient: Cell;
  /** Messages relayed upstream → client. */
  readonly fromUpstream: Cell;
  /** Client messages not relayed: over a limit, malformed SIP, or ward's own SIP answers' ACKs. */
  readonly droppedFromClient: Cell;
  /** Upstream messages not relayed because the client had already gone. */
  readonly droppedFromUpstream: Cell;
  /** Gauge: SIP calls holding a lease of the route's call_pool. */
  readonly callsInProgress: Cell;
  /** INVITEs ward answered 503 itself. */
  readonly callsRefused: Cell;
  /** SIP messages ward could not read (client ones are dropped, upstream ones passed on). */
  readonly sipMalformed: Cell;
}

export interface WsMetrics {
  cells(tenant: string, route: string): WsRouteCells;
  /** `enforce: false` rules: what would have been refused (ward_shadow_refusals_total). */
  shadow(rule: string, reason: string): void;
}

export interface WsDeps {
  /**
   * Copies what the chain needs from the upgrade request, synchronously (uWS request objects die
   * when the handler returns). Must not register res.onAborted: the proxy does.
   */
  readHead(res: HttpResponse, req: HttpRequest): RequestHead;
  /** flood → route → auth (header or ?access_token=) → bucket → concurrency lease. */
  admit(head: RequestHead): AdmitOutcome | Promise<AdmitOutcome>;
  /** The target for this session; undefined answers 502 (no target, all ejected). */
  upstream(grant: Grant, head: RequestHead): WsUpstream | undefined;
  /** Headers for the upstream handshake: X-Forwarded-For, X-Request-Id, X-Ward-Tenant, minus hop-by-hop. */
  forwardHeaders(grant: Grant, head: RequestHead): Record<string, string>;
  /** Writes a refusal (or closes on `drop`). Called after awaits: it must cork. */
  answer(res: HttpResponse, verdict: Verdict, requestId: string): void;
  readonly metrics: WsMetrics;
  readonly log: Logger;
  /**
   * uWS's own message size cap (it closes with 1006 and no code above it, so ward checks each
   * route's max_message_bytes itself and keeps this just above the largest). Default 16 MiB.
   */
  readonly maxPayloadLength?: number;
}
