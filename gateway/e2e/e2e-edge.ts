// /v1/e2e/ at the edge: ward serves these itself, whatever the routes say. The caller is
// authenticated with the same bearer-token check as any route (the user is the token's `sub`),
// charged to the tenant's `e2e` bucket when its policy has one, and answered with CORS for the
// policy's `e2e.cors_origins`. The directory itself runs in the supervisor (one key log per
// instance, whatever the number of threads); the relay runs in each listener thread.

import type { HttpResponse, WebSocketBehavior } from '../server/uws.js';
import { answer, writeJson } from '../server/http-exchange.js';
import { copyHead } from '../server/http-listener.js';
import type { Pipeline } from '../pipeline/pipeline.js';
import type { RequestHead, Verdict } from '../pipeline/types.js';
import * as verdicts from '../pipeline/verdicts.js';
import type { Identity } from '../stages/auth/token-verifier.js';
import { E2ERelay, type RelayBus, type RelayConnection } from '../../crypto/directory/index.js';
import type { E2EAnswer, E2EContext } from '../../crypto/directory/directory.js';

export const E2E_PREFIX = '/v1/e2e';
const E2E_PREFIX_SLASH = E2E_PREFIX + '/'; // checked on every request: built once
const MAX_BODY = 64 * 1024;

/** Answers one directory request (in this thread, or forwarded to the supervisor). */
export type E2EHandler = (method: string, path: string, query: string, body: Uint8Array | null, ctx: E2EContext) => Promise<E2EAnswer>;

type Caller = { ctx: E2EContext } | { verdict: Verdict };

/** Authenticates and charges an /v1/e2e request; the verdict when refused. */
async function admitCaller(pipeline: Pipeline, head: RequestHead): Promise<Caller> {
  const now = Date.now();
  const id: Identity | null = await pipeline.authenticate(head, now);
  if (id === null || id.sub === undefined) return { verdict: verdicts.UNAUTHORIZED };
  const tenant = pipeline.tenantOf(id);
  const plan = tenant.bucketPlan('e2e');
  if (plan !== undefined) {
    const a = await pipeline.deps.store.admit(plan, now);
    if (!a.ok) return { verdict: verdicts.rateLimited(plan.bucket!, a) };
  }
  return { ctx: { tenant: id.tenant, user: id.sub } };
}

function corsHeaders(pipeline: Pipeline, head: RequestHead): string[] {
  let origin: string | undefined;
  for (let i = 0; i < head.headers.length; i += 2) if (head.headers[i] === 'origin') origin = head.headers[i + 1];
  if (origin === undefined || !pipeline.policy.e2e.cors_origins.includes(origin)) return [];
  return ['access-control-allow-origin', origin, 'vary', 'Origin'];
}

function withRequestId(a: E2EAnswer, requestId: string): unknown {
  if (a.status >= 400 && typeof a.body === 'object' && a.body !== null) return { ...a.body, request_id: requestId };
  return a.body;
}

/** Serves /v1/e2e/* HTTP requests; returns false for every other path. */
export function serveE2EHttp(res: HttpResponse, head: RequestHead, pipeline: Pipeline, handle: E2EHandler, inFlight: (delta: 1 | -1) => void): boolean {
  if (head.url !== E2E_PREFIX && !head.url.startsWith(E2E_PREFIX_SLASH)) return false;
  let aborted = false;
  // A client gone mid-body never sends the last chunk: settle the body then, or the request (and
  // the chunks read so far) would wait for it forever.
  let bodyGone: (() => void) | undefined;
  res.onAborted(() => {
    aborted = true;
    bodyGone?.();
  });
  const cors = corsHeaders(pipeline, head);
  if (head.method === 'OPTIONS') {
    // CORS preflight: no token is sent with it.
    res.cork(() => {
      res.writeStatus('204 No Content');
      for (let i = 0; i < cors.length; i += 2) res.writeHeader(cors[i]!, cors[i + 1]!);
      if (cors.length) {
        res.writeHeader('access-control-allow-methods', 'GET, PUT');
        res.writeHeader('access-control-allow-headers', 'authorization, content-type');
        res.writeHeader('access-control-max-age', '600');
      }
      res.endWithoutBody();
    });
    return true;
  }
  const chunks: Buffer[] = [];
  let size = 0;
  // undefined = the body was larger than MAX_BODY
  const body = new Promise<Uint8Array | null | undefined>((resolve) => {
    if (head.method !== 'PUT') return resolve(null);
    bodyGone = () => resolve(null);
    res.onData((chunk, isLast) => {
      size += chunk.byteLength;
      if (size <= MAX_BODY) chunks.push(Buffer.from(new Uint8Array(chunk)));
      if (isLast) resolve(size > MAX_BODY ? undefined : Buffer.concat(chunks));
    });
  });
  inFlight(1);
  void (async () => {
    const caller = await admitCaller(pipeline, head);
    const bytes = await body;
    if (aborted) return;
    if ('verdict' in caller) return answer(res, withCors(caller.verdict, cors), head.requestId);
    if (bytes === undefined) return answer(res, withCors(verdicts.BODY_TOO_LARGE, cors), head.requestId);
    const a = await handle(head.method, head.url.slice(E2E_PREFIX.length), head.query, bytes, caller.ctx);
    if (!aborted) writeJson(res, a.status, withRequestId(a, head.requestId), cors);
  })()
    .catch(() => {
      if (!aborted) writeJson(res, 503, { error: 'e2e_unavailable', request_id: head.requestId }, cors);
    })
    .finally(() => inFlight(-1));
  return true;
}

function withCors(v: Verdict, cors: string[]): Verdict {
  return cors.length ? { ...v, headers: [...(v.headers ?? []), ...cors] } : v;
}

interface RelayUser {
  ctx: E2EContext & { device: string };
  conn?: RelayConnection;
  closed: boolean;
}

/** The /v1/e2e/relay WebSocket: authenticated on upgrade (header, or ?access_token= for browsers). */
export function e2eRelayBehavior(current: () => Pipeline | undefined, bus: RelayBus | undefined): { behavior: WebSocketBehavior<RelayUser>; relay: E2ERelay } {
  const relay = new E2ERelay({ bus });
  const behavior: WebSocketBehavior<RelayUser> = {
    maxPayloadLength: 256 * 1024,
    idleTimeout: 120,
    sendPingsAutomatically: true,
    upgrade: (res, req, context) => {
      const head = copyHead(req, res, true);
      const key = req.getHeader('sec-websocket-key');
      const protocol = req.getHeader('sec-websocket-protocol');
      const extensions = req.getHeader('sec-websocket-extensions');
      let aborted = false;
      res.onAborted(() => (aborted = true));
      const pipeline = current();
      if (pipeline === undefined) return answer(res, verdicts.SHUTTING_DOWN, head.requestId);
      const screened = pipeline.screen(head, Date.now());
      if (screened !== undefined) return answer(res, screened, head.requestId);
      const device = new URLSearchParams(head.query).get('device');
      const refused = E2ERelay.refuse(new URLSearchParams(head.query));
      void admitCaller(pipeline, head).then((caller) => {
        if (aborted) return;
        if ('verdict' in caller) return answer(res, caller.verdict, head.requestId);
        if (refused) return writeJson(res, refused.status, withRequestId(refused, head.requestId));
        const user: RelayUser = { ctx: { ...caller.ctx, device: device! }, closed: false };
        res.cork(() => res.upgrade(user, key, protocol, extensions, context));
      });
    },
    open: (ws) => {
      const u = ws.getUserData();
      u.conn = relay.attach(u.ctx, (text) => {
        if (u.closed) return false;
        ws.send(text, false);
        return true;
      });
    },
    message: (ws, message, isBinary) => {
      const u = ws.getUserData();
      if (isBinary) return void ws.end(1003, 'text JSON only');
      u.conn?.onMessage(Buffer.from(message).toString('utf8'));
    },
    close: (ws) => {
      const u = ws.getUserData();
      u.closed = true;
      u.conn?.detach();
    },
  };
  return { behavior, relay };
}
