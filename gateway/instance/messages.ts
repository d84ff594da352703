// Messages between the supervisor and its listener threads.

import type { Policy } from '../policy/types.js';
import type { ThreadSnapshot } from './edge-thread.js';
import type { ReleaseCounts } from '../release/release-router.js';
import type { ReleaseState } from '../release/release-state.js';

export type ToWorker =
  /** upstreamBuffers: the main thread's target tables for this policy (shared, not copied). */
  | { type: 'policy'; policy: Policy; upstreamBuffers?: Record<string, SharedArrayBuffer> }
  | { type: 'release-states'; states: Record<string, ReleaseState> }
  | { type: 'snapshot'; id: number }
  | { type: 'drain'; timeoutMs: number }
  /** After every thread drained: close what is left and end. */
  | { type: 'close' };

export type FromWorker =
  | { type: 'ready'; port: number }
  | { type: 'failed'; message: string }
  | { type: 'snapshot'; id: number; snapshot: ThreadSnapshot }
  | { type: 'drained' }
  /** Every socket and handle of the thread is closed; the thread may linger on others' timers. */
  | { type: 'closed' }
  /** An uncaught error in the thread: it closed its sockets and is ending. */
  | { type: 'died'; message: string }
  /** Every second while requests on released routes are proxied: for the ReleaseController. */
  | { type: 'release-counts'; counts: ReleaseCounts }
  /** An address the flood guard just banned, for the supervisor's kernel ban table (`--kernel-bans`). */
  | { type: 'ban'; addr: Uint8Array; forMs: number };
