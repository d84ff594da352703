// Bodiless upstream requests started while ward handles one batch of client events are written
// together, once the batch is over: setImmediate runs right after the event-loop phase that
// delivered the batch.
//
// Why: every write to an upstream connection wakes its reader. When the upstream shares ward's
// core (a sidecar, or the bench's placement), the woken upstream preempts ward on the spot, serves
// that one request and hands the core back: about two context switches per proxied request.
// Written together, the upstream wakes about once for the lot. Measured in the bench placement:
// 0.59 → 0.37 involuntary context switches per proxied request, ~1.8 µs less CPU per request.
// Holding the socket (not the call) matters: a call retried on a fresh connection before the batch
// leaves writes its head there itself, and its old, destroyed socket is skipped here.

import type { Socket } from 'node:net';

/** Sent at once when this many are waiting: bounds how long the first request of a big batch waits
 * for the rest (about this many requests of ward's own work) when the upstream runs elsewhere. */
const BATCH_MAX = 16;

const sockets: Socket[] = [];
const heads: string[] = [];

/** Writes `head` to `socket` when the current batch is over. Only for a connection nothing else
 * writes to before its answer arrives (a request without a body), so the byte order holds. */
export function writeAfterBatch(socket: Socket, head: string): void {
  if (sockets.length === 0) setImmediate(flushBatch);
  sockets.push(socket);
  heads.push(head);
  if (sockets.length >= BATCH_MAX) flushBatch();
}

function flushBatch(): void {
  for (let i = 0; i < sockets.length; i++) {
    const s = sockets[i]!;
    if (!s.destroyed) s.write(heads[i]!);
  }
  sockets.length = 0;
  heads.length = 0;
}
