// The ops console in a real browser (Debian's chromium driven by playwright-core) on a real
// `ward serve` admin port, over targets that serve real traffic through ward: an operator sees the
// targets, drains one, sees it draining and the audit entry, and traffic avoids it; a viewer cannot
// act; another origin cannot act. Without chromium the test is skipped on a developer's machine
// and FAILS under CI (CI=true), where .ci/run installs it.

import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import type { Browser } from 'playwright-core';
import { chromiumSkip as skip, launchChromium } from './support/chromium.js';
import { policyDir, basePolicy, startWard, type PolicyFiles, type WardProcess } from './support/ward-process.js';
import { request, bearer } from './support/http.js';
import { signJwt, standardClaims } from './support/jwt.js';
import { consoleTokens, OPERATOR_TOKEN, VIEWER_TOKEN, startTargets, states, type Target } from './support/targets.js';


let targets: Target[];
let p: PolicyFiles;
let w: WardProcess;
let token: string;
let browser: Browser | undefined;
let otherBase = '';
// Another origin, as an attacker's page would be.
const other = http.createServer((_req, res) => res.writeHead(200, { 'content-type': 'text/html' }).end('<!doctype html><title>elsewhere</title>'));

before(async () => {
  if (skip) return;
  targets = await startTargets(['a', 'b', 'c']);
  p = policyDir();
  p.write(basePolicy('http://127.0.0.1:1', { admin: consoleTokens(p), upstreams: { api: { targets: targets.map((t) => t.url), timeout_ms: 2000, balance: 'round_robin' } } }));
  w = await startWard(p.dir);
  token = signJwt(p.key, standardClaims('acme'));
  await new Promise<void>((r) => other.listen(0, '127.0.0.1', r));
  otherBase = `http://127.0.0.1:${(other.address() as AddressInfo).port}`;
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  await w?.stop();
  await Promise.all((targets ?? []).map((t) => t.close()));
  p?.remove();
  if (other.listening) await new Promise((r) => other.close(r));
});

describe('the ops console in a browser', { skip }, () => {
  it('an operator sees the targets, drains one, sees it draining and the audit entry; traffic avoids it', async () => {
    const context = await browser!.newContext({ extraHTTPHeaders: { Authorization: `Bearer ${OPERATOR_TOKEN}` } });
    const page = await context.newPage();
    const res = await page.goto(`${w.admin}/admin/`);
    assert.equal(res!.status(), 200);
    const victim = targets[1]!;
    const state = page.locator(`tr[data-target="${victim.url}"] [data-state]`);
    await state.waitFor();
    assert.equal(await state.textContent(), 'healthy');
    assert.equal(await page.locator('#who').textContent(), 'olga (operator)');
    const info = /ward_policy_info\{hash="([0-9a-f]+)"/.exec((await request(w.admin + '/metrics')).body)![1]!;
    assert.ok((await page.locator('#policy-version').textContent())!.startsWith(info), 'the policy version in force');
    await page.locator(`tr[data-target="${victim.url}"] button[data-action="drain"]`).click();
    await page.waitForFunction((sel) => document.querySelector(sel)?.textContent === 'draining', `tr[data-target="${victim.url}"] [data-state]`);
    await page.locator('tr[data-audit="drain"]').waitFor();
    const audit = await page.locator('tr[data-audit="drain"]').first().textContent();
    assert.match(audit!, /olga/);
    assert.match(audit!, /healthy → draining/);
    assert.equal((await states(w.admin, OPERATOR_TOKEN, 'api'))[victim.url], 'draining');
    const before = victim.seen.length;
    for (let i = 0; i < 12; i++) assert.equal((await request(w.base + '/v1/things', { headers: bearer(token) })).status, 200);
    assert.equal(victim.seen.length, before, 'a drained target gets no new requests');
    await page.locator(`tr[data-target="${victim.url}"] button[data-action="undrain"]`).click();
    await page.waitForFunction((sel) => document.querySelector(sel)?.textContent === 'healthy', `tr[data-target="${victim.url}"] [data-state]`);
    await context.close();
  });

  it('signs in with a token typed into the page, kept for the tab only; a viewer cannot act', async () => {
    const context = await browser!.newContext();
    const page = await context.newPage();
    const res = await page.goto(`${w.admin}/admin/`);
    assert.equal(res!.status(), 401, 'no token: 401');
    await page.fill('#token', 'wrong');
    await page.click('button[type=submit]');
    await page.locator('#login-error').filter({ hasText: 'not accepted' }).waitFor();
    await page.fill('#token', VIEWER_TOKEN);
    await page.click('button[type=submit]');
    await page.locator(`tr[data-target="${targets[0]!.url}"] [data-state]`).waitFor();
    assert.equal(await page.locator('#who').textContent(), 'vic (viewer)');
    assert.equal(await page.locator(`tr[data-target="${targets[0]!.url}"] button[data-action="drain"]`).isDisabled(), true, 'a viewer gets no action buttons');
    // The viewer's token used by hand from the console's own origin: 403; and the guards on actions.
    const results = await page.evaluate(async ([op, target]) => {
      const viewer = sessionStorage.getItem('ward-admin-token');
      const post = (t: string | null, headers: Record<string, string>) =>
        fetch('/admin/api/upstreams/api/targets/drain', { method: 'POST', headers: { Authorization: `Bearer ${t}`, 'Content-Type': 'application/json', ...headers }, body: JSON.stringify({ target }) }).then((r) => r.status);
      return {
        viewer: await post(viewer, { 'X-Ward-Admin': '1' }),
        noHeader: await post(op!, {}),
        get: await fetch('/admin/api/upstreams/api/targets/drain', { headers: { Authorization: `Bearer ${op}` } }).then((r) => r.status),
        none: await fetch('/admin/api/upstreams').then((r) => r.status),
      };
    }, [OPERATOR_TOKEN, targets[0]!.url] as const);
    assert.deepEqual(results, { viewer: 403, noHeader: 403, get: 405, none: 401 });
    assert.equal((await states(w.admin, OPERATOR_TOKEN, 'api'))[targets[0]!.url], 'healthy');
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
    }, [w.admin, OPERATOR_TOKEN, targets[2]!.url] as const);
    assert.equal(outcome, 'blocked', 'the browser stops it (no CORS on the admin API)');
    // The same request as a script outside a browser would send it, with the foreign Origin: 403.
    const direct = await request(`${w.admin}/admin/api/upstreams/api/targets/drain`, {
      method: 'POST',
      headers: { ...bearer(OPERATOR_TOKEN), 'x-ward-admin': '1', origin: otherBase },
      body: JSON.stringify({ target: targets[2]!.url }),
    });
    assert.equal(direct.status, 403);
    assert.equal((await states(w.admin, OPERATOR_TOKEN, 'api'))[targets[2]!.url], 'healthy');
    await context.close();
  });
});
