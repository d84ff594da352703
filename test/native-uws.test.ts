// ward must run on uWebSockets.js's native server, never on the package's silent JS fallback.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { uws, uwsNative } from '../gateway/server/uws.js';
import { policyDir, basePolicy, startWard } from './support/ward-process.js';
import { request } from './support/http.js';

test('the loaded uWS module is the native binary, not the JS fallback', () => {
  assert.equal(uwsNative.app, true);
  assert.equal(typeof (uws as unknown as { getParts?: unknown }).getParts, 'function');
  // The package's own entry would hand out the fallback when asked to; ward does not use it.
  const require = createRequire(import.meta.url);
  const fallback = require('uWebSockets.js/dist/index.js');
  assert.notEqual(fallback.App, uws.App);
  assert.ok(!String(fallback.App).includes('[native code]'), 'the fallback is plain JS');
});

test('a running ward answers from the native server even when the package is told to fall back', async () => {
  const pol = policyDir();
  pol.write(basePolicy('http://127.0.0.1:9'));
  const ward = await startWard(pol.dir, { env: { UWS_USE_FALLBACK: 'true' } });
  try {
    const r = await request(`${ward.base}/nowhere`);
    assert.equal(r.status, 404);
    // Only the native server writes its mark header; the JS fallback has none.
    assert.equal(r.headers['uwebsockets'], '20');
  } finally {
    await ward.stop();
    pol.remove();
  }
});

test('ward refuses to start when the native binary cannot load, with a one-line reason', async () => {
  const { spawnSync } = await import('node:child_process');
  const { writeFileSync, mkdtempSync } = await import('node:fs');
  const { join } = await import('node:path');
  const { tmpdir } = await import('node:os');
  const { CLI } = await import('./support/ward-process.js');
  const dir = mkdtempSync(join(tmpdir(), 'ward-nodlopen-'));
  // Simulates a machine where the .node binary does not load (wrong glibc, wrong ABI).
  const preload = join(dir, 'no-dlopen.cjs');
  writeFileSync(preload, "process.dlopen = () => { throw new Error('simulated: GLIBC_2.38 not found'); };\n");
  const pol = policyDir();
  pol.write(basePolicy('http://127.0.0.1:9'));
  const r = spawnSync(process.execPath, ['--require', preload, CLI, 'serve', '--policies', pol.dir, '--workers', '1'], { encoding: 'utf8', timeout: 15_000 });
  pol.remove();
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /^ward: uWebSockets.js native binary .* does not load .*simulated: GLIBC_2\.38 not found.*refuses to run on the slow JS fallback/);
  assert.doesNotMatch(r.stdout, /"msg":"listening"/);
});
