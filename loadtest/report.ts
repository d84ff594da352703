// A run's report, written three ways under loadtest/reports/<scenario>-<timestamp>/: report.md (the
// tables), report.json (everything, for comparing runs by script) and report.html (tables and
// inline SVG charts, one file that opens offline).

import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, release, totalmem } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { clockTicksPerSecond } from './cpu.js';
import { escapeXml, renderChart, type Chart } from './svg-charts.js';

export type Cell = string | number;

export interface Table {
  readonly title: string;
  readonly columns: readonly string[];
  readonly rows: readonly (readonly Cell[])[];
  readonly note?: string;
}

export interface Verdict {
  readonly pass: boolean;
  /** One line per check, each saying what was measured against what. */
  readonly lines: readonly string[];
}

export interface Machine {
  readonly cpu: string;
  readonly cores: number;
  readonly memory_gb: number;
  readonly kernel: string;
  readonly node: string;
  readonly clk_tck: number;
  /** 1-minute load average when the run started: other work on the machine skews every number. */
  readonly loadavg_1m: number;
}

export interface Report {
  readonly scenario: string;
  readonly title: string;
  readonly startedAt: string;
  readonly machine: Machine;
  readonly verdict?: Verdict;
  readonly tables: readonly Table[];
  readonly charts: readonly Chart[];
  readonly notes: readonly string[];
  /** Raw results, kept in report.json only. */
  readonly data: unknown;
}

export function machineInfo(): Machine {
  const c = cpus();
  return {
    cpu: c[0]?.model ?? 'unknown',
    cores: c.length,
    memory_gb: Math.round(totalmem() / 2 ** 30),
    kernel: release(),
    node: process.version,
    clk_tck: clockTicksPerSecond(),
    loadavg_1m: Math.round(loadavg()[0] * 100) / 100,
  };
}

/** loadtest/reports in the source tree (the compiled file sits in <outDir>/loadtest/). */
export function defaultReportsDir(): string {
  return fileURLToPath(new URL('../../loadtest/reports/', import.meta.url));
}

function cellText(c: Cell): string {
  if (typeof c === 'number') {
    if (!Number.isFinite(c)) return '–';
    return Number.isInteger(c) ? String(c) : c >= 100 ? c.toFixed(0) : c >= 10 ? c.toFixed(1) : c.toFixed(2);
  }
  return c;
}

function machineLine(m: Machine): string {
  return `${m.cores} × ${m.cpu}, ${m.memory_gb} GB, Linux ${m.kernel}, Node ${m.node}, load average ${m.loadavg_1m} at start`;
}

export function renderMarkdown(r: Report): string {
  const out = [`# ${r.title}`, '', `Started ${r.startedAt} on ${machineLine(r.machine)}.`, ''];
  if (r.verdict) {
    out.push(`**Verdict: ${r.verdict.pass ? 'PASS' : 'FAIL'}**`, '');
    for (const l of r.verdict.lines) out.push(`- ${l}`);
    out.push('');
  }
  for (const t of r.tables) {
    out.push(`## ${t.title}`, '');
    out.push(`| ${t.columns.join(' | ')} |`);
    out.push(`|${t.columns.map((_, i) => (i === 0 ? '---' : '---:')).join('|')}|`);
    for (const row of t.rows) out.push(`| ${row.map(cellText).join(' | ')} |`);
    if (t.note) out.push('', t.note);
    out.push('');
  }
  if (r.notes.length) {
    out.push('## Notes', '');
    for (const n of r.notes) out.push(`- ${n}`);
    out.push('');
  }
  return out.join('\n');
}

export function renderHtml(r: Report): string {
  const e = escapeXml;
  const parts = [
    '<!doctype html><html lang="en"><head><meta charset="utf-8">',
    `<title>${e(r.title)}</title>`,
    '<style>body{font-family:system-ui,sans-serif;max-width:960px;margin:2em auto;padding:0 1em;color:#111}' +
      'table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #d1d5db;padding:4px 10px}' +
      'td:not(:first-child),th:not(:first-child){text-align:right}th{background:#f3f4f6}' +
      '.pass{color:#15803d}.fail{color:#b91c1c}figure{margin:1.5em 0}svg{max-width:100%;height:auto}</style></head><body>',
    `<h1>${e(r.title)}</h1>`,
    `<p>Started ${e(r.startedAt)} on ${e(machineLine(r.machine))}.</p>`,
  ];
  if (r.verdict) {
    parts.push(`<h2 class="${r.verdict.pass ? 'pass' : 'fail'}">Verdict: ${r.verdict.pass ? 'PASS' : 'FAIL'}</h2><ul>`);
    for (const l of r.verdict.lines) parts.push(`<li>${e(l)}</li>`);
    parts.push('</ul>');
  }
  for (const c of r.charts) parts.push(`<figure>${renderChart(c)}</figure>`);
  for (const t of r.tables) {
    parts.push(`<h2>${e(t.title)}</h2><table><tr>${t.columns.map((c) => `<th>${e(c)}</th>`).join('')}</tr>`);
    for (const row of t.rows) parts.push(`<tr>${row.map((c) => `<td>${e(cellText(c))}</td>`).join('')}</tr>`);
    parts.push('</table>');
    if (t.note) parts.push(`<p>${e(t.note)}</p>`);
  }
  if (r.notes.length) {
    parts.push('<h2>Notes</h2><ul>');
    for (const n of r.notes) parts.push(`<li>${e(n)}</li>`);
    parts.push('</ul>');
  }
  parts.push('</body></html>');
  return parts.join('\n');
}

/** Writes report.md, report.json and report.html into <baseDir>/<scenario>-<timestamp>/; returns that dir. */
export function writeReport(r: Report, baseDir = defaultReportsDir()): string {
  const stamp = r.startedAt.replace(/[:.]/g, '-').replace(/-\d+Z$/, 'Z');
  const dir = join(baseDir, `${r.scenario}-${stamp}`);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'report.md'), renderMarkdown(r));
  writeFileSync(join(dir, 'report.json'), JSON.stringify(r, null, 2) + '\n');
  writeFileSync(join(dir, 'report.html'), renderHtml(r));
  return dir;
}
