import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LOADGEN_CPUS, placementNotes, SERVER_CPUS, upstreamCpus } from './scenario.js';

test('the upstream runs beside ward unless a scenario gives ward its core alone, and the report says which', () => {
  assert.equal(upstreamCpus('beside-ward'), SERVER_CPUS);
  assert.equal(upstreamCpus('with-load'), LOADGEN_CPUS);
  assert.match(placementNotes(1)[0]!, new RegExp(`ward and the upstream pinned to core ${SERVER_CPUS}`));
  assert.match(placementNotes(1, 'with-load')[0]!, new RegExp(`ward alone on core ${SERVER_CPUS}, the upstream on core ${LOADGEN_CPUS}`));
  assert.match(placementNotes(2, 'beside-ward')[0]!, /ward \(2 workers\) on cores 0,1, the upstream on core 0/);
});
