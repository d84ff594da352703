// Builds a thread's LimitStore from a handle the supervisor made: the memory tables live in
// SharedArrayBuffers (one budget for every worker thread); with Redis, each thread has its own
// client and shares the instance's memory tables as its outage insurance.

import type { StoreSpec } from '../policy/types.js';
import type { LimitStore, StoreStatus } from './types.js';
import { MemoryLimitStore, type MemoryLimitStoreHandle } from './memory/memory-store.js';
import { RedisLimitStore, type RedisLimitStoreStats } from './redis/redis-store.js';

export type { RedisLimitStoreStats };

export interface StoreHandle {
  readonly spec: StoreSpec;
  readonly memory: MemoryLimitStoreHandle;
}

export function createStoreHandle(spec: StoreSpec): StoreHandle {
  // Sized for an edge: a million tenant buckets (20 MiB) and 65,536 pools with live leases (1.3 MiB),
  // allocated once. A bucket evicted from a full table is forgotten as full (never over-admits more
  // than one burst); a pool with live leases is never evicted.
  return { spec, memory: MemoryLimitStore.create({ bucketSlots: 1 << 20, poolSlots: 1 << 16 }).shared() };
}

export function openStore(h: StoreHandle, onStateChange?: (s: StoreStatus, cause?: Error) => void): LimitStore {
  const memory = MemoryLimitStore.attach(h.memory);
  if (h.spec.kind === 'memory') return memory;
  return new RedisLimitStore(h.spec, memory, { onStateChange, commandTimeoutMs: h.spec.command_timeout_ms });
}

/** Waits (bounded) until a shared store is connected, so a fresh instance starts on the shared
 * budget rather than on its insurance share; true at once for the memory store. */
export function storeReady(store: LimitStore, timeoutMs = 2000): Promise<boolean> {
  return store instanceof RedisLimitStore ? store.ready(timeoutMs) : Promise.resolve(true);
}

/** The Redis store's counters (fail-opens, outages, errors, script time), for metrics. */
export function storeStats(store: LimitStore): RedisLimitStoreStats | undefined {
  return store instanceof RedisLimitStore ? store.stats() : undefined;
}
