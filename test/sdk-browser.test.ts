// The ward/crypto SDK in a real browser (Debian's chromium through playwright-core): the compiled
// ES modules and libsodium's ESM build, loaded with an import map and nothing else, complete a call
// between two devices in the page. Without chromium the test is skipped on a developer's machine
// and FAILS under CI (CI=true), where .ci/run installs it.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createRequire } from 'node:module';
import { dirname, join, normalize } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromiumSkip as skip, launchChromium } from './support/chromium.js';


const SDK_DIR = fileURLToPath(new URL('../crypto/sdk/', import.meta.url));
const require = createRequire(import.meta.url);
// The packages export no package.json: find their ESM builds next to their CommonJS entries.
const wrappersCjs = require.resolve('libsodium-wrappers');
const WRAPPERS = join(dirname(wrappersCjs), '../modules-esm/libsodium-wrappers.mjs');
const SODIUM = join(dirname(createRequire(wrappersCjs).resolve('libsodium')), '../modules-esm/libsodium.mjs');

const PAGE = `<!doctype html><meta charset="utf-8"><title>ward/crypto</title>
<script type="importmap">{"imports":{"libsodium-wrappers":"/lib/libsodium-wrappers.mjs","libsodium":"/lib/libsodium.mjs"}}</script>
<script type="module">
import { Device } from '/sdk/index.js';
try {
  const alice = await Device.create({ tenant: 'acme', user: 'alice', device: 'a1' });
  const bob = await Device.create({ tenant: 'acme', user: 'bob', device: 'b1' });
  const b = bob.bundle(1);
  const fetched = { user: 'bob', device: 'b1', identity_key: b.identity_key, signed_prekey: b.signed_prekey, one_time_prekey: b.one_time_prekeys[0] };
  const wire = (x) => JSON.parse(JSON.stringify(x));
  const { session, hello } = await alice.call(fetched, { callId: 'browser-call' });
  const { session: bobSession, reply } = await bob.answer(wire(hello));
  const reveal = await session.confirm(wire(reply));
  await bobSession.confirm(wire(reveal));
  const text = new TextDecoder().decode(bobSession.open(session.seal(new TextEncoder().encode('hello from the browser'))));
  window.result = { sas: [session.sas, bobSession.sas], text, nodeGlobals: typeof process !== 'undefined' };
} catch (e) { window.result = { error: String(e && e.stack || e) }; }
</script>`;

test('the SDK completes a call inside a real browser, with no Node.js APIs', { skip }, async () => {
  const server = createServer((req, res) => {
    const url = new URL(req.url!, 'http://x').pathname;
    let file: string | undefined;
    if (url === '/') return void res.writeHead(200, { 'content-type': 'text/html' }).end(PAGE);
    if (url === '/lib/libsodium-wrappers.mjs') file = WRAPPERS;
    else if (url === '/lib/libsodium.mjs') file = SODIUM;
    else if (url.startsWith('/sdk/')) {
      const p = normalize(join(SDK_DIR, url.slice(5)));
      if (p.startsWith(SDK_DIR) && p.endsWith('.js')) file = p;
    }
    if (file === undefined || !existsSync(file)) return void res.writeHead(404).end();
    res.writeHead(200, { 'content-type': 'text/javascript' }).end(readFileSync(file));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const browser = await launchChromium();
  try {
    const page = await browser.newPage();
    const failed: string[] = [];
    page.on('requestfailed', (r) => failed.push(r.url()));
    page.on('response', (r) => r.status() >= 400 && failed.push(`${r.status()} ${r.url()}`));
    await page.goto(`http://127.0.0.1:${(server.address() as AddressInfo).port}/`);
    await page.waitForFunction(() => (window as unknown as { result?: unknown }).result !== undefined, undefined, { timeout: 20_000 });
    const result = (await page.evaluate(() => (window as unknown as { result: unknown }).result)) as {
      sas?: [string, string];
      text?: string;
      nodeGlobals?: boolean;
      error?: string;
    };
    assert.equal(result.error, undefined, result.error);
    assert.deepEqual(failed, [], 'every module the SDK imports loaded');
    assert.equal(result.sas![0], result.sas![1]);
    assert.match(result.sas![0], /^\d{6}$/);
    assert.equal(result.text, 'hello from the browser');
    assert.equal(result.nodeGlobals, false);
  } finally {
    await browser.close();
    server.close();
  }
});
