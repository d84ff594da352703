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

/** Items of one turn, in a list that keeps its capacity: refilled every turn without allocating. */
class HeldList {
  items: (Batched | undefined)[] = [];
  count = 0;

  add(item: Batched): void {
    this.items[this.count++] = item;
  }

  /** Runs and forgets every item; an item that throws (a bug) does not cost the others their turn. */
  runAll(failure: { err: unknown } | undefined): { err: unknown } | undefined {
    const items = this.items;
    for (let i = 0; i < this.count; i++) {
      const item = items[i]!;
      items[i] = undefined;
      try {
        item.runBatched();
      } catch (err) {
        failure ??= { err };
      }
    }
    this.count = 0;
    return failure;
  }
}

// Two of each, swapped every turn: what an item holds while it runs goes to the next turn's list.
let held = new HeldList();
let heldLast = new HeldList();
let spare = new HeldList();
let spareLast = new HeldList();
let scheduled = false;

/** Runs `item.runBatched()` at the end of the current batch of events. */
export function afterBatch(item: Batched): void {
  if (!scheduled) (scheduled = true), setImmediate(runHeld);
  held.add(item);
}

/** As afterBatch, but after every item held with afterBatch in the same turn: refusals, so that the
 * turn's admitted requests reach the upstream (and their answers the clients) before the 429s. */
export function afterBatchLast(item: Batched): void {
  if (!scheduled) (scheduled = true), setImmediate(runHeld);
  heldLast.add(item);
}

function runHeld(): void {
  // An item may hold new work while it runs: that waits for the next turn. An error thrown by an
  // item fails the thread as any other, once the turn's other items ran.
  scheduled = false;
  const now = held;
  const last = heldLast;
  held = spare;
  heldLast = spareLast;
  spare = now;
  spareLast = last;
  const failure = last.runAll(now.runAll(undefined));
  if (failure) throw failure.err;
}
