import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setImmediate as turn } from 'node:timers/promises';
import { spawnSync } from 'node:child_process';
import { afterBatch, afterBatchLast } from './event-batch.js';

test('held work runs after the current batch, in order, and work held while it runs gets the next turn', async () => {
  const ran: string[] = [];
  afterBatch({ runBatched: () => ran.push('a') });
  afterBatch({
    runBatched: () => {
      ran.push('b');
      afterBatch({ runBatched: () => ran.push('held by b') });
    },
  });
  ran.push('batch');
  await turn();
  assert.deepEqual(ran, ['batch', 'a', 'b']);
  await turn();
  assert.deepEqual(ran, ['batch', 'a', 'b', 'held by b']);
});

test('an item that throws does not cost the others their turn, and the error still ends the process', () => {
  // In a child process: an uncaught error is meant to end the thread (fail fast), which the test
  // runner would otherwise take for this test failing.
  const script = `
    const { afterBatch } = await import(${JSON.stringify(new URL('./event-batch.js', import.meta.url).href)});
    afterBatch({ runBatched: () => console.log('first') });
    afterBatch({ runBatched: () => { throw new Error('a bug'); } });
    afterBatch({ runBatched: () => console.log('third') });`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 10_000 });
  assert.equal(r.stdout, 'first\nthird\n');
  assert.match(r.stderr, /Error: a bug/);
  assert.equal(r.status, 1);
});

test('work held with afterBatchLast runs after the turn\'s other held work, whatever order it was held in, turn after turn', async () => {
  for (let round = 0; round < 3; round++) {
    const ran: string[] = [];
    afterBatchLast({ runBatched: () => ran.push('refusal 1') });
    afterBatch({ runBatched: () => ran.push('upstream write') });
    afterBatchLast({
      runBatched: () => {
        ran.push('refusal 2');
        afterBatch({ runBatched: () => ran.push('held by refusal 2') });
      },
    });
    afterBatch({ runBatched: () => ran.push('answer') });
    await turn();
    assert.deepEqual(ran, ['upstream write', 'answer', 'refusal 1', 'refusal 2']);
    await turn();
    assert.deepEqual(ran.at(-1), 'held by refusal 2');
  }
});
