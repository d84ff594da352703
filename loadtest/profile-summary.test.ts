import { test } from 'node:test';
import assert from 'node:assert/strict';
import { hotFunctions } from './profile-summary.js';

const frame = (functionName: string, url = '', lineNumber = 0) => ({ functionName, url, lineNumber });

test('ranks functions by self time over busy time, merging a function seen under two parents', () => {
  const profile = {
    nodes: [
      { id: 1, callFrame: frame('(root)') },
      { id: 2, callFrame: frame('(idle)') },
      { id: 3, callFrame: frame('parse', 'file:///x/dist/proxy/parser.js', 9) },
      { id: 4, callFrame: frame('parse', 'file:///x/dist/proxy/parser.js', 9) },
      { id: 5, callFrame: frame('', 'file:///x/dist/server/edge.js', 0) },
    ],
    samples: [2, 2, 2, 3, 4, 5, 3, 2],
    timeDeltas: [100, 100, 100, 10, 10, 10, 10, 100],
  };
  const hot = hotFunctions(profile);
  assert.deepEqual(hot[0], { name: 'parse', where: 'proxy/parser.js:10', selfPercent: 75 });
  assert.deepEqual(hot[1], { name: '(anonymous)', where: 'server/edge.js:1', selfPercent: 25 });
  assert.equal(hot.length, 2, 'idle time is left out');
});
