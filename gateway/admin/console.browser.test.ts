// The ops console in a real browser (Debian's chromium driven by playwright-core), served by the
// gateway's admin server, over upstream targets that really serve traffic.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { chromium, type Browser } from 'playwright-core';
import type { AdminToken } from '../policy/types.js';
import { LoopWatch } from '../upstream/loop-watch.js';
import { closeExchangeAgent, exchange, startTarget, type TargetServer } from '../upstream/target-servers.js';
import { UpstreamRegistry } from '../upstream/upstream-registry.js';
import { AdminActions } from './admin-actions.js';
import { handleAdmin, type AdminContext } from './admin-api.js';
import { AdminServer } from './admin-server.js';

const CHROMIUM = process.env.WARD_CHROMIUM ?? '/usr/bin/chromium';
const sha = (s: string): string => createHash('sha256').update(s).digest('hex');
const OP = 'op-token-1';
const VIEW = 'view-token-1';
const TOKENS: AdminToken[] = [
  { name: 'olga', role: 'operator', sha256: sha(OP) },
  { name: 'vic', role: 'viewer', sha256: sha(VIEW) },
];

const skip = existsSync(CHROMIUM) ? false : `no chromium at ${CHROMIUM}`;
const watch = new LoopWatch().start();
const targets: TargetServer[] = [];
const registry = new UpstreamRegistry({ loopWatch: watch });
const actions = new AdminActions({ upstreams: () => registry.groups() });
const ctx: AdminContext = {
  tokens: () => TOKENS,
  actions,
  overview: () => ({ policy_version: 'f00dfeed', last_reload: { at: Date.now(), result: 'success' }, readiness: { status: 'ok', reasons: [] }, top_refusals: [{ tenant: 'acme', count: 7 }] }),
};
const admin = new AdminServer({
  readiness: () => ({ serving: true, reasons: [] }),
  metrics: async () => ({ contentType: 'text/plain', text: '' }),
  console: (req, res) => void handleAdmin(req, res, ctx),
});
// Another origin, as an attacker's page would be.
const other = http.createServer((_req, res) => res.writeHead(200, { 'content-type': 'text/html' }).end('<!doctype html><title>elsewhere</title>'));
let base = '';
let otherBase = '';
let browser: Browser | undefined;

before(async () => {
  if (skip) return;
  for (let i = 0; i < 3; i++) targets.push(await startTarget());
  registry.apply({ upstreams: { api: { name: 'api', targets: targets.map((t) => t.url), timeout_ms: 2000, balance: 'round_robin' } } });
  await actions.start();
  base = `http://127.0.0.1:${await admin.listen('127.0.0.1', 0)}`;
  await new Promise<void>((r) => other.listen(0, '127.0.0.1', r));
  otherBase = `http://127.0.0.1:${(other.address() as AddressInfo).port}`;
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-dev-shm-usage'] });
});

after(async () => {
  await browser?.close();
  actions.stop();
  watch.stop();
  closeExchangeAgent();
  await admin.close();
  await new Promise((r) => other.close(r));
  await Promise.all(targets.map((t) => t.close()));
});

describe('the ops console in a browser', { skip }, () => {
  it('an operator sees the targets, drains one, sees it draining and the audit entry; traffic avoids it', async () => {
    const context = await browser!.newContext({ extraHTTPHeaders: { Authorization: `Bearer ${OP}` } });
    const page = await context.newPage();
    const res = await page.goto(`${base}/admin/`);
    assert.equal(res!.status(), 200);
    const victim = targets[1]!.url;
    const state = page.locator(`tr[data-target="${victim}"] [data-state]`);
    await state.waitFor();
    assert.equal(await state.textContent(), 'healthy');
    assert.equal(await page.locator('#who').textContent(), 'olga (operator)');
    assert.equal(await page.locator('#policy-version').textContent(), 'f00dfeed');
    await page.locator(`tr[data-target="${victim}"] button[data-action="drain"]`).click();
    await page.waitForFunction((sel) => document.querySelector(sel)?.textContent === 'draining', `tr[data-target="${victim}"] [data-state]`);
    await page.locator('tr[data-audit="drain"]').waitFor();
    const audit = await page.locator('tr[data-audit="drain"]').first().textContent();
    assert.match(audit!, /olga/);
    assert.match(audit!, /healthy → draining/);
    assert.equal(registry.get('api')!.stateOf(victim), 'draining');
    const before = targets[1]!.hits;
    for (let i = 0; i < 12; i++) await exchange(registry.get('api')!);
    assert.equal(targets[1]!.hits, before, 'a drained target gets no new requests');
    await page.locator(`tr[data-target="${victim}"] button[data-action="undrain"]`).click();
    await page.waitForFunction((sel) => document.querySelector(sel)?.textContent === 'healthy', `tr[data-target="${victim}"] [data-state]`);
    await context.close();
  });

  it('signs in with a token typed into the page (no header tricks), kept for the tab only', async () => {
    const context = await browser!.newContext();
    const page = await context.newPage();
    const res = await page.goto(`${base}/admin/`);
    assert.equal(res!.status(), 401, 'no token: 401');
    await page.fill('#token', 'wrong');
    await page.click('button[type=submit]');
    await page.locator('#login-error').filter({ hasText: 'not accepted' }).waitFor();
    await page.fill('#token', VIEW);
    await page.click('button[type=submit]');
    await page.locator(`tr[data-target="${targets[0]!.url}"] [data-state]`).waitFor();
    assert.equal(await page.locator('#who').textContent(), 'vic (viewer)');
    assert.equal(await page.locator(`tr[data-target="${targets[0]!.url}"] button[data-action="drain"]`).isDisabled(), true, 'a viewer gets no action buttons');
    // The viewer's token, used by hand from the console's own origin: 403; and the guards on actions.
    const results = await page.evaluate(async ([op, target]) => {
      const viewer = sessionStorage.getItem('ward-admin-token');
      const post = (token: string | null, headers: Record<string, string>) =>
        fetch('/admin/api/upstreams/api/targets/drain', { method: 'POST', headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json', ...headers }, body: JSON.stringify({ target }) }).then((r) => r.status);
      return {
        viewer: await post(viewer, { 'X-Ward-Admin': '1' }),
        noHeader: await post(op!, {}),
        get: await fetch('/admin/api/upstreams/api/targets/drain', { headers: { Authorization: `Bearer ${op}` } }).then((r) => r.status),
        none: await fetch('/admin/api/upstreams').then((r) => r.status),
      };
    }, [OP, targets[0]!.url] as const);
    assert.deepEqual(results, { viewer: 403, noHeader: 403, get: 405, none: 401 });
    assert.equal(registry.get('api')!.stateOf(targets[0]!.url), 'healthy');
    await context.close();
  });

  it('another origin cannot act, even knowing an operator token', async () => {
    const context = await browser!.newContext();
    const page = await context.newPage();
    await page.goto(otherBase);
    const outcome = await page.evaluate(async ([admin, op, target]) => {
      try {
        const r = await fetch(`${admin}/admin/api/upstreams/api/targets/drain`, { method: 'POST', headers: { Authorization: `Bearer ${op}`, 'X-Ward-Admin': '1', 'Content-Type': 'application/json' }, body: JSON.stringify({ target }) });
        return String(r.status);
      } catch {
        return 'blocked';
      }
    }, [base, OP, targets[2]!.url] as const);
    assert.equal(outcome, 'blocked', 'the browser stops it (no CORS for the admin API)');
    // The same request as a script outside a browser would send it, with the foreign Origin: 403.
    const direct = await fetch(`${base}/admin/api/upstreams/api/targets/drain`, { method: 'POST', headers: { authorization: `Bearer ${OP}`, 'x-ward-admin': '1', origin: otherBase }, body: JSON.stringify({ target: targets[2]!.url }) });
    assert.equal(direct.status, 403);
    assert.equal(registry.get('api')!.stateOf(targets[2]!.url), 'healthy');
    await context.close();
  });
});
