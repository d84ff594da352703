// Every broken policy under policies/fixtures/invalid/ must produce exactly the lines in its
// expected.txt: the FILE:LINE:COL an operator sees is part of the contract.

import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { loadPolicy } from './loader.js';

const fixtures = fileURLToPath(new URL('../../../policies/fixtures/', import.meta.url));
const invalid = join(fixtures, 'invalid');

for (const name of readdirSync(invalid).sort()) {
  test(`invalid fixture ${name} reports exactly its expected problems`, async () => {
    const dir = join(invalid, name);
    const expected = readFileSync(join(dir, 'expected.txt'), 'utf8').trimEnd().split('\n');
    const r = await loadPolicy(dir);
    assert.equal(r.ok, false);
    if (r.ok) return;
    // Paths in problems start with the directory as given; expected.txt has them relative to it.
    const lines = r.problems.map(
      (p) => `${relative(dir, p.file)}:${p.line}:${p.col}: ${p.message.replaceAll(dir + '/', '')}`,
    );
    assert.deepEqual(lines, expected);
  });
}

test('the minimal valid fixture loads', async () => {
  const r = await loadPolicy(join(fixtures, 'valid-minimal'));
  assert.ok(r.ok, r.ok ? '' : JSON.stringify(r.problems));
});
