import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { RefusalPace, pacedWaiting, releaseAllPaced, type PaceCounts, type PacedRefusal } from './refusal-pace.js';

/** A refusal that notes when it was written. */
class Item implements PacedRefusal {
  aborted = false;
  at = -1;
  constructor(private readonly t0: number) {}
  runBatched(): void {
    this.at = performance.now() - this.t0;
  }
}

const counts = (): PaceCounts => ({ waited: { n: 0 }, overflow: { n: 0 } });

/** Offers n refusals; the ones the pace did not keep are written by the caller, as the edge does. */
function offer(pace: RefusalPace, items: Item[]): { immediate: Item[]; held: Item[] } {
  const immediate: Item[] = [];
  const held: Item[] = [];
  for (const it of items) {
    if (pace.hold(it)) held.push(it);
    else immediate.push(it), it.runBatched();
  }
  return { immediate, held };
}

async function until(cond: () => boolean, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out');
    await sleep(5);
  }
}

test('the burst goes at once, the rest waits and is released at the pace, in order', async () => {
  const c = counts();
  const pace = new RefusalPace({ rate: 50, per_s: 1, burst: 5, max_waiting: 100 }, c);
  const t0 = performance.now();
  const items = Array.from({ length: 25 }, () => new Item(t0));
  const { immediate, held } = offer(pace, items);
  assert.equal(immediate.length, 5);
  assert.equal(held.length, 20);
  assert.equal(c.waited.n, 20);
  assert.equal(pace.waitingCount, 20);
  await until(() => held.every((i) => i.at >= 0), 3000);
  // 20 at 50/s: the last one about 400 ms after the first, never all at once.
  const last = held.at(-1)!.at;
  assert.ok(last >= 340 && last < 1500, `last waiting refusal written after ${last.toFixed(0)} ms`);
  assert.ok(held[0]!.at < 100, `first waiting refusal after ${held[0]!.at.toFixed(0)} ms`);
  for (let i = 1; i < held.length; i++) assert.ok(held[i]!.at >= held[i - 1]!.at, 'released in arrival order');
  assert.equal(pace.waitingCount, 0);
  assert.equal(pacedWaiting(), 0);
});

test('a refusal whose client left is skipped and costs the others no time', async () => {
  const pace = new RefusalPace({ rate: 20, per_s: 1, burst: 1, max_waiting: 100 });
  const t0 = performance.now();
  const items = Array.from({ length: 11 }, () => new Item(t0));
  const { held } = offer(pace, items);
  assert.equal(held.length, 10);
  for (const it of held.slice(0, 8)) it.aborted = true;
  await until(() => held.slice(8).every((i) => i.at >= 0), 3000);
  // Two left at 20/s: ~100 ms, not the ~500 ms ten would take.
  const last = held.at(-1)!.at;
  assert.ok(last < 300, `the last live refusal waited ${last.toFixed(0)} ms`);
  assert.ok(held.slice(0, 8).every((i) => i.at === -1), 'nothing written for a client that left');
  assert.equal(pacedWaiting(), 0);
});

test('past max_waiting a refusal is answered at once and counted as overflow', () => {
  const c = counts();
  const pace = new RefusalPace({ rate: 1, per_s: 1, burst: 2, max_waiting: 3 }, c);
  const { immediate, held } = offer(pace, Array.from({ length: 10 }, () => new Item(0)));
  assert.equal(held.length, 3);
  assert.equal(immediate.length, 7); // 2 within the burst, 5 past max_waiting
  assert.equal(c.overflow.n, 5);
  assert.equal(c.waited.n, 3);
  releaseAllPaced();
});

test('a new refusal never overtakes one that waits, even when a token came back meanwhile', () => {
  const pace = new RefusalPace({ rate: 1000, per_s: 1, burst: 1, max_waiting: 100 });
  const { held } = offer(pace, [new Item(0), new Item(0)]);
  assert.equal(held.length, 1);
  const until = performance.now() + 3;
  while (performance.now() < until); // tokens refill (no timer runs meanwhile); the waiting refusal is first in line
  assert.equal(pace.hold(new Item(0)), true);
  releaseAllPaced();
});

test('draining releases every waiting refusal of the thread at once', async () => {
  const a = new RefusalPace({ rate: 1, per_s: 60, burst: 1, max_waiting: 100 });
  const b = new RefusalPace({ rate: 1, per_s: 60, burst: 1, max_waiting: 100 });
  const t0 = performance.now();
  const ha = offer(a, Array.from({ length: 6 }, () => new Item(t0))).held;
  const hb = offer(b, Array.from({ length: 4 }, () => new Item(t0))).held;
  assert.equal(pacedWaiting(), 8);
  releaseAllPaced();
  await sleep(5); // written at the end of the turn
  for (const it of [...ha, ...hb]) assert.ok(it.at >= 0 && it.at < 200, `written ${it.at.toFixed(0)} ms after`);
  assert.equal(pacedWaiting(), 0);
});
