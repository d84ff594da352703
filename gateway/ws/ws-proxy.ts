// The uWS WebSocket behaviour of the edge: every upgrade runs the chain (flood → route → auth →
// bucket → session lease) before ward dials the upstream, and is answered over HTTP when refused.
//
// uWS rules kept here: everything is copied from `req` before the first await (readHead),
// res.onAborted is registered before any await, `res` is never touched after it aborted, and the
// upgrade itself is corked.

import type { HttpRequest, HttpResponse, WebSocketBehavior, us_socket_context_t } from 'uWebSockets.js';
import { isVerdict, type AdmitOutcome, type RequestHead, type Verdict } from '../pipeline/types.js';
import { WsSession, type SessionHost, type SessionRef, CLIENT_HIGH_WATER } from './ws-session.js';
import type { WsDeps } from './types.js';
import * as verdicts from '../pipeline/verdicts.js';

export const DEFAULT_MAX_PAYLOAD = 16 << 20;
/** Backstop for dead clients on routes without idle_timeout_s; uWS pings live ones itself. */
const UWS_IDLE_TIMEOUT_S = 120;
const SWEEP_MS = 1000;
const BAD_PROTOCOL: Verdict = Object.freeze({ status: 400, error: 'bad_subprotocol' });
const INTERNAL: Verdict = Object.freeze({ status: 500, error: 'internal_error' });
/** RFC 6455 §4.1: subprotocols are tokens, comma-separated. */
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

export interface WsProxy {
  readonly behavior: WebSocketBehavior<SessionRef>;
  /** Sessions connecting or open. */
  readonly size: number;
  /** SIGTERM: no new sessions (503), open ones end with 1001. */
  drain(): void;
  /** Stops the idle/call timer (the process can then exit). */
  stop(): void;
}

export function createWsProxy(deps: WsDeps): WsProxy {
  const host: SessionHost & { draining: boolean } = { deps, sessions: new Set(), draining: false };
  const timer = setInterval(() => {
    const now = Date.now();
    for (const s of host.sessions) s.sweep(now);
  }, SWEEP_MS);
  timer.unref();
  const maxPayload = deps.maxPayloadLength ?? DEFAULT_MAX_PAYLOAD;

  const behavior: WebSocketBehavior<SessionRef> = {
    maxPayloadLength: maxPayload,
    // ward pauses the upstream at CLIENT_HIGH_WATER; uWS drops sends only far beyond that.
    maxBackpressure: CLIENT_HIGH_WATER + 2 * maxPayload,
    idleTimeout: UWS_IDLE_TIMEOUT_S,
    sendPingsAutomatically: true,
    upgrade: (res: HttpResponse, req: HttpRequest, context: us_socket_context_t) => {
      const head = deps.readHead(res, req);
      const key = headerOf(head, 'sec-websocket-key') ?? '';
      const offered = headerOf(head, 'sec-websocket-protocol');
      const pending: { session?: WsSession; aborted: boolean } = { aborted: false };
      res.onAborted(() => {
        pending.aborted = true;
        pending.session?.abort();
      });
      const protocols = offered === undefined ? [] : offered.split(',').map((p) => p.trim()).filter((p) => p.length > 0);
      if (!protocols.every((p) => TOKEN.test(p))) return deps.answer(res, BAD_PROTOCOL, head.requestId);
      if (host.draining) return deps.answer(res, verdicts.SHUTTING_DOWN, head.requestId);
      const admitted = (o: AdmitOutcome): void => {
        if (isVerdict(o)) {
          if (!pending.aborted) deps.answer(res, o, head.requestId);
          return;
        }
        if (pending.aborted) return o.finish();
        const s = new WsSession(host, o, head);
        pending.session = s;
        s.start(res, key, protocols, context);
      };
      const failed = (err: unknown): void => {
        deps.log.error({ err, request_id: head.requestId }, 'upgrade admission failed');
        if (!pending.aborted) deps.answer(res, INTERNAL, head.requestId);
      };
      let o: AdmitOutcome | Promise<AdmitOutcome>;
      try {
        o = deps.admit(head);
      } catch (err) {
        return failed(err);
      }
      if (o instanceof Promise) o.then(admitted, failed);
      else admitted(o);
    },
    open: (ws) => ws.getUserData().session.opened(ws),
    message: (ws, message, isBinary) => ws.getUserData().session.clientMessage(message, isBinary),
    drain: (ws) => ws.getUserData().session.drained(),
    close: (ws, code, message) => ws.getUserData().session.clientClosed(code, message),
    ping: (ws) => ws.getUserData().session.clientHeard(),
    pong: (ws) => ws.getUserData().session.clientHeard(),
  };

  return {
    behavior,
    get size() {
      return host.sessions.size;
    },
    drain() {
      host.draining = true;
      for (const s of host.sessions) s.shutdown();
    },
    stop() {
      clearInterval(timer);
    },
  };
}

/** The behaviour alone, for `app.ws('/*', createWsBehavior(deps))`. */
export function createWsBehavior(deps: WsDeps): WebSocketBehavior<SessionRef> {
  return createWsProxy(deps).behavior;
}

function headerOf(head: RequestHead, name: string): string | undefined {
  const h = head.headers;
  for (let i = 0; i < h.length; i += 2) if (h[i] === name) return h[i + 1];
  return undefined;
}
