// Messages between the supervisor and its listener threads.

import type { Policy } from '../policy/types.js';
import type { ThreadSnapshot } from './edge-thread.js';

export type ToWorker =
  | { type: 'policy'; policy: Policy }
  | { type: 'snapshot'; id: number }
  | { type: 'drain'; timeoutMs: number };

export type FromWorker =
  | { type: 'ready'; port: number }
  | { type: 'failed'; message: string }
  | { type: 'snapshot'; id: number; snapshot: ThreadSnapshot }
  | { type: 'drained' };
