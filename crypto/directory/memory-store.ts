// The single-instance directory store. Each method runs without awaiting in between, so on one
// event loop every publish and every take is atomic.
import type { Bundle } from '../sdk/bundle.js';
import {
  DEFAULT_LIMITS, type DirectoryLimits, type DirectoryStore, type FetchedBundle, type PublishOutcome, type StoredLeaf,
} from './store.js';

interface DeviceState {
  identity_key: string;
  signed_prekey: Bundle['signed_prekey'];
  prekeys: Bundle['one_time_prekeys'];
  logged?: { key: string; index: number };
}

interface TenantState {
  users: Map<string, Map<string, DeviceState>>;
  log: StoredLeaf[];
}

export class MemoryDirectoryStore implements DirectoryStore {
  readonly #tenants = new Map<string, TenantState>();
  readonly #limits: Required<DirectoryLimits>;
  #logKey: Uint8Array | undefined;

  constructor(limits: DirectoryLimits = {}) {
    this.#limits = { ...DEFAULT_LIMITS, ...limits };
  }

  #tenant(t: string): TenantState {
    let s = this.#tenants.get(t);
    if (!s) this.#tenants.set(t, (s = { users: new Map(), log: [] }));
    return s;
  }

  async publish(tenant: string, user: string, device: string, bundle: Bundle, leaf: StoredLeaf): Promise<PublishOutcome> {
    const t = this.#tenant(tenant);
    let devices = t.users.get(user);
    if (!devices) t.users.set(user, (devices = new Map()));
    let d = devices.get(device);
    if (!d) {
      if (devices.size >= this.#limits.maxDevicesPerUser) return { error: 'too_many_devices' };
      d = { identity_key: bundle.identity_key, signed_prekey: bundle.signed_prekey, prekeys: [] };
      devices.set(device, d);
    }
    let appended = false;
    if (d.logged?.key !== bundle.identity_key) {
      t.log.push({ ...leaf });
      d.logged = { key: bundle.identity_key, index: t.log.length - 1 };
      d.prekeys = [];
      appended = true;
    }
    d.identity_key = bundle.identity_key;
    d.signed_prekey = bundle.signed_prekey;
    d.prekeys.push(...bundle.one_time_prekeys);
    if (d.prekeys.length > this.#limits.maxPrekeysPerDevice) d.prekeys.splice(0, d.prekeys.length - this.#limits.maxPrekeysPerDevice);
    return { index: d.logged.index, size: t.log.length, appended, prekeys: d.prekeys.length };
  }

  async takeBundles(tenant: string, user: string): Promise<FetchedBundle[]> {
    const devices = this.#tenants.get(tenant)?.users.get(user);
    if (!devices) return [];
    return [...devices.keys()].sort().map((device) => {
      const d = devices.get(device)!;
      const opk = d.prekeys.shift();
      return { device, identity_key: d.identity_key, signed_prekey: d.signed_prekey, ...(opk ? { one_time_prekey: opk } : {}) };
    });
  }

  async logSize(tenant: string): Promise<number> {
    return this.#tenants.get(tenant)?.log.length ?? 0;
  }

  async logLeaves(tenant: string, from: number, to: number): Promise<StoredLeaf[]> {
    return (this.#tenants.get(tenant)?.log ?? []).slice(from, to).map((l) => ({ ...l }));
  }

  async logSigningKey(generate: () => Uint8Array): Promise<Uint8Array> {
    this.#logKey ??= generate();
    return this.#logKey;
  }

  async close(): Promise<void> {}

  /** Everything stored, as JSON (tests search it for what must never be there). */
  dump(): string {
    const out: Record<string, unknown> = {};
    for (const [t, s] of this.#tenants) out[t] = { users: Object.fromEntries([...s.users].map(([u, d]) => [u, Object.fromEntries(d)])), log: s.log };
    return JSON.stringify(out);
  }
}
