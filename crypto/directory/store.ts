// The key directory's storage port. memory-store.ts is the single-instance default; redis-store.ts
// serves many instances (every step that must be atomic is one Lua script). Both hold only public
// keys, signatures and ward's own log signing key: nothing that could decrypt a call.
import type { Bundle, OneTimePrekey, SignedPrekey } from '../sdk/bundle.js';

/** One key-log entry as stored; the Merkle leaf is computed from it (PROTOCOL.md §8). */
export interface StoredLeaf {
  user: string;
  device: string;
  identity_key: string;
  ts: number;
}

export interface FetchedBundle {
  device: string;
  identity_key: string;
  signed_prekey: SignedPrekey;
  one_time_prekey?: OneTimePrekey;
}

export interface PublishResult {
  /** Log index of the device's current identity key. */
  index: number;
  /** Log size once the publish is done (the key is in the log before the answer). */
  size: number;
  /** True when this publish appended a log entry (a new identity key for the device). */
  appended: boolean;
  /** One-time prekeys now stored for the device. */
  prekeys: number;
}

export type PublishOutcome = PublishResult | { error: 'too_many_devices' };

export interface DirectoryLimits {
  /** One-time prekeys kept per device; the oldest are dropped beyond it. Default 1000. */
  maxPrekeysPerDevice?: number;
  /** Devices per user; a new device beyond it is refused (409 too_many_devices). Default 100. */
  maxDevicesPerUser?: number;
}

export const DEFAULT_LIMITS: Required<DirectoryLimits> = { maxPrekeysPerDevice: 1000, maxDevicesPerUser: 100 };

export interface DirectoryStore {
  /** At once: saves the device record, appends a log leaf when the device's identity key differs
   * from the last one logged for it (and then drops the prekeys of the old key), adds the one-time
   * prekeys. `leaf` is the entry to append if one is needed. */
  publish(tenant: string, user: string, device: string, bundle: Bundle, leaf: StoredLeaf): Promise<PublishOutcome>;
  /** One bundle per device of the user, each with at most one one-time prekey, removed from the
   * store as it is handed out (never handed out twice, across instances). */
  takeBundles(tenant: string, user: string): Promise<FetchedBundle[]>;
  logSize(tenant: string): Promise<number>;
  /** Leaves [from, to) of the tenant's log. */
  logLeaves(tenant: string, from: number, to: number): Promise<StoredLeaf[]>;
  /** The log signing key (Ed25519, 64-byte secret): the stored one, or `generate()`'s, stored if no
   * other instance stored one first. */
  logSigningKey(generate: () => Uint8Array): Promise<Uint8Array>;
  close(): Promise<void>;
}
