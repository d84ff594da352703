import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { machineInfo, renderMarkdown, writeReport, type Report } from './report.js';
import { niceTicks, renderBarChart, renderLineChart } from './svg-charts.js';

const report: Report = {
  scenario: 'smoke',
  title: 'Smoke <report> & co',
  startedAt: '2026-01-02T03:04:05.678Z',
  machine: machineInfo(),
  verdict: { pass: false, lines: ['FAILED: p99 went up 12 %'] },
  tables: [{ title: 'Per tenant', columns: ['tenant', 'req/s', 'p99 µs'], rows: [['good-1', 1234.567, 880], ['noisy', NaN, 12]], note: 'a note' }],
  charts: [
    { kind: 'line', title: 'p99 per second', xLabel: 's', yLabel: 'ms', series: [{ name: 'baseline', points: [[1, 0.5], [2, 0.7]] }, { name: 'empty', points: [] }] },
    { kind: 'bar', title: 'per tenant', yLabel: 'req', categories: ['a', 'b'], series: [{ name: 'offered', values: [10, NaN] }] },
  ],
  notes: ['machine was busy'],
  data: { raw: [1, 2, 3] },
};

test('writes report.md, report.json and report.html into <scenario>-<timestamp>/', () => {
  const base = mkdtempSync(join(tmpdir(), 'ward-report-test-'));
  try {
    const dir = writeReport(report, base);
    assert.equal(dir, join(base, 'smoke-2026-01-02T03-04-05Z'));
    assert.deepEqual(readdirSync(dir).sort(), ['report.html', 'report.json', 'report.md']);
    const md = readFileSync(join(dir, 'report.md'), 'utf8');
    assert.match(md, /\*\*Verdict: FAIL\*\*/);
    assert.match(md, /\| tenant \| req\/s \| p99 µs \|/);
    assert.match(md, /\| good-1 \| 1235 \| 880 \|/);
    assert.match(md, /\| noisy \| – \| 12 \|/, 'NaN prints as a dash');
    const json = JSON.parse(readFileSync(join(dir, 'report.json'), 'utf8')) as Report;
    assert.deepEqual(json.data, { raw: [1, 2, 3] });
    const html = readFileSync(join(dir, 'report.html'), 'utf8');
    assert.match(html, /^<!doctype html>/);
    assert.equal((html.match(/<svg /g) ?? []).length, 2, 'one inline SVG per chart');
    assert.ok(html.includes('Smoke &#60;report&#62; &#38; co'), 'titles are escaped');
    assert.ok(!/https?:\/\/(?!www\.w3\.org)/.test(html), 'no external resources');
  } finally {
    rmSync(base, { recursive: true, force: true });
  }
});

test('markdown of a report without verdict or notes has just its tables', () => {
  const md = renderMarkdown({ ...report, verdict: undefined, notes: [] });
  assert.ok(!md.includes('Verdict'));
  assert.ok(!md.includes('## Notes'));
});

test('charts draw a path per non-empty series and a bar per value, and survive all-zero data', () => {
  const line = renderLineChart(report.charts[0] as never);
  assert.equal((line.match(/<path /g) ?? []).length, 1);
  const bars = renderBarChart({ kind: 'bar', title: 't', yLabel: 'y', categories: ['x', 'y', 'z'], series: [{ name: 's', values: [0, 0, 0] }] });
  assert.equal((bars.match(/<rect [^>]*><title>/g) ?? []).length, 3);
  assert.ok(!bars.includes('NaN'));
  assert.deepEqual(niceTicks(0), [0, 1]);
  assert.deepEqual(niceTicks(97), [0, 20, 40, 60, 80, 100]);
});
