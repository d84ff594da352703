// A scenario's HTML report in a real browser (Debian's chromium driven by playwright-core): the
// isolation report's shape — verdict, tables, two line charts over time and two bar charts — opens
// from disk with no error, and every chart draws. Without chromium the test is skipped on a
// developer's machine and FAILS under CI (CI=true), where .ci/run installs it.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { test } from 'node:test';
import { chromiumSkip as skip, launchChromium } from '../test/support/chromium.js';
import { machineInfo, writeReport, type Report } from './report.js';


const seconds = Array.from({ length: 20 }, (_, i) => i + 1);
const report: Report = {
  scenario: 'isolation',
  title: 'Tenant isolation: good tenants under a noisy neighbour and an address flood',
  startedAt: '2026-11-26T12:00:00.000Z',
  machine: machineInfo(),
  verdict: { pass: true, lines: ['ok: good-1 offered 8002 and was admitted 8002', "ok: good tenants' p99 535 µs with the noisy tenant and the flood vs 951 µs without (-43.7 %, limit +10 %)"] },
  tables: [
    {
      title: 'Per tenant, with the noisy tenant and the flood (2 × 10 s)',
      columns: ['flow', 'offered/s', 'offered', 'admitted (2xx)', '429', 'p99 µs'],
      rows: [
        ['good-1', 400, 8002, 8002, 0, 535],
        ['noisy', 10000, 200002, 9002, 8997, 1261567],
      ],
    },
  ],
  charts: [
    { kind: 'line', title: "Good tenants' p99 per second", xLabel: 'seconds', yLabel: 'p99 ms', series: [{ name: 'baseline', points: seconds.map((t) => [t, 0.9 + (t % 3) / 10]) }, { name: 'with noisy tenant + flood', points: seconds.map((t) => [t, 0.5 + (t % 4) / 10]) }] },
    { kind: 'line', title: 'Noisy tenant per second', xLabel: 'seconds', yLabel: 'answers/s', series: [{ name: 'admitted', points: seconds.map((t) => [t, 500]) }, { name: '429', points: seconds.map((t) => [t, t === 1 ? 372 : 500]) }] },
    { kind: 'bar', title: 'Per flow: offered, admitted, refused (test phases)', yLabel: 'requests', categories: ['good-1', 'noisy', 'address flood'], series: [{ name: 'offered', values: [8002, 200002, 40002] }, { name: 'admitted', values: [8002, 9002, 0] }] },
    { kind: 'bar', title: 'Good tenants: p99 baseline vs test', yLabel: 'p99 µs', categories: ['good-1'], series: [{ name: 'baseline', values: [951] }, { name: 'with noisy tenant + flood', values: [535] }] },
  ],
  notes: ['placement: ward alone on core 0'],
  data: {},
};

test('a scenario report opens in a browser: verdict, tables and every chart drawn, no errors', { skip }, async () => {
  const browser = await launchChromium();
  const base = mkdtempSync(join(tmpdir(), 'ward-report-browser-'));
  try {
    const dir = writeReport(report, base);
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    page.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
    page.on('request', (r) => !r.url().startsWith('file:') && errors.push(`fetched ${r.url()}`));
    await page.goto(pathToFileURL(join(dir, 'report.html')).href);
    assert.equal(await page.title(), report.title);
    assert.match((await page.locator('h2.pass').textContent()) ?? '', /Verdict: PASS/);
    assert.equal(await page.locator('table').count(), 1);
    assert.equal(await page.locator('table tr').count(), 3, 'a header row and one row per flow');
    // Each chart is an inline SVG the browser lays out at a real size, with its series drawn.
    const charts = page.locator('svg');
    assert.equal(await charts.count(), 4);
    for (let i = 0; i < 4; i++) {
      const box = await charts.nth(i).boundingBox();
      assert.ok(box && box.width > 200 && box.height > 100, `chart ${i + 1} laid out at ${JSON.stringify(box)}`);
    }
    for (const i of [0, 1]) {
      const lines = charts.nth(i).locator('path[stroke-width="2"]');
      assert.equal(await lines.count(), 2, `line chart ${i + 1}: one line per series`);
      const length = await lines.first().evaluate((p) => (p as SVGPathElement).getTotalLength());
      assert.ok(length > 100, `line chart ${i + 1}'s first line is drawn (${length} px long)`);
    }
    // Bars: every non-zero value is a bar with height; the flood's zero admissions stay flat.
    const heights = await charts.nth(2).locator('rect:has(title)').evaluateAll((rs) => rs.map((r) => (r as SVGRectElement).getBBox().height));
    assert.equal(heights.length, 6);
    assert.equal(heights.filter((h) => h > 0.5).length, 5, `bar heights ${heights.map((h) => h.toFixed(1)).join(', ')}`);
    assert.ok((await page.screenshot()).length > 10_000, 'the page renders to a non-trivial picture');
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
    rmSync(base, { recursive: true, force: true });
  }
});
