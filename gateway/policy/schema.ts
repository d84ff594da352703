// What each key of a policy is: type, range, default. The keys and meanings are those of
// shared/CONTRACT.md; defaults are the contract's where it names one, otherwise the value
// the example policy documents. Cross-references (route → upstream etc.) are checked in
// cross-check.ts, files named here (JWKS, keys, tokens) are read in key-files.ts.

import { checkCidr } from './cidr.js';
import { closest, showPath, type Field, type Refined, type Schema } from './walker.js';

const str: Schema = { kind: 'string' };
const bool: Schema = { kind: 'boolean' };
const int = (min: number, max?: number): Schema => ({ kind: 'number', int: true, min, max });
const positive: Schema = { kind: 'number', above: 0 };
const positiveInt: Schema = { kind: 'number', int: true, min: 1 };
const percent: Schema = { kind: 'number', min: 0, max: 100 };
const port = int(0, 65535);

const req = (schema: Schema): Field => ({ schema, required: true });
const opt = (schema: Schema): Field => ({ schema });
const dflt = (schema: Schema, value: unknown): Field => ({ schema, default: value });
const fill = (schema: Schema): Field => ({ schema, fill: true });
const list = (of: Schema, min?: number): Schema => ({ kind: 'list', of, min, unique: true });
const map = (of: Schema): Schema => ({ kind: 'map', of });

/** Algorithms a token may be signed with: asymmetric only, so a leaked verifier key forges nothing. */
export const ALGORITHMS = ['ES256', 'ES384', 'ES512', 'EdDSA', 'Ed25519', 'RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512'];

function algorithm(v: string): Refined {
  if (ALGORITHMS.includes(v)) return { value: v };
  if (v.toLowerCase() === 'none') return { error: `"${v}" is never accepted: unsigned tokens would let anyone in` };
  if (/^HS\d+$/i.test(v)) {
    return { error: `"${v}" is a shared-secret algorithm and is not accepted; use an asymmetric one (ES256, EdDSA, RS256, ...)` };
  }
  const near = closest(v, ALGORITHMS);
  return { error: `unknown algorithm "${v}"${near ? ` (did you mean "${near}"?)` : ` (allowed: ${ALGORITHMS.join(', ')})`}` };
}

const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'TRACE', 'CONNECT'];

function method(v: string): Refined {
  const up = v.toUpperCase();
  if (METHODS.includes(up)) return { value: up };
  const near = closest(up, METHODS);
  return { error: `unknown HTTP method "${v}"${near ? ` (did you mean "${near}"?)` : ''}` };
}

function target(v: string): Refined {
  const bad = { error: `${JSON.stringify(v)} is not a target (expected http://HOST:PORT or ws://HOST:PORT, no path)` };
  if (!/^(http|ws):\/\/[^/?#@\s]+$/.test(v)) return bad;
  try {
    const u = new URL(v);
    return u.hostname ? { value: v } : bad;
  } catch {
    return bad;
  }
}

function redisUrl(v: string): Refined {
  try {
    const u = new URL(v);
    if ((u.protocol === 'redis:' || u.protocol === 'rediss:') && u.hostname) return { value: v };
  } catch {
    // falls through to the error
  }
  return { error: `${JSON.stringify(v)} is not a Redis URL (expected e.g. "redis://127.0.0.1:6379")` };
}

function origin(v: string): Refined {
  try {
    const u = new URL(v);
    if ((u.protocol === 'http:' || u.protocol === 'https:') && u.origin === v) return { value: v };
  } catch {
    // falls through to the error
  }
  return { error: `${JSON.stringify(v)} is not an origin (expected e.g. "https://app.example.com", no path or trailing slash)` };
}

function urlPath(v: string): Refined {
  return v.startsWith('/') && !/[?#\s]/.test(v) ? { value: v } : { error: `${JSON.stringify(v)} must be a path starting with "/"` };
}

function hashKey(v: string): Refined {
  if (v === 'tenant' || v === 'tenant_sub' || v === 'call_id') return { value: v };
  const m = /^header:([!#$%&'*+.^_`|~0-9A-Za-z-]+)$/.exec(v);
  if (m) return { value: `header:${m[1]!.toLowerCase()}` };
  return { error: `${JSON.stringify(v)} is not a hash key (expected tenant, tenant_sub, call_id or header:NAME)` };
}

function sha256Hex(v: string): Refined {
  return /^[0-9a-fA-F]{64}$/.test(v) ? { value: v.toLowerCase() } : { error: 'expected 64 hex digits (the SHA-256 of the token)' };
}

const hostPort = (host: string, p: number): Schema => ({
  kind: 'object',
  fields: { host: dflt(str, host), port: dflt(port, p) },
});

const store: Schema = {
  kind: 'object',
  fields: {
    kind: dflt({ kind: 'string', enum: ['memory', 'redis', 'redis-cluster'] }, 'memory'),
    url: opt({ kind: 'string', refine: redisUrl }),
    nodes: opt(list({ kind: 'string', refine: redisUrl }, 1)),
    prefix: dflt(str, 'ward:'),
    outage_share: dflt({ kind: 'number', above: 0, max: 1 }, 0.5),
    // Longest a request waits on Redis before the local insurance limits answer (store default 100).
    command_timeout_ms: opt(int(1, 60_000)),
  },
  finish(o, issue) {
    if (o.kind === 'redis' && o.url === undefined) issue('kind', 'store.kind redis needs store.url (e.g. "redis://127.0.0.1:6379")');
    if (o.kind === 'redis-cluster' && o.nodes === undefined) issue('kind', 'store.kind redis-cluster needs store.nodes');
    if (o.kind !== 'redis' && o.url !== undefined) issue('url', 'store.url is only used with kind: redis');
    if (o.kind !== 'redis-cluster' && o.nodes !== undefined) issue('nodes', 'store.nodes is only used with kind: redis-cluster');
    if (o.kind === 'memory' && o.command_timeout_ms !== undefined) issue('command_timeout_ms', 'store.command_timeout_ms is only used with kind: redis or redis-cluster');
  },
};

const auth: Schema = {
  kind: 'object',
  fields: {
    jwks_file: req(str),
    issuer: req(str),
    audience: req(str),
    algorithms: req(list({ kind: 'string', refine: algorithm }, 1)),
    tenant_claim: dflt(str, 'tenant'),
    clock_tolerance_s: dflt({ kind: 'number', min: 0 }, 30),
    dev_signing_key: opt(str),
  },
};

const active: Schema = {
  kind: 'object',
  fields: {
    path: dflt({ kind: 'string', refine: urlPath }, '/healthz'),
    interval_ms: dflt(positiveInt, 2000),
    timeout_ms: dflt(positiveInt, 1000),
    rise: dflt(positiveInt, 2),
    fall: dflt(positiveInt, 3),
  },
  finish(o, issue, path, written) {
    if ((o.timeout_ms as number) >= (o.interval_ms as number)) {
      const mine = written.has('timeout_ms');
      issue(mine ? 'timeout_ms' : 'interval_ms',
        `${showPath(path)}.timeout_ms (${o.timeout_ms}${mine ? '' : ', the default'}) must be less than interval_ms (${o.interval_ms})`);
    }
  },
};

const passive: Schema = {
  kind: 'object',
  fields: {
    consecutive_failures: dflt(positiveInt, 5),
    base_ejection_ms: dflt(positiveInt, 30000),
    max_ejection_ms: dflt(positiveInt, 300000),
  },
  finish(o, issue, path, written) {
    if ((o.max_ejection_ms as number) < (o.base_ejection_ms as number)) {
      const mine = written.has('max_ejection_ms');
      issue(mine ? 'max_ejection_ms' : 'base_ejection_ms',
        `${showPath(path)}.max_ejection_ms (${o.max_ejection_ms}${mine ? '' : ', the default'}) must be at least base_ejection_ms (${o.base_ejection_ms})`);
    }
  },
};

const upstream: Schema = {
  kind: 'object',
  fields: {
    targets: req(list({ kind: 'string', refine: target }, 1)),
    timeout_ms: dflt(positiveInt, 30000),
    pipeline: dflt(bool, false),
    balance: dflt({ kind: 'string', enum: ['least_request', 'round_robin', 'hash'] }, 'least_request'),
    hash: opt({
      kind: 'object',
      fields: {
        key: dflt({ kind: 'string', refine: hashKey }, 'tenant'),
        balance_factor: dflt({ kind: 'number', int: true, above: 100 }, 125),
      },
    }),
    health: opt({
      kind: 'object',
      fields: {
        // Both detectors are on with their defaults once a health block exists; `false` turns one off.
        active: fill({ kind: 'off', of: active }),
        passive: fill({ kind: 'off', of: passive }),
        max_ejection_percent: dflt(percent, 50),
        panic_threshold_percent: dflt(percent, 50),
        slow_start_ms: dflt(int(0), 0),
      },
    }),
  },
  finish(o, issue, path) {
    if (o.hash !== undefined && o.balance !== 'hash') issue('hash', `${showPath(path)}.hash is only used with balance: hash`);
    if (o.balance === 'hash' && o.hash === undefined) o.hash = { key: 'tenant', balance_factor: 125 };
  },
};

const route: Schema = {
  kind: 'object',
  fields: {
    name: req(str),
    prefix: req({ kind: 'string', refine: urlPath }),
    methods: opt(list({ kind: 'string', refine: method }, 1)),
    websocket: dflt(bool, false),
    public: dflt(bool, false),
    upstream: req(str),
    bucket: opt(str),
    concurrency: opt(str),
    enforce: dflt(bool, true),
    message_bucket: opt(str),
    max_message_bytes: dflt(positiveInt, 65536),
    idle_timeout_s: dflt(positive, 60),
    sip: dflt(bool, false),
    call_pool: opt(str),
    max_call_s: dflt(positive, 7200),
  },
  finish(o, issue) {
    if (o.sip && !o.websocket) issue('sip', 'sip: true needs websocket: true (SIP is carried over WebSocket)');
    if (o.message_bucket !== undefined && !o.websocket) issue('message_bucket', 'message_bucket is only used on websocket routes');
    if (o.call_pool !== undefined && !o.sip) issue('call_pool', 'call_pool is only used on SIP routes (sip: true)');
    if (o.public) {
      for (const key of ['bucket', 'concurrency', 'message_bucket', 'call_pool']) {
        if (o[key] !== undefined) issue(key, `a public route has no tenant, so it cannot use ${key}`);
      }
    }
  },
};

const bucket: Schema = {
  kind: 'object',
  fields: {
    rate: req(positive),
    per_s: dflt(positive, 1),
    // Each request takes one whole token, so a capacity under 1 would admit nothing ever.
    burst: { schema: { kind: 'number', min: 1 }, default: (o: Record<string, unknown>) => o.rate },
  },
  finish(o, issue, path) {
    if ((o.burst as number) < 1) {
      issue('rate', `${showPath(path)}.burst defaults to rate (${o.rate}), which is under 1 and would admit nothing: set burst: 1 or more`);
    }
  },
};

const tenant: Schema = {
  kind: 'object',
  fields: {
    buckets: fill(map(bucket)),
    concurrency: fill(map(int(0))),
  },
};

const refusalPace: Schema = {
  kind: 'object',
  fields: {
    rate: dflt(positive, 500),
    per_s: dflt(positive, 1),
    burst: dflt({ kind: 'number', min: 1 }, 100),
    max_waiting: dflt(positiveInt, 512),
  },
};

const flood: Schema = {
  kind: 'object',
  fields: {
    per_ip: opt({
      kind: 'object',
      fields: { rate: req(positive), per_s: dflt(positive, 1), ban_s: dflt({ kind: 'number', min: 0 }, 60) },
    }),
    ipv6_prefix: dflt(int(40, 128), 64),
    max_body_bytes: dflt(positiveInt, 1048576),
    max_header_bytes: dflt(positiveInt, 16384),
    deny: fill(list({ kind: 'string', refine: checkCidr })),
    allow: fill(list({ kind: 'string', refine: checkCidr })),
    // On with its defaults unless set to false (see stages/admit/refusal-pace.ts).
    refusal_pace: fill({ kind: 'off', of: refusalPace }),
    enforce: dflt(bool, true),
  },
};

const step: Schema = {
  kind: 'object',
  fields: { groups: opt(list(str, 1)), percent: opt(percent) },
  finish(o, issue) {
    if (o.groups === undefined && o.percent === undefined) issue(undefined, 'a release step needs groups, percent or both');
  },
};

const release: Schema = {
  kind: 'object',
  fields: {
    routes: req(list(str, 1)),
    stable: req(str),
    canary: req(str),
    tenant_groups: fill(map(list(str))),
    steps: req({ kind: 'list', of: step, min: 1 }),
    step_interval_s: dflt(positive, 300),
    analysis: opt({
      kind: 'object',
      fields: {
        window_s: dflt(positive, 60),
        min_requests: dflt(int(0), 100),
        max_error_rate: req({ kind: 'number', min: 0, max: 1 }),
      },
    }),
  },
};

/** `DIR/gateway.yaml`. */
export const gatewaySchema: Schema = {
  kind: 'object',
  fields: {
    listen: fill(hostPort('0.0.0.0', 8080)),
    admin: fill({
      kind: 'object',
      fields: {
        host: dflt(str, '127.0.0.1'),
        port: dflt(port, 9901),
        console: opt({ kind: 'object', fields: { tokens_file: req(str) } }),
      },
    }),
    store: fill(store),
    auth: req(auth),
    upstreams: req(map(upstream)),
    routes: req({ kind: 'list', of: route }),
    flood: fill(flood),
    tenants: fill(map(tenant)),
    e2e: fill({ kind: 'object', fields: { cors_origins: fill(list({ kind: 'string', refine: origin })) } }),
    releases: fill(map(release)),
  },
};

/** `DIR/tenants/*.yaml`. */
export const tenantFileSchema: Schema = { kind: 'object', fields: { tenants: req(map(tenant)) } };

/** `admin.console.tokens_file`: who may use the ops console. */
export const tokensFileSchema: Schema = {
  kind: 'list',
  of: {
    kind: 'object',
    fields: {
      name: req(str),
      role: req({ kind: 'string', enum: ['viewer', 'operator'] }),
      sha256: req({ kind: 'string', refine: sha256Hex }),
    },
  },
  min: 1,
};
