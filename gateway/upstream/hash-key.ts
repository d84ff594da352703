// What a `balance: hash` upstream hashes on, compiled once per policy: `tenant`, `tenant_sub`
// (SIP-over-WebSocket sessions: all of one user's calls on one target), `call_id` (call-control
// requests) or `header:NAME`. No key (e.g. the header is absent) falls back to least_request.

import type { HashSpec } from '../policy/types.js';

export interface HashKeySource {
  readonly tenant: string;
  readonly sub?: string | undefined;
  /** A request header by lower-case name. */
  header(name: string): string | undefined;
  /** The raw query string without '?'. */
  readonly query?: string;
}

export type HashKeyFn = (src: HashKeySource) => string | undefined;

function queryParam(query: string | undefined, name: string): string | undefined {
  if (query === undefined || query === '') return undefined;
  const v = new URLSearchParams(query).get(name);
  return v === null || v === '' ? undefined : v;
}

export function compileHashKey(hash: HashSpec | undefined): HashKeyFn {
  const key = hash?.key ?? 'tenant';
  if (key === 'tenant') return (s) => s.tenant;
  if (key === 'tenant_sub') return (s) => (s.sub === undefined ? s.tenant : `${s.tenant}\u0000${s.sub}`);
  if (key === 'call_id') return (s) => s.header('x-call-id') ?? s.header('call-id') ?? queryParam(s.query, 'call_id');
  if (key.startsWith('header:')) {
    const name = key.slice('header:'.length).toLowerCase();
    return (s) => s.header(name);
  }
  throw new Error(`hash key "${key}" is not one of tenant, tenant_sub, call_id, header:NAME`);
}
