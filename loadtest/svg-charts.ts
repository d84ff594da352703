// Inline SVG charts for the HTML reports, drawn here so a report is one self-contained file that
// opens offline: a line chart (latency over time) and a grouped bar chart (per tenant, per server).

export interface LineSeries {
  readonly name: string;
  readonly points: readonly (readonly [number, number])[];
}

export interface LineChart {
  readonly kind: 'line';
  readonly title: string;
  readonly xLabel: string;
  readonly yLabel: string;
  readonly series: readonly LineSeries[];
}

export interface BarChart {
  readonly kind: 'bar';
  readonly title: string;
  readonly yLabel: string;
  /** One group of bars per category (a tenant, a server). */
  readonly categories: readonly string[];
  /** One bar per series in each category; values[i] belongs to categories[i]. */
  readonly series: readonly { readonly name: string; readonly values: readonly number[] }[];
}

export type Chart = LineChart | BarChart;

const W = 760;
const H = 320;
const M = { left: 70, right: 20, top: 36, bottom: 70 };
const COLORS = ['#2563eb', '#dc2626', '#16a34a', '#d97706', '#7c3aed', '#0891b2', '#db2777', '#4b5563', '#65a30d', '#9333ea'];

export function escapeXml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** Round numbers covering [0, max]: 0, step, 2·step... with step in 1/2/5 × 10^k. */
export function niceTicks(max: number, count = 5): number[] {
  if (!(max > 0) || !Number.isFinite(max)) return [0, 1];
  const raw = max / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag;
  const ticks: number[] = [];
  for (let v = 0; v <= max + step * 0.999; v += step) ticks.push(Number(v.toPrecision(12)));
  return ticks;
}

function fmt(v: number): string {
  if (Math.abs(v) >= 1e6) return `${+(v / 1e6).toFixed(1)}M`;
  if (Math.abs(v) >= 1e4) return `${+(v / 1e3).toFixed(1)}k`;
  return `${+v.toFixed(2)}`;
}

function frame(title: string, yLabel: string, yTicks: number[], y: (v: number) => number): string[] {
  const out = [
    `<text x="${W / 2}" y="20" text-anchor="middle" font-size="15" font-weight="600">${escapeXml(title)}</text>`,
    `<text transform="translate(16 ${(M.top + H - M.bottom) / 2}) rotate(-90)" text-anchor="middle" font-size="12">${escapeXml(yLabel)}</text>`,
  ];
  for (const t of yTicks) {
    const py = y(t).toFixed(1);
    out.push(`<line x1="${M.left}" x2="${W - M.right}" y1="${py}" y2="${py}" stroke="#e5e7eb"/>`);
    out.push(`<text x="${M.left - 6}" y="${py}" text-anchor="end" dominant-baseline="middle" font-size="11">${fmt(t)}</text>`);
  }
  out.push(`<line x1="${M.left}" x2="${M.left}" y1="${M.top}" y2="${H - M.bottom}" stroke="#111"/>`);
  out.push(`<line x1="${M.left}" x2="${W - M.right}" y1="${H - M.bottom}" y2="${H - M.bottom}" stroke="#111"/>`);
  return out;
}

function legend(names: readonly string[]): string[] {
  const out: string[] = [];
  let x = M.left;
  const y = H - 16;
  names.forEach((n, i) => {
    out.push(`<rect x="${x}" y="${y - 9}" width="12" height="12" fill="${COLORS[i % COLORS.length]}"/>`);
    out.push(`<text x="${x + 16}" y="${y}" font-size="12">${escapeXml(n)}</text>`);
    x += 28 + n.length * 7;
  });
  return out;
}

function svg(parts: string[]): string {
  return `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" font-family="system-ui,sans-serif">${parts.join('')}</svg>`;
}

export function renderLineChart(c: LineChart): string {
  const all = c.series.flatMap((s) => s.points);
  const xMax = Math.max(1, ...all.map((p) => p[0]));
  const yTicks = niceTicks(Math.max(0, ...all.map((p) => p[1])));
  const yMax = yTicks[yTicks.length - 1];
  const x = (v: number) => M.left + (v / xMax) * (W - M.left - M.right);
  const y = (v: number) => H - M.bottom - (v / yMax) * (H - M.top - M.bottom);
  const parts = frame(c.title, c.yLabel, yTicks, y);
  for (const t of niceTicks(xMax, 8)) {
    if (t > xMax) continue;
    parts.push(`<text x="${x(t).toFixed(1)}" y="${H - M.bottom + 16}" text-anchor="middle" font-size="11">${fmt(t)}</text>`);
  }
  parts.push(`<text x="${(M.left + W - M.right) / 2}" y="${H - M.bottom + 34}" text-anchor="middle" font-size="12">${escapeXml(c.xLabel)}</text>`);
  c.series.forEach((s, i) => {
    if (!s.points.length) return;
    const d = s.points.map((p, j) => `${j ? 'L' : 'M'}${x(p[0]).toFixed(1)} ${y(p[1]).toFixed(1)}`).join('');
    parts.push(`<path d="${d}" fill="none" stroke="${COLORS[i % COLORS.length]}" stroke-width="2"/>`);
  });
  parts.push(...legend(c.series.map((s) => s.name)));
  return svg(parts);
}

export function renderBarChart(c: BarChart): string {
  const yTicks = niceTicks(Math.max(0, ...c.series.flatMap((s) => s.values.filter(Number.isFinite))));
  const yMax = yTicks[yTicks.length - 1];
  const y = (v: number) => H - M.bottom - (v / yMax) * (H - M.top - M.bottom);
  const parts = frame(c.title, c.yLabel, yTicks, y);
  const groupW = (W - M.left - M.right) / Math.max(1, c.categories.length);
  const barW = (groupW * 0.8) / Math.max(1, c.series.length);
  c.categories.forEach((cat, ci) => {
    const gx = M.left + ci * groupW + groupW * 0.1;
    c.series.forEach((s, si) => {
      const v = Number.isFinite(s.values[ci]) ? s.values[ci] : 0;
      const top = y(v);
      parts.push(
        `<rect x="${(gx + si * barW).toFixed(1)}" y="${top.toFixed(1)}" width="${Math.max(1, barW - 2).toFixed(1)}" height="${(H - M.bottom - top).toFixed(1)}" fill="${COLORS[si % COLORS.length]}"><title>${escapeXml(`${s.name} ${cat}: ${fmt(v)}`)}</title></rect>`,
      );
    });
    parts.push(`<text x="${(gx + groupW * 0.4).toFixed(1)}" y="${H - M.bottom + 16}" text-anchor="middle" font-size="11">${escapeXml(cat)}</text>`);
  });
  parts.push(...legend(c.series.map((s) => s.name)));
  return svg(parts);
}

export function renderChart(c: Chart): string {
  return c.kind === 'line' ? renderLineChart(c) : renderBarChart(c);
}
