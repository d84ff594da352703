// Work that writes to a socket, held until ward has handled the batch of events the event loop
// delivered (setImmediate runs right after the poll phase that delivered them), then run in order.
//
// Why: every write wakes the socket's reader. One at a time, ward wakes its peers once per request:
// an upstream on ward's core preempts ward on the spot, serves that one request and hands the core
// back (two context switches), and a client on another core is woken with an inter-processor
// interrupt, answers, and sleeps again before ward's next write. Written together, each peer wakes
// about once for the lot. Used for bodiless upstream request heads and pipelines
// (proxy/http-client.ts), small whole upstream answers and, after all of those (afterBatchLast),
// bodiless refusals (server/http-exchange.ts); measured in README.md, Performance, "Batched writes", "Upstream
// pipelining" and "Refusals written after the turn".
//
// The hold lasts one turn of the event loop: the rest of the events of that turn (a few at light
// load, about two per connection at peak). There is deliberately no size cap that runs the held
// work early: running it from inside another socket's callback (a uWS handler, where uWS corks that
// socket) made ward half again as expensive per request in the bench, the opposite of the point.

/** An item of held work. */
export interface Batched {
  runBatched(): void;
}

const held: Batched[] = [];
const heldLast: Batched[] = [];
let scheduled = false;

/** Runs `item.runBatched()` at the end of the current batch of events. */
export function afterBatch(item: Batched): void {
  if (!scheduled) (scheduled = true), setImmediate(runHeld);
  held.push(item);
}

/** As afterBatch, but after every item held with afterBatch in the same turn: refusals, so that the
 * turn's admitted requests reach the upstream (and their answers the clients) before the 429s. */
export function afterBatchLast(item: Batched): void {
  if (!scheduled) (scheduled = true), setImmediate(runHeld);
  heldLast.push(item);
}

function runHeld(): void {
  // An item may hold new work while it runs: that waits for the next turn. An item that throws
  // (a bug) does not cost the others their turn; the error then fails the thread as any other.
  scheduled = false;
  const n = held.length;
  const m = heldLast.length;
  let failure: { err: unknown } | undefined;
  for (let i = 0; i < n; i++) {
    try {
      held[i]!.runBatched();
    } catch (err) {
      failure ??= { err };
    }
  }
  for (let i = 0; i < m; i++) {
    try {
      heldLast[i]!.runBatched();
    } catch (err) {
      failure ??= { err };
    }
  }
  held.splice(0, n);
  heldLast.splice(0, m);
  if ((held.length > 0 || heldLast.length > 0) && !scheduled) (scheduled = true), setImmediate(runHeld);
  if (failure) throw failure.err;
}
