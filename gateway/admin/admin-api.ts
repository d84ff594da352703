// Everything under /admin/ on the admin port: the console page and its JSON API.
//
// Every request needs `Authorization: Bearer TOKEN` for a token whose SHA-256 is in the policy's
// admin.console.tokens (401 otherwise); the digest is compared in constant time against every
// token, so neither timing nor an early exit tells how close a guess was. Actions are POST only
// (405), need `X-Ward-Admin: 1` (a header no HTML form or simple cross-site request can send) and,
// when the browser sends an Origin, the admin's own (403): with the bearer token, that is the
// CSRF protection. A viewer may look, only an operator may act (403).

import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AdminToken } from '../policy/types.js';
import { RELEASE_ACTIONS, type ReleaseAction } from '../release/release-controller.js';
import type { AdminActions, Principal } from './admin-actions.js';
import { TARGET_ACTIONS, type TargetAction } from './admin-bus.js';
import { consolePage, loginPage } from './admin-console.js';

/** What the console shows beside upstreams and releases; the gateway supplies it. */
export interface AdminOverview {
  policy_version?: string;
  /** Epoch ms and result of the last policy (re)load. */
  last_reload?: { at: number; result: 'success' | 'failure'; error?: string };
  readiness?: { status: string; reasons: readonly string[] };
  top_refusals?: ReadonlyArray<{ tenant: string; count: number; reasons?: Readonly<Record<string, number>> }>;
  [key: string]: unknown;
}

export interface AdminContext {
  /** The policy in force's console tokens (none: every /admin/ request is 401). */
  tokens(): readonly AdminToken[];
  actions: AdminActions;
  overview?(): AdminOverview | Promise<AdminOverview>;
  /** Origins allowed on actions besides the admin's own (`http://` + the Host the browser used). */
  origins?: readonly string[];
  /** The admin port is served over TLS (its own origin is then https://). */
  tls?: boolean;
}

const MAX_BODY = 16 * 1024;

const COMMON_HEADERS: Record<string, string> = {
  'cache-control': 'no-store',
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
};

const PAGE_CSP = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/** The token holding `Authorization: Bearer …`, checked in constant time against every configured digest. */
export function authenticate(header: string | undefined, tokens: readonly AdminToken[]): Principal | undefined {
  const m = header === undefined ? null : /^Bearer[ ]+([^\s]+)\s*$/i.exec(header);
  if (m === null) return undefined;
  const digest = createHash('sha256').update(m[1]!).digest();
  let found: AdminToken | undefined;
  for (const t of tokens) {
    const want = Buffer.from(t.sha256, 'hex');
    if (want.length !== digest.length) continue;
    if (timingSafeEqual(want, digest) && found === undefined) found = t;
  }
  return found === undefined ? undefined : { name: found.name, role: found.role };
}

function send(res: ServerResponse, status: number, body: unknown, extra: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { ...COMMON_HEADERS, 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text), ...extra });
  res.end(text);
}

function sendText(res: ServerResponse, status: number, type: string, text: string, head: boolean, extra: Record<string, string> = {}): void {
  res.writeHead(status, { ...COMMON_HEADERS, 'content-type': `${type}; charset=utf-8`, 'content-length': Buffer.byteLength(text), ...extra });
  res.end(head ? undefined : text);
}

function readJson(req: IncomingMessage): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY) reject(new Error('body_too_large')); // answered with Connection: close
      else chunks.push(c);
    });
    req.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      try {
        resolve(text.trim() === '' ? {} : JSON.parse(text));
      } catch {
        reject(new Error('bad_json'));
      }
    });
    req.on('error', reject);
  });
}

function ownOrigin(req: IncomingMessage, ctx: AdminContext, origin: string): boolean {
  const host = req.headers.host;
  if (host !== undefined && origin === `${ctx.tls ? 'https' : 'http'}://${host}`) return true;
  return ctx.origins?.includes(origin) ?? false;
}

type Action = { kind: 'target'; upstream: string; action: TargetAction } | { kind: 'release'; release: string; action: ReleaseAction };

/** /admin/api/upstreams/{name}/targets/{action} and /admin/api/releases/{name}/{action}. */
function matchAction(parts: string[]): Action | 'unknown' | undefined {
  if (parts[0] === 'upstreams' && parts.length === 4 && parts[2] === 'targets') {
    return (TARGET_ACTIONS as readonly string[]).includes(parts[3]!) ? { kind: 'target', upstream: parts[1]!, action: parts[3] as TargetAction } : 'unknown';
  }
  if (parts[0] === 'releases' && parts.length === 3) {
    return (RELEASE_ACTIONS as readonly string[]).includes(parts[2]!) ? { kind: 'release', release: parts[1]!, action: parts[2] as ReleaseAction } : 'unknown';
  }
  return undefined;
}

function wantsHtml(req: IncomingMessage): boolean {
  return (req.headers.accept ?? '').includes('text/html');
}

/** Serves one request under /admin (the admin server routes every /admin path here). Never rejects. */
export async function handleAdmin(req: IncomingMessage, res: ServerResponse, ctx: AdminContext): Promise<void> {
  try {
    await route(req, res, ctx);
  } catch (err) {
    if (!res.headersSent) send(res, 500, { error: 'internal', message: (err as Error).message });
    else res.destroy();
  }
}

async function route(req: IncomingMessage, res: ServerResponse, ctx: AdminContext): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://admin');
  const path = url.pathname.replace(/\/+$/, '') || '/';
  const method = req.method ?? 'GET';
  let parts: string[];
  try {
    parts = path.startsWith('/admin/api/') ? path.slice('/admin/api/'.length).split('/').map(decodeURIComponent) : [];
  } catch {
    return send(res, 400, { error: 'bad_request' });
  }
  const action = matchAction(parts);
  const actionName = action === undefined ? undefined : action === 'unknown' ? 'unknown' : action.action;
  const isPage = path === '/admin' || path === '/admin/index.html';

  const who = authenticate(req.headers.authorization, ctx.tokens());
  if (who === undefined) {
    if (actionName !== undefined) ctx.actions.count(actionName, 'unauthorized');
    const challenge = { 'www-authenticate': 'Bearer realm="ward-admin"' };
    if (isPage && wantsHtml(req)) return sendText(res, 401, 'text/html', loginPage(), method === 'HEAD', { ...challenge, 'content-security-policy': PAGE_CSP });
    return send(res, 401, { error: 'unauthorized' }, challenge);
  }

  if (action !== undefined) {
    if (method !== 'POST') {
      ctx.actions.count(actionName!, 'method_not_allowed');
      return send(res, 405, { error: 'method_not_allowed' }, { allow: 'POST' });
    }
    if (req.headers['x-ward-admin'] !== '1') {
      ctx.actions.count(actionName!, 'forbidden');
      return send(res, 403, { error: 'forbidden', reason: 'x_ward_admin_required' });
    }
    const origin = req.headers.origin;
    if (origin !== undefined && !ownOrigin(req, ctx, origin)) {
      ctx.actions.count(actionName!, 'forbidden');
      return send(res, 403, { error: 'forbidden', reason: 'origin' });
    }
    if (who.role !== 'operator') {
      ctx.actions.count(actionName!, 'forbidden');
      return send(res, 403, { error: 'forbidden', reason: 'role' });
    }
    if (action === 'unknown') {
      ctx.actions.count('unknown', 'not_found');
      return send(res, 404, { error: 'unknown_action' });
    }
    let body: unknown;
    try {
      body = await readJson(req);
    } catch (e) {
      ctx.actions.count(action.action, 'bad_request');
      const tooLarge = (e as Error).message === 'body_too_large';
      return send(res, tooLarge ? 413 : 400, { error: (e as Error).message }, tooLarge ? { connection: 'close' } : {});
    }
    if (action.kind === 'target') {
      const target = (body as { target?: unknown } | null)?.target;
      if (typeof target !== 'string') {
        ctx.actions.count(action.action, 'bad_request');
        return send(res, 400, { error: 'bad_request', detail: 'send {"target": URL}' });
      }
      const r = await ctx.actions.target(who, action.upstream, target, action.action);
      return send(res, r.status, r.body);
    }
    const r = await ctx.actions.release(who, action.release, action.action);
    return send(res, r.status, r.body);
  }

  if (method !== 'GET' && method !== 'HEAD') return send(res, 405, { error: 'method_not_allowed' }, { allow: 'GET, HEAD' });
  const head = method === 'HEAD';
  if (isPage) return sendText(res, 200, 'text/html', consolePage(), head, { 'content-security-policy': PAGE_CSP });
  switch (path) {
    case '/admin/api/upstreams':
      return send(res, 200, { upstreams: ctx.actions.upstreamViews() });
    case '/admin/api/releases':
      return send(res, 200, { releases: ctx.actions.releaseViews() });
    case '/admin/api/audit': {
      const limit = Math.min(500, Math.max(1, Number(url.searchParams.get('limit') ?? 100) || 100));
      return send(res, 200, { entries: await ctx.actions.audit(limit) });
    }
    case '/admin/api/overview':
      return send(res, 200, { ...((await ctx.overview?.()) ?? {}), whoami: who, now: Date.now() });
    default:
      return send(res, 404, { error: 'not_found' });
  }
}
