// ward/crypto: the SDK tenants embed (Node 20+ and browsers; libsodium-wrappers and Web APIs only).
// PROTOCOL.md is the specification; the names below are the public API.
export { Device, HELLO_WINDOW_MS } from './device.js';
export type { CallOptions, DeviceOptions, IdentityOptions } from './device.js';
export { CallSession, CallerSession, CalleeSession } from './session.js';
export type { Peer } from './session.js';
export type { Hello, HelloParty, Reply, Reveal } from './handshake.js';
export type { Bundle, OneTimePrekey, PeerBundle, SignedPrekey } from './bundle.js';
export { MAX_ONE_TIME_PREKEYS } from './bundle.js';
export { KeyLog } from './key-log.js';
export type { ConsistencyProof, InclusionProof, LogEntries, LogEntry, LogHead, ProvenKey } from './key-log.js';
export { E2EError, IdentityChangedError } from './errors.js';
export type { E2EErrorCode } from './errors.js';
export { MemoryStorage } from './storage.js';
export type { DeviceStorage } from './storage.js';
export { ready, toB64 as toBase64url, fromB64 as fromBase64url } from './primitives.js';
