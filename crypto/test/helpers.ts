// Shared by the crypto tests: turning a published bundle into what a caller fetches, and asserting
// typed error codes.
import assert from 'node:assert/strict';
import type { Bundle, PeerBundle } from '../sdk/bundle.js';
import type { Device } from '../sdk/device.js';
import { E2EError, type E2EErrorCode } from '../sdk/errors.js';
import type { E2EAnswer, E2EDirectory } from '../directory/directory.js';

/** What GET /users/{user}/bundles would return for `device`, handing out one-time prekey `opk`. */
export function fetched(device: Device, bundle: Bundle, opk: number | null = 0): PeerBundle {
  const b: PeerBundle = { user: device.user, device: device.device, identity_key: bundle.identity_key, signed_prekey: bundle.signed_prekey };
  if (opk !== null) b.one_time_prekey = bundle.one_time_prekeys[opk]!;
  return b;
}

/** JSON round trip: what crosses the wire. */
export function wire<T>(v: T): T {
  return JSON.parse(JSON.stringify(v)) as T;
}

export async function rejectsWith(p: Promise<unknown> | (() => unknown), code: E2EErrorCode): Promise<E2EError> {
  let err: unknown;
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (e) {
    err = e;
  }
  assert.ok(err instanceof E2EError, `expected E2EError ${code}, got ${String(err)}`);
  assert.equal(err.code, code, err.message);
  return err;
}

export function throwsWith(fn: () => unknown, code: E2EErrorCode): E2EError {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof E2EError, `expected E2EError ${code}, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    return e;
  }
  assert.fail(`expected E2EError ${code}, nothing was thrown`);
}

export const bytes = (s: string) => new TextEncoder().encode(s);
export const text = (b: Uint8Array) => new TextDecoder().decode(b);



export interface Api {
  put(device: string, body: unknown): Promise<E2EAnswer>;
  get(pathAndQuery: string): Promise<E2EAnswer>;
  /** GET that must answer 200; returns the JSON body as it would cross the wire. */
  ok<T = any>(pathAndQuery: string): Promise<T>;
}

/** The endpoints as one authenticated user of one tenant sees them (what the gateway would pass). */
export function api(dir: E2EDirectory, tenant: string, user: string): Api {
  const ctx = { tenant, user };
  const self: Api = {
    put: async (device, body) => {
      const raw = body instanceof Uint8Array ? body : bytes(typeof body === 'string' ? body : JSON.stringify(body));
      return wire(await dir.handle('PUT', `/devices/${encodeURIComponent(device)}`, new URLSearchParams(), raw, ctx));
    },
    get: async (pathAndQuery) => {
      const u = new URL('http://ward' + pathAndQuery);
      return wire(await dir.handle('GET', u.pathname, u.searchParams, null, ctx));
    },
    ok: async (pathAndQuery) => {
      const r = await self.get(pathAndQuery);
      assert.equal(r.status, 200, `${pathAndQuery}: ${JSON.stringify(r.body)}`);
      return r.body as any;
    },
  };
  return self;
}
