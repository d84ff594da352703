import { test } from 'node:test';
import assert from 'node:assert/strict';
import { leastStolen, percent } from './samples.js';

test('a run the host stole from is made again, up to the limit, and the least-stolen one is kept', async () => {
  const steals = [0.3, 0.05, 0.2];
  const retried: number[] = [];
  const r = await leastStolen(3, 0.02, async (attempt) => ({ attempt, steal: steals[attempt - 1]! }), (x) => retried.push(x.attempt));
  assert.equal(r.attempts, 3);
  assert.deepEqual(r.kept, { attempt: 2, steal: 0.05 });
  // Told about the first two only: after the last there is no "again".
  assert.deepEqual(retried, [1, 2]);
});

test('a run under the steal limit ends the attempts at once', async () => {
  let made = 0;
  const r = await leastStolen(3, 0.02, async () => ({ n: ++made, steal: made === 1 ? 0.5 : 0.01 }));
  assert.equal(r.attempts, 2);
  assert.equal(r.kept.n, 2);
  assert.equal(made, 2);
  const once = await leastStolen(1, 0.02, async () => ({ steal: 0.9 }));
  assert.equal(once.attempts, 1, 'one attempt allowed: kept however stolen');
  assert.equal(once.kept.steal, 0.9);
});

test('shares print as percentages, one decimal under 10 %', () => {
  assert.equal(percent(0.021), '2.1 %');
  assert.equal(percent(0.42), '42 %');
});
