// One proxied WebSocket session: the client's uWS socket, the upstream `ws` socket, and the relay
// between them. Created once the chain admitted the upgrade; the client is upgraded only after
// the upstream accepted, so a refused or unreachable upstream is still an HTTP answer.
//
// Backpressure. Client slow: once uWS holds CLIENT_HIGH_WATER bytes for the client, the upstream
// socket stops being read (ws pause) until uWS reports `drain`; the upstream's own writes then
// block in its kernel buffers. Upstream slow: uWS cannot stop reading a WebSocket (it has no read
// pause for them), so ward bounds what it holds instead (client-relay.ts): once the bytes waiting
// for the upstream pass max(UPSTREAM_HIGH_WATER, 2 × max_message_bytes), the session is closed
// with 1013 (try again later). Neither direction grows ward's memory without bound.

import type { HttpResponse, WebSocket as UWebSocket, us_socket_context_t } from 'uWebSockets.js';
import { WebSocket } from 'ws';
import type { Grant, RequestHead, Verdict } from '../pipeline/types.js';
import type { AdmitPlan } from '../store/types.js';
import type { RouteSpec } from '../policy/types.js';
import { SipGuard } from '../sip/sip-guard.js';
import { ClientRelay, type ClientRelaySink } from './client-relay.js';
import { clientCloseToUpstream, upstreamCloseToClient } from './close-codes.js';
import type { WsDeps, WsRouteCells, WsUpstream, WsUpstreamResult } from './types.js';
import * as verdicts from '../pipeline/verdicts.js';

export const CLIENT_HIGH_WATER = 1 << 20;
export const CLIENT_LOW_WATER = 256 << 10;
/** Floor of the bound on bytes held for a slow upstream (raised to 2 × max_message_bytes). */
export const UPSTREAM_HIGH_WATER = 4 << 20;

const enum Phase {
  Connecting,
  Open,
  Closed,
}

/** uWS user data: uWS keeps the object's own properties, not its prototype, so the session rides in one. */
export interface SessionRef {
  readonly session: WsSession;
}

/** What the proxy shares with its sessions. */
export interface SessionHost {
  readonly deps: WsDeps;
  readonly sessions: Set<WsSession>;
  readonly draining: boolean;
}

export class WsSession implements ClientRelaySink {
  readonly route: RouteSpec;
  private readonly cells: WsRouteCells;
  private phase = Phase.Connecting;
  private ended = false;
  private aborted = false;
  private res: HttpResponse | undefined;
  private ws: UWebSocket<SessionRef> | undefined;
  private up: WebSocket | undefined;
  private target: WsUpstream | undefined;
  private connectTimer: NodeJS.Timeout | undefined;
  private result: WsUpstreamResult = 'closed';
  private openCounted = false;
  // client → upstream
  private readonly relay: ClientRelay;
  private readonly sip: SipGuard | undefined;
  private readonly maxBytes: number;
  // upstream → client
  private upstreamPaused = false;
  private early: Array<[Buffer, boolean]> = [];
  /** Set when ward itself closes the upstream side first (a message over the limit). */
  private clientCloseOverride: [number, string] | undefined;
  private upstreamDead = false;
  // liveness (ms timestamps; ping = 0 when none is outstanding)
  private lastClientMs = Date.now();
  private lastUpstreamMs = Date.now();
  private clientPingMs = 0;
  private upstreamPingMs = 0;

  constructor(
    private readonly host: SessionHost,
    readonly grant: Grant,
    private readonly head: RequestHead,
  ) {
    const deps = host.deps;
    this.route = grant.route;
    const route = this.route;
    this.cells = deps.metrics.cells(grant.tenant, route.name);
    this.maxBytes = route.max_message_bytes;
    const shadow = (reason: string): void => deps.metrics.shadow(`route:${route.name}`, reason);
    if (route.sip) {
      this.sip = new SipGuard({
        store: grant.store,
        callPlan: shadowed(route.call_pool === undefined ? undefined : grant.limits.poolPlan(route.call_pool), route.enforce),
        poolName: route.call_pool ?? '',
        maxCallMs: route.max_call_s * 1000,
        cells: this.cells,
        shadow,
        log: deps.log,
      });
    }
    this.relay = new ClientRelay(
      {
        store: grant.store,
        msgPlan: shadowed(route.message_bucket === undefined ? undefined : grant.limits.bucketPlan(route.message_bucket), route.enforce),
        sip: this.sip,
        highWater: Math.max(UPSTREAM_HIGH_WATER, 2 * route.max_message_bytes),
        cells: this.cells,
        shadow,
        log: deps.log,
      },
      this,
    );
    host.sessions.add(this);
  }

  // ---- opening -------------------------------------------------------------------------------

  /** Connects the upstream, then upgrades `res`. `res.onAborted` must already call abort(). */
  start(res: HttpResponse, key: string, protocols: string[], context: us_socket_context_t): void {
    this.res = res;
    const deps = this.host.deps;
    let target: WsUpstream | undefined;
    try {
      target = deps.upstream(this.grant, this.head);
    } catch (err) {
      deps.log.error({ err, request_id: this.head.requestId }, 'choosing a WebSocket upstream failed');
    }
    if (target === undefined) return this.refuse(verdicts.UPSTREAM_UNAVAILABLE);
    this.target = target;
    let up: WebSocket;
    try {
      up = new WebSocket(target.url, protocols, {
        headers: deps.forwardHeaders(this.grant, this.head),
        perMessageDeflate: false, // ws then frames synchronously, copying what it is given
        maxPayload: this.maxBytes,
        followRedirects: false,
        autoPong: true,
      });
    } catch (err) {
      deps.log.error({ err, request_id: this.head.requestId }, 'bad WebSocket upstream URL');
      this.result = 'connect_failed';
      return this.refuse(verdicts.UPSTREAM_UNAVAILABLE);
    }
    this.up = up;
    up.binaryType = 'nodebuffer';
    this.connectTimer = setTimeout(() => this.connectFailed('timeout'), target.timeoutMs);
    // Any answer but 101 (or the wrong subprotocol): terminate() below aborts the request.
    up.on('unexpected-response', () => this.connectFailed('refused'));
    up.on('error', (err) => this.upstreamError(err));
    up.on('open', () => this.upstreamOpen(key, context));
    up.on('message', (data, isBinary) => this.upstreamMessage(data as Buffer, isBinary));
    up.on('pong', () => this.upstreamHeard());
    up.on('ping', () => this.upstreamHeard());
    up.on('close', (code, reason) => this.upstreamClose(code, reason));
  }

  /** The client went away before its upgrade finished. */
  abort(): void {
    this.aborted = true;
    this.res = undefined;
    if (this.phase !== Phase.Connecting) return;
    this.phase = Phase.Closed;
    this.result = 'aborted';
    this.up?.terminate();
    this.end();
  }

  private upstreamOpen(key: string, context: us_socket_context_t): void {
    clearTimeout(this.connectTimer);
    if (this.phase !== Phase.Connecting) return;
    const res = this.res;
    if (this.aborted || res === undefined) return;
    if (this.host.draining) {
      this.up!.close(1001, 'shutting_down');
      return this.refuse(verdicts.SHUTTING_DOWN);
    }
    this.res = undefined;
    // The client sees the subprotocol the upstream chose (Kamailio insists on `sip`).
    res.cork(() => res.upgrade<SessionRef>({ session: this }, key, this.up!.protocol, '', context));
  }

  /** uWS `open`: the client is upgraded. */
  opened(ws: UWebSocket<SessionRef>): void {
    if (this.phase !== Phase.Connecting) {
      ws.end(1001, 'shutting_down');
      return;
    }
    this.ws = ws;
    this.phase = Phase.Open;
    this.cells.sessionsOpen.n++;
    this.openCounted = true;
    const now = Date.now();
    this.lastClientMs = this.lastUpstreamMs = now;
    const early = this.early;
    this.early = [];
    for (const [data, isBinary] of early) {
      if (this.phase !== Phase.Open) break;
      this.upstreamMessage(data, isBinary);
    }
    if (this.phase === Phase.Open && this.upstreamPaused && early.length > 0) {
      this.upstreamPaused = false;
      this.up!.resume();
    }
  }

  private connectFailed(result: WsUpstreamResult): void {
    clearTimeout(this.connectTimer);
    if (this.phase !== Phase.Connecting) return;
    this.result = result;
    this.up?.terminate();
    this.refuse(result === 'timeout' ? verdicts.UPSTREAM_TIMEOUT : verdicts.UPSTREAM_UNAVAILABLE);
  }

  private refuse(v: Verdict): void {
    this.phase = Phase.Closed;
    const res = this.res;
    this.res = undefined;
    if (res !== undefined && !this.aborted) this.host.deps.answer(res, v, this.head.requestId);
    this.end();
  }

  // ---- client → upstream ---------------------------------------------------------------------

  /** uWS `message`: `ab` is valid only during this call. */
  clientMessage(ab: ArrayBuffer, isBinary: boolean): void {
    if (this.phase !== Phase.Open) return;
    const now = Date.now();
    this.lastClientMs = now;
    this.clientPingMs = 0;
    if (ab.byteLength > this.maxBytes) {
      this.cells.droppedFromClient.n++;
      return this.closeClient(1009, 'message_too_big');
    }
    this.relay.push(ab, isBinary, now);
  }

  isOpen(): boolean {
    return this.phase === Phase.Open;
  }

  forward(data: ArrayBuffer | Buffer, isBinary: boolean): void {
    const up = this.up!;
    if (up.readyState !== WebSocket.OPEN) {
      this.cells.droppedFromClient.n++;
      return;
    }
    // perMessageDeflate is off, so ws frames (and copies) `data` before this returns.
    up.send(data, isBinary ? BINARY : TEXT);
    this.cells.fromClient.n++;
  }

  reply(text: string): void {
    this.sendToClient(text, false);
  }

  close(code: number, reason: string): void {
    this.closeClient(code, reason);
  }

  upstreamBuffered(): number {
    return this.up!.bufferedAmount;
  }

  // ---- upstream → client ---------------------------------------------------------------------

  private upstreamMessage(data: Buffer, isBinary: boolean): void {
    this.upstreamHeard();
    if (this.phase === Phase.Connecting) {
      // Before uWS reported open: hold these few, and stop reading until then.
      this.early.push([data, isBinary]);
      if (!this.upstreamPaused) {
        this.upstreamPaused = true;
        this.up!.pause();
      }
      return;
    }
    if (this.phase !== Phase.Open) {
      this.cells.droppedFromUpstream.n++;
      return;
    }
    if (this.sip !== undefined) this.sip.fromUpstream(data, Date.now());
    const status = this.sendToClient(data, isBinary);
    if (status === 2) {
      // Over uWS's maxBackpressure: never reached while the pause below works; never lose a message silently.
      this.cells.droppedFromUpstream.n++;
      return this.closeClient(1013, 'client_backpressure');
    }
    this.cells.fromUpstream.n++;
    if (!this.upstreamPaused && this.ws !== undefined && this.ws.getBufferedAmount() > CLIENT_HIGH_WATER) {
      this.upstreamPaused = true;
      this.up!.pause();
    }
  }

  private sendToClient(data: string | Buffer, isBinary: boolean): number {
    const ws = this.ws;
    if (ws === undefined) return 2;
    let status = 2;
    ws.cork(() => {
      status = ws.send(data, isBinary);
    });
    return status;
  }

  /** uWS `drain`: the client caught up; read the upstream again. */
  drained(): void {
    if (this.upstreamPaused && this.ws !== undefined && this.ws.getBufferedAmount() < CLIENT_LOW_WATER) {
      this.upstreamPaused = false;
      this.up!.resume();
    }
  }

  private upstreamHeard(): void {
    this.lastUpstreamMs = Date.now();
    this.upstreamPingMs = 0;
  }

  /** uWS `ping`/`pong` from the client. */
  clientHeard(): void {
    this.lastClientMs = Date.now();
    this.clientPingMs = 0;
  }

  // ---- closing -------------------------------------------------------------------------------

  private upstreamError(err: Error & { code?: string }): void {
    if (this.phase === Phase.Connecting) {
      this.host.deps.log.info({ err: err.message, request_id: this.head.requestId, upstream: this.grant.upstream }, 'WebSocket upstream unreachable');
      return this.connectFailed('connect_failed');
    }
    if (err.code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH') this.clientCloseOverride = [1009, 'message_too_big'];
    this.host.deps.log.debug({ err: err.message, request_id: this.head.requestId }, 'WebSocket upstream error');
  }

  private upstreamClose(code: number, reason: Buffer): void {
    if (this.phase === Phase.Connecting) return this.connectFailed('connect_failed');
    if (this.phase !== Phase.Open) return;
    if (code === 1006) this.result = 'reset';
    const [c, r] = this.clientCloseOverride ?? upstreamCloseToClient(code, reason);
    this.closeClient(c, r);
  }

  /** Ends the client side with a close frame; uWS calls clientClosed() at once. */
  closeClient(code: number, reason: string | Buffer): void {
    const ws = this.ws;
    if (this.phase !== Phase.Open || ws === undefined) return;
    ws.cork(() => ws.end(code, reason));
  }

  /** uWS `close`: the client side is gone (its close, ours, or a dropped connection). */
  clientClosed(code: number, message: ArrayBuffer): void {
    if (this.phase !== Phase.Open) return;
    this.phase = Phase.Closed;
    this.ws = undefined;
    const up = this.up!;
    if (up.readyState === WebSocket.OPEN) {
      const to = this.upstreamDead ? undefined : clientCloseToUpstream(code, message);
      if (to === undefined) up.terminate();
      else if (to.length === 0) up.close();
      else up.close(to[0], to[1]);
    } else if (up.readyState === WebSocket.CONNECTING) up.terminate();
    this.end();
  }

  /** Drain: ends an open session with 1001, or lets a connecting one answer 503. */
  shutdown(): void {
    if (this.phase === Phase.Open) this.closeClient(1001, 'shutting_down');
  }

  /** Once a second: idle checks with pings, and call timers. */
  sweep(nowMs: number): void {
    if (this.phase !== Phase.Open) return;
    this.sip?.sweep(nowMs);
    const idle = this.route.idle_timeout_s * 1000;
    if (idle <= 0) return;
    // A peer quiet for idle/2 is pinged; one that stays quiet idle/2 after the ping is gone.
    if (this.clientPingMs > 0 && nowMs - this.clientPingMs >= idle / 2 && nowMs - this.lastClientMs >= idle) {
      return this.closeClient(1001, 'idle_timeout');
    }
    if (this.upstreamPingMs > 0 && nowMs - this.upstreamPingMs >= idle / 2 && nowMs - this.lastUpstreamMs >= idle) {
      this.upstreamDead = true;
      return this.closeClient(1001, 'idle_timeout');
    }
    if (this.clientPingMs === 0 && nowMs - this.lastClientMs >= idle / 2) {
      this.clientPingMs = nowMs;
      const ws = this.ws!;
      ws.cork(() => ws.ping());
    }
    if (this.upstreamPingMs === 0 && nowMs - this.lastUpstreamMs >= idle / 2) {
      this.upstreamPingMs = nowMs;
      this.up!.ping();
    }
  }

  /** Runs once however the session ends: frees the calls, then the grant's leases. */
  private end(): void {
    if (this.ended) return;
    this.ended = true;
    clearTimeout(this.connectTimer);
    this.host.sessions.delete(this);
    this.relay.clear();
    this.early = [];
    this.sip?.close();
    this.grant.finish();
    if (this.openCounted) this.cells.sessionsOpen.n--;
    this.target?.done?.(this.result);
  }
}

const BINARY = Object.freeze({ binary: true });
const TEXT = Object.freeze({ binary: false });

/** A plan in shadow mode when the route says `enforce: false`. */
function shadowed(plan: AdmitPlan | undefined, enforce: boolean): AdmitPlan | undefined {
  if (plan === undefined || enforce) return plan;
  return Object.freeze({ ...plan, enforce: false });
}
