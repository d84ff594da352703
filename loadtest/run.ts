// `npm run loadtest -- SCENARIO [--duration S] [--runs N] [--workers N]`: runs one scenario, bounded in
// time, with a progress line, and writes its report (Markdown, JSON, HTML) under loadtest/reports/.

import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { Progress } from './progress.js';
import { renderMarkdown, writeReport } from './report.js';
import { calls } from './scenarios/calls.js';
import { flood } from './scenarios/flood.js';
import { isolation } from './scenarios/isolation.js';
import { redis } from './scenarios/redis.js';
import type { Scenario } from './scenarios/scenario.js';
import { throughput } from './scenarios/throughput.js';
import { ops } from './ops-bench.js';

export const SCENARIOS: Readonly<Record<string, { run: Scenario; durationS: number; runs: number; about: string }>> = {
  isolation: { run: isolation, durationS: 10, runs: 2, about: 'good tenants at 80 % of quota vs a noisy tenant at 20× and an address flood' },
  throughput: { run: throughput, durationS: 10, runs: 3, about: 'most req/s through ward with auth, a bucket and a pool; CPU µs per request' },
  flood: { run: flood, durationS: 5, runs: 3, about: 'CPU per 429 and per dropped connection of a banned address' },
  calls: { run: calls, durationS: 5, runs: 1, about: 'WebSocket sessions and SIP INVITEs per second' },
  redis: { run: redis, durationS: 8, runs: 3, about: 'req/s and p99 with the Redis store vs the memory store' },
  ops: { run: ops, durationS: 4, runs: 2, about: 'pick cost per balancer, health+hashing on vs off, ring vs 1/N, and a fault table' },
};

const USAGE = `usage: npm run loadtest -- SCENARIO [--duration S] [--runs N] [--workers N] [--profile] [--through ward|nginx] [--no-kernel-bans]
scenarios:
${Object.entries(SCENARIOS)
  .map(([k, v]) => `  ${k.padEnd(11)} ${v.about}`)
  .join('\n')}`;

async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { duration: { type: 'string' }, runs: { type: 'string' }, workers: { type: 'string' }, profile: { type: 'boolean' }, through: { type: 'string' }, 'no-kernel-bans': { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
  });
  const name = positionals[0];
  const s = name ? SCENARIOS[name] : undefined;
  if (values.help || !s) {
    process.stderr.write(`${name && !s ? `unknown scenario "${name}"\n` : ''}${USAGE}\n`);
    return values.help ? 0 : 2;
  }
  const num = (v: string | undefined, d: number, what: string) => {
    if (v === undefined) return d;
    const n = Number(v);
    if (!(n > 0)) throw new Error(`--${what} must be a positive number, got "${v}"`);
    return n;
  };
  const through = values.through ?? 'ward';
  if (through !== 'ward' && through !== 'nginx') throw new Error(`--through must be ward or nginx, got "${through}"`);
  if (through !== 'ward' && name !== 'isolation') throw new Error('--through applies to the isolation scenario only');
  const report = await s.run({
    durationS: num(values.duration, s.durationS, 'duration'),
    runs: num(values.runs, s.runs, 'runs'),
    workers: num(values.workers, 1, 'workers'),
    profile: values.profile,
    through,
    kernelBans: !values['no-kernel-bans'],
    progress: new Progress(),
  });
  const dir = writeReport(report);
  process.stdout.write(`\n${renderMarkdown(report)}\nreport: ${dir}/report.html (and report.md, report.json)\n`);
  return report.verdict && !report.verdict.pass ? 1 : 0;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (e: Error) => {
      process.stderr.write(`\nloadtest: ${e.message}\n`);
      process.exit(1);
    },
  );
}
