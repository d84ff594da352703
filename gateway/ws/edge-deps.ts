// WsDeps from the edge's own parts: the listener's request copy and refusal writer, the current
// pipeline, the upstream picker, and the header filter. An edge thread wires the proxy with
//   new HttpListener({ ..., websocket: createWsProxy(edgeWsDeps({...})).behavior })

import type { Logger } from 'pino';
import type { Pipeline } from '../pipeline/pipeline.js';
import type { RequestHead } from '../pipeline/types.js';
import { forwardHeaderObject } from '../proxy/forward-headers.js';
import type { TargetOutcome, Upstreams } from '../proxy/upstreams.js';
import { answer } from '../server/http-exchange.js';
import { copyHead } from '../server/http-listener.js';
import type { WsDeps, WsMetrics, WsUpstreamResult } from './types.js';

export interface EdgeWsOptions {
  /** The pipeline of the current policy version (undefined before the first valid policy). */
  current(): Pipeline | undefined;
  readonly upstreams: Upstreams;
  readonly metrics: WsMetrics;
  readonly log: Logger;
  readonly maxPayloadLength?: number;
}

const NOT_READY = Object.freeze({ status: 503, error: 'not_ready', headers: Object.freeze(['Retry-After', '1']) });

const OUTCOME: Record<WsUpstreamResult, TargetOutcome | undefined> = {
  connect_failed: 'connect',
  timeout: 'timeout',
  refused: 'protocol',
  closed: 'ok',
  reset: 'reset',
  aborted: undefined,
};

export function edgeWsDeps(o: EdgeWsOptions): WsDeps {
  return {
    readHead: (res, req) => copyHead(req, res, true),
    admit: (head) => o.current()?.admit(head) ?? NOT_READY,
    upstream: (grant, head) => {
      const t = o.upstreams.pick(grant.upstream, grant, head);
      if (t === undefined) return undefined;
      const started = Date.now();
      return {
        url: upstreamUrl(t.url, head),
        timeoutMs: o.upstreams.timeoutMs(grant.upstream),
        done: (r) => {
          const outcome = OUTCOME[r];
          if (outcome !== undefined) o.upstreams.report(t, outcome, Date.now() - started, grant);
          o.upstreams.release(t);
        },
      };
    },
    forwardHeaders: (grant, head) => forwardHeaderObject(head.headers, head.remoteText, head.requestId, grant.tenant || undefined),
    answer,
    metrics: o.metrics,
    log: o.log,
    maxPayloadLength: o.maxPayloadLength,
  };
}

/**
 * The upstream URL of a session: the target (http→ws, https→wss), the client's path, and
 * its query without access_token: the token authenticated the client to ward and goes no further
 * (upstreams log URLs; the tenant reaches them as X-Ward-Tenant).
 */
export function upstreamUrl(target: string, head: RequestHead): string {
  const origin = target.replace(/^http(s?):/, 'ws$1:').replace(/\/+$/, '');
  let query = head.query;
  if (query.includes('access_token')) {
    const q = new URLSearchParams(query);
    q.delete('access_token');
    query = q.toString();
  }
  return origin + head.url + (query.length > 0 ? '?' + query : '');
}
