// ward's end-to-end key directory: the /v1/e2e/ endpoints of CONTRACT.md, framework-agnostic.
// The gateway authenticates the caller and hands over (tenant, user); every key read or written
// here is scoped by that tenant, so one tenant never sees another's users or log.
import { checkPublishedBundle, isName } from '../sdk/bundle.js';
import { E2EError } from '../sdk/errors.js';
import { headMessage, type LogEntry, type LogHead } from '../sdk/key-log.js';
import { ed25519FromSeed, ed25519KeyPair, equal, sign, toB64 } from '../sdk/primitives.js';
import { LogTree } from './log-tree.js';
import type { DirectoryStore } from './store.js';

export interface E2EContext {
  tenant: string;
  /** The token's `sub`. */
  user: string;
}

export interface E2EAnswer {
  status: number;
  body: unknown;
}

export interface E2EDirectoryOptions {
  store: DirectoryStore;
  /** Ed25519 secret key (64 bytes: seed ‖ public key) that signs log heads. Without it, the key is
   * generated at first use and kept in the store, so every instance on one store signs alike. */
  logSigningKey?: Uint8Array;
  /** Milliseconds since the epoch, for log entry timestamps. */
  now?: () => number;
  /** Told about every failure answered with 503 (store unreachable, or a bug), for the gateway's log.
   * Never given secrets: there are none here. */
  onError?: (err: unknown) => void;
}

/** Largest PUT body read (100 prekeys take about 8 KiB). */
const MAX_BUNDLE_BYTES = 64 * 1024;

const answer = (status: number, body: unknown): E2EAnswer => ({ status, body });
const badRequest = (detail: string) => answer(400, { error: 'bad_request', detail });
const notFound = () => answer(404, { error: 'not_found' });

export class E2EDirectory {
  readonly #store: DirectoryStore;
  readonly #now: () => number;
  readonly #onError: (err: unknown) => void;
  #key: Promise<{ secret: Uint8Array; public: string }>;
  readonly #logs = new Map<string, LogTree>();
  readonly #syncs = new Map<string, Promise<LogTree>>();

  constructor(opts: E2EDirectoryOptions) {
    if (!opts?.store) throw new TypeError('E2EDirectory: { store } is required, e.g. new MemoryDirectoryStore()');
    this.#store = opts.store;
    this.#now = opts.now ?? Date.now;
    this.#onError = opts.onError ?? (() => {});
    if (opts.logSigningKey !== undefined) {
      const k = checkSigningKey(opts.logSigningKey);
      this.#key = Promise.resolve(k);
    } else {
      this.#key = this.#loadKey();
    }
    this.#key.catch(() => {}); // surfaced per request as 503; the next request retries
  }

  /** The base64url public key that signs this directory's log heads. */
  async logKey(): Promise<string> {
    return (await this.#signer()).public;
  }

  /** Answers one /v1/e2e request. `path` is what follows /v1/e2e (e.g. "/devices/a1"). */
  async handle(method: string, path: string, query: URLSearchParams, body: Uint8Array | null, ctx: E2EContext): Promise<E2EAnswer> {
    const parts = path.split('/').filter((p, i) => i > 0 || p !== '');
    let segs: string[];
    try {
      segs = parts.map((p) => decodeURIComponent(p));
    } catch {
      return notFound();
    }
    const route = routeOf(segs);
    if (!route) return notFound();
    if (method !== route.method) return answer(405, { error: 'method_not_allowed', allow: route.method });
    try {
      switch (route.name) {
        case 'publish':
          return await this.#publish(segs[1]!, body, ctx);
        case 'bundles':
          return await this.#bundles(segs[1]!, ctx);
        case 'key':
          return answer(200, { key: await this.logKey() });
        case 'head':
          return await this.#head(query, ctx);
        case 'proof':
          return await this.#proof(query, ctx);
        case 'consistency':
          return await this.#consistency(query, ctx);
        case 'entries':
          return await this.#entries(query, ctx);
        case 'relay':
          return answer(426, { error: 'upgrade_required' });
      }
    } catch (e) {
      if (e instanceof E2EError) return answer(400, { error: 'bad_request', detail: e.message });
      this.#onError(e);
      return answer(503, { error: 'e2e_unavailable' });
    }
  }

  async #publish(device: string, body: Uint8Array | null, ctx: E2EContext): Promise<E2EAnswer> {
    const bad = (detail: string) => answer(400, { error: 'bad_bundle', detail });
    if (!body || body.length === 0) return bad('the body must be the bundle JSON');
    if (body.length > MAX_BUNDLE_BYTES) return bad(`a bundle is at most ${MAX_BUNDLE_BYTES} bytes`);
    let json: unknown;
    try {
      json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(body));
    } catch {
      return bad('the body is not UTF-8 JSON');
    }
    let bundle;
    try {
      bundle = checkPublishedBundle(json, ctx.tenant, ctx.user, device);
    } catch (e) {
      if (e instanceof E2EError) return bad(e.message);
      throw e;
    }
    const leaf = { user: ctx.user, device, identity_key: bundle.identity_key, ts: this.#now() };
    const r = await this.#store.publish(ctx.tenant, ctx.user, device, bundle, leaf);
    if ('error' in r) return answer(409, { error: r.error });
    return answer(200, {
      device,
      identity_key: bundle.identity_key,
      one_time_prekeys: r.prekeys,
      log: { index: r.index, size: r.size, appended: r.appended },
    });
  }

  async #bundles(user: string, ctx: E2EContext): Promise<E2EAnswer> {
    if (!isName(user)) return notFound();
    const list = await this.#store.takeBundles(ctx.tenant, user);
    return answer(200, { bundles: list.map((b) => ({ user, ...b })) });
  }

  async #head(q: URLSearchParams, ctx: E2EContext): Promise<E2EAnswer> {
    const log = await this.#sync(ctx.tenant);
    const size = count(q.get('size'), log.size);
    if (size === undefined || size > log.size) return badRequest(`size must be an integer from 0 to ${log.size}`);
    return answer(200, await this.#signedHead(log, size));
  }

  async #proof(q: URLSearchParams, ctx: E2EContext): Promise<E2EAnswer> {
    const user = q.get('user');
    const device = q.get('device');
    if (!isName(user) || !isName(device)) return badRequest('user and device are required');
    const log = await this.#sync(ctx.tenant);
    const size = count(q.get('size'), log.size);
    if (size === undefined || size > log.size) return badRequest(`size must be an integer from 0 to ${log.size}`);
    const index = log.latest(user, device, size);
    if (index < 0) return notFound();
    const leaf = log.leaves[index]!;
    return answer(200, { ...leaf, index, size, path: log.inclusion(index, size).map(toB64) });
  }

  async #consistency(q: URLSearchParams, ctx: E2EContext): Promise<E2EAnswer> {
    const log = await this.#sync(ctx.tenant);
    const from = count(q.get('from'), undefined);
    const to = count(q.get('to'), log.size);
    if (from === undefined || to === undefined || from > to || to > log.size) {
      return badRequest(`from and to must be integers with 0 <= from <= to <= ${log.size}`);
    }
    return answer(200, { from, to, path: log.consistency(from, to).map(toB64) });
  }

  async #entries(q: URLSearchParams, ctx: E2EContext): Promise<E2EAnswer> {
    const user = q.get('user');
    if (!isName(user)) return badRequest('user is required');
    const log = await this.#sync(ctx.tenant);
    const size = log.size;
    const from = count(q.get('from'), 0);
    if (from === undefined || from > size) return badRequest(`from must be an integer from 0 to ${size}`);
    const entries: LogEntry[] = log.userEntries(user, from, size).map((index) => {
      const l = log.leaves[index]!;
      return { index, device: l.device, identity_key: l.identity_key, ts: l.ts };
    });
    return answer(200, {
      tenant: ctx.tenant,
      user,
      from,
      size,
      prefix: log.prefix(from).map(toB64),
      leaves: log.leafTexts.slice(from, size),
      entries,
    });
  }

  async #signedHead(log: LogTree, size: number): Promise<LogHead> {
    const { secret } = await this.#signer();
    const root = log.root(size);
    return { tenant: log.tenant, size, root: toB64(root), sig: toB64(sign(secret, headMessage(log.tenant, size, root))) };
  }

  /** Brings this instance's copy of the tenant's log up to the store's size (leaves never change,
   * so only the new ones are read). Concurrent callers share one read. */
  async #sync(tenant: string): Promise<LogTree> {
    const prev = this.#syncs.get(tenant) ?? Promise.resolve(undefined);
    const next = prev.catch(() => undefined).then(async () => {
      let log = this.#logs.get(tenant);
      if (!log) this.#logs.set(tenant, (log = new LogTree(tenant)));
      const size = await this.#store.logSize(tenant);
      // Re-read the last cached leaf too: if the store lost its log (a Redis without persistence
      // restarted), the cache must not go on serving the old tree.
      const from = Math.max(0, Math.min(log.size, size) - 1);
      const fresh = await this.#store.logLeaves(tenant, from, size);
      if (size < log.size || (log.size > 0 && JSON.stringify(fresh[0]) !== JSON.stringify(log.leaves[from]))) {
        this.#onError(new Error(`the key log of tenant ${tenant} in the store is not the one this instance saw: it was lost or replaced`));
        this.#logs.set(tenant, (log = new LogTree(tenant)));
        for (const leaf of await this.#store.logLeaves(tenant, 0, size)) log.append(leaf);
        return log;
      }
      for (const leaf of fresh.slice(log.size - from)) log.append(leaf);
      return log;
    });
    this.#syncs.set(tenant, next);
    void next.finally(() => {
      if (this.#syncs.get(tenant) === next) this.#syncs.delete(tenant);
    }).catch(() => {});
    return next;
  }

  #signer(): Promise<{ secret: Uint8Array; public: string }> {
    return this.#key.catch(() => (this.#key = this.#loadKey()));
  }

  async #loadKey(): Promise<{ secret: Uint8Array; public: string }> {
    return checkSigningKey(await this.#store.logSigningKey(() => ed25519KeyPair().secretKey));
  }
}

function checkSigningKey(key: Uint8Array): { secret: Uint8Array; public: string } {
  if (!(key instanceof Uint8Array) || key.length !== 64) {
    throw new TypeError('logSigningKey must be a 64-byte Ed25519 secret key (seed ‖ public key), as crypto_sign_keypair makes');
  }
  const derived = ed25519FromSeed(key.subarray(0, 32));
  if (!equal(derived.publicKey, key.subarray(32))) throw new TypeError('logSigningKey: its last 32 bytes are not the public key of its seed');
  return { secret: key, public: toB64(derived.publicKey) };
}

/** A non-negative integer query parameter; `fallback` when absent, undefined when malformed. */
function count(v: string | null, fallback: number | undefined): number | undefined {
  if (v === null) return fallback;
  if (!/^\d{1,15}$/.test(v)) return undefined;
  return Number(v);
}

type RouteName = 'publish' | 'bundles' | 'key' | 'head' | 'proof' | 'consistency' | 'entries' | 'relay';

const LOG_ROUTES = new Set<RouteName>(['key', 'head', 'proof', 'consistency', 'entries']);

function routeOf(s: string[]): { name: RouteName; method: string } | undefined {
  if (s.length === 2 && s[0] === 'devices') return { name: 'publish', method: 'PUT' };
  if (s.length === 3 && s[0] === 'users' && s[2] === 'bundles') return { name: 'bundles', method: 'GET' };
  if (s.length === 1 && s[0] === 'relay') return { name: 'relay', method: 'GET' };
  if (s.length === 2 && s[0] === 'log' && LOG_ROUTES.has(s[1] as RouteName)) return { name: s[1] as RouteName, method: 'GET' };
  return undefined;
}
