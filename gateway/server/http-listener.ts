// The uWS application of one listener thread: HTTP requests go through the pipeline and the
// proxy; upgrades go to the WebSocket behaviour; /v1/e2e/ is served by ward itself.

import { randomBytes } from 'node:crypto';
import { threadId } from 'node:worker_threads';
import { uws, type HttpRequest, type HttpResponse, type TemplatedApp, type us_listen_socket, type WebSocketBehavior } from './uws.js';
import { isVerdict, type AdmitOutcome, type RequestHead } from '../pipeline/types.js';
import type { Pipeline } from '../pipeline/pipeline.js';
import * as verdicts from '../pipeline/verdicts.js';
import { HttpExchange, answer, answerAfterTurn, type ExchangeEnv } from './http-exchange.js';
import { releaseAllPaced } from '../stages/admit/refusal-pace.js';
import type { Upstreams } from '../proxy/upstreams.js';
import type { Logger } from '../log.js';
import { AccessLog } from './access-log.js';
import { formatAddress } from './remote-address.js';

export interface ListenerDeps {
  /** The pipeline of the current policy version (undefined before the first valid policy). */
  current(): Pipeline | undefined;
  readonly upstreams: Upstreams;
  readonly log: Logger;
  /** Handles requests ward serves itself (e.g. /v1/e2e/); returns true when it took the request.
   * `inFlight(+1)` when it starts one and `inFlight(-1)` once it is over, so they count and drain too. */
  local?(res: HttpResponse, head: RequestHead, pipeline: Pipeline, inFlight: (delta: 1 | -1) => void): boolean;
  /** WebSocket behaviours by uWS pattern, most specific first (e.g. /v1/e2e/relay before /*). */
  websockets?: ReadonlyArray<readonly [string, WebSocketBehavior<any>]>;
}

/** Fault injection for tests and game days: a request (or WebSocket upgrade) for exactly this path
 * throws in ward's handler (what any bug there would do). Never set in production. */
const FAULT_PATH = process.env.WARD_FAULT_THROW_PATH;

/** The same containment for WebSocket handlers: an error closes that socket (1011), not the thread. */
function containWs<T>(behavior: WebSocketBehavior<T>, log: Logger): WebSocketBehavior<T> {
  const guarded = { ...behavior };
  const fail = (where: string, err: unknown, close: () => void) => {
    log.error({ err, handler: where }, 'uncaught error in a WebSocket handler; its connection is closed');
    try {
      close();
    } catch {
      // Already closed.
    }
  };
  const { upgrade, open, message, drain, close } = behavior;
  if (upgrade) guarded.upgrade = (res, req, ctx) => {
    try {
      if (FAULT_PATH !== undefined && req.getUrl() === FAULT_PATH) throw new Error('injected fault (WARD_FAULT_THROW_PATH)');
      return upgrade(res, req, ctx);
    } catch (err) {
      fail('upgrade', err, () => res.close());
    }
  };
  // open, message, drain and close all take the socket first; an error there closes that socket
  // (close itself has nothing left to close). Two spare parameters pass arguments without a rest array.
  type Handler = (ws: any, a?: any, b?: any) => unknown;
  const guard = (where: string, fn: Handler, endSocket: boolean): any => (ws: any, a?: any, b?: any) => {
    try {
      return fn(ws, a, b);
    } catch (err) {
      fail(where, err, () => endSocket && ws.end(1011));
    }
  };
  if (open) guarded.open = guard('open', open, true);
  if (message) guarded.message = guard('message', message, true);
  if (drain) guarded.drain = guard('drain', drain, true);
  if (close) guarded.close = guard('close', close, false);
  return guarded;
}

const ID_PREFIX = randomBytes(4).toString('hex') + threadId.toString(36);
let seq = 0;
export function nextRequestId(): string {
  return ID_PREFIX + '-' + (++seq).toString(36);
}

/** Copies what the pipeline needs out of the uWS request: it is invalid once the handler returns. */
export function copyHead(req: HttpRequest, res: HttpResponse, upgrade: boolean, remote?: Uint8Array): RequestHead {
  const headers: string[] = [];
  let headBytes = 0;
  req.forEach((k, v) => {
    headers.push(k, v);
    headBytes += k.length + v.length + 4;
  });
  const remoteBytes = remote ?? new Uint8Array(res.getRemoteAddress());
  return {
    method: req.getMethod().toUpperCase(),
    url: req.getUrl(),
    query: req.getQuery() ?? '',
    headers,
    remoteBytes,
    remoteText: formatAddress(remoteBytes),
    requestId: nextRequestId(),
    upgrade,
    headBytes,
  };
}

export class HttpListener implements ExchangeEnv {
  private readonly app: TemplatedApp;
  private socket: us_listen_socket | undefined;
  private inFlight = 0;
  private draining = false;
  private drained: (() => void) | undefined;

  readonly accessLog: AccessLog;

  constructor(private readonly deps: ListenerDeps) {
    this.accessLog = new AccessLog(deps.log);
    this.app = uws.App();
    for (const [pattern, behavior] of deps.websockets ?? []) this.app.ws(pattern, containWs(behavior, deps.log));
    this.app.any('/*', (res, req) => {
      try {
        this.onRequest(res, req);
      } catch (err) {
        this.contain(res, err);
      }
    });
  }

  /** A bug met while handling one request closes that connection; it must not take down the
   * thread (and with it every tenant's traffic). Logged at error level for operators to see. */
  private contain(res: HttpResponse, err: unknown): void {
    this.deps.log.error({ err }, 'uncaught error in a request handler; its connection is closed');
    try {
      res.close();
    } catch {
      // Already closed or answered.
    }
  }

  answerFault(err: unknown, requestId: string): void {
    this.deps.log.error({ err, request_id: requestId }, 'uncaught error writing an answer; its connection is closed');
  }

  get upstreams(): Upstreams {
    return this.deps.upstreams;
  }

  private readonly countInFlight = (delta: 1 | -1): void => this.inFlightChanged(delta);

  inFlightChanged(delta: 1 | -1): void {
    this.inFlight += delta;
    if (this.inFlight === 0 && this.drained) this.drained();
  }

  listen(host: string, port: number): Promise<number> {
    return new Promise((resolve, reject) => {
      this.app.listen(host, port, (s) => {
        if (!s) return reject(new Error(`cannot listen on ${host}:${port}`));
        this.socket = s;
        resolve(uws.us_socket_local_port(s));
      });
    });
  }

  /** Stops accepting, answers new requests on kept-alive connections with 503, and resolves when
   * in-flight requests have finished or after `timeoutMs`. */
  drain(timeoutMs: number): Promise<void> {
    this.draining = true;
    releaseAllPaced(); // refusals waiting for their tenant's pace go out now
    if (this.socket) uws.us_listen_socket_close(this.socket);
    this.socket = undefined;
    if (this.inFlight === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const t = setTimeout(resolve, timeoutMs);
      this.drained = () => {
        clearTimeout(t);
        resolve();
      };
    });
  }

  /** Closes every connection still open (idle keep-alive ones, requests past the drain timeout,
   * WebSocket sessions): the last step of a drain. A worker thread's event loop can only end once
   * uWS holds no socket; Node aborts the whole process when it stops a thread that still does. */
  closeAll(): void {
    // The binding has App.close() (uWS.js ≥ 20.11); the .d.ts bundled with this build omits it.
    (this.app as unknown as { close(): void }).close();
  }

  get requestsInFlight(): number {
    return this.inFlight;
  }

  private onRequest(res: HttpResponse, req: HttpRequest): void {
    if (FAULT_PATH !== undefined && req.getUrl() === FAULT_PATH) throw new Error('injected fault (WARD_FAULT_THROW_PATH)');
    const pipeline = this.deps.current();
    // One view of the address for the flood guard and the formatter (one getpeername per request).
    const remote = new Uint8Array(res.getRemoteAddress());
    // Deny-listed and banned sources are dropped before anything is copied from the request.
    if (pipeline !== undefined && pipeline.screenAddress(remote, Date.now()) !== undefined) {
      res.close();
      return;
    }
    const head = copyHead(req, res, false, remote);
    if (pipeline === undefined || this.draining) {
      res.onAborted(() => {});
      answer(res, verdicts.SHUTTING_DOWN, head.requestId);
      return;
    }
    const screened = pipeline.screenSizes(head);
    if (screened !== undefined) {
      if (!screened.drop) res.onAborted(() => {});
      answer(res, screened, head.requestId);
      return;
    }
    if (this.deps.local && this.deps.local(res, head, pipeline, this.countInFlight)) return;
    let out: AdmitOutcome | Promise<AdmitOutcome>;
    try {
      out = pipeline.admitScreened(head);
    } catch (err) {
      this.deps.log.error({ err, request_id: head.requestId }, 'pipeline error');
      out = verdicts.UPSTREAM_UNAVAILABLE;
    }
    // A refusal decided right here (no token to verify, no store round trip) needs no exchange: a
    // bodiless one is written at the end of the turn with the others (answerAfterTurn).
    let contentLength: string | undefined;
    let chunked = false;
    const h = head.headers;
    for (let i = 0; i < h.length; i += 2) {
      if (h[i] === 'content-length') contentLength = h[i + 1];
      else if (h[i] === 'transfer-encoding') chunked = true;
    }
    if (!(out instanceof Promise) && isVerdict(out)) {
      // A refused request's body is not read: answer at once and close the connection after the
      // answer, so its bytes are never taken for the next request.
      if (chunked || (contentLength !== undefined && contentLength !== '0')) answer(res, out, head.requestId, true);
      else answerAfterTurn(res, out, head.requestId, this);
      return;
    }
    const ex = new HttpExchange(res, head, pipeline, this, contentLength, chunked);
    if (out instanceof Promise) {
      out
        .then(
          (o) => ex.proceed(o),
          (err) => {
            this.deps.log.error({ err, request_id: head.requestId }, 'pipeline error');
            ex.proceed(verdicts.UPSTREAM_UNAVAILABLE);
          },
        )
        .catch((err) => this.contain(res, err));
    } else ex.proceed(out);
  }
}
