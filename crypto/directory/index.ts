// ward's side of the end-to-end call keys: mount E2EDirectory on /v1/e2e/* and E2ERelay on the
// /v1/e2e/relay WebSocket, after authentication (tenant from the token, user = its sub).
export { E2EDirectory } from './directory.js';
export type { E2EAnswer, E2EContext, E2EDirectoryOptions } from './directory.js';
export { E2ERelay } from './relay.js';
export type { E2ERelayOptions, RelayBus, RelayConnection } from './relay.js';
export { RedisRelayBus } from './redis-relay-bus.js';
export type { RedisRelayBusOptions } from './redis-relay-bus.js';
export { MemoryDirectoryStore } from './memory-store.js';
export { RedisDirectoryStore } from './redis-store.js';
export type { RedisDirectoryOptions } from './redis-store.js';
export { DEFAULT_LIMITS } from './store.js';
export type { DirectoryLimits, DirectoryStore, FetchedBundle, PublishOutcome, PublishResult, StoredLeaf } from './store.js';
