// throughput: the most req/s ward proxies with every feature of the hot path on (JWT auth with a
// repeated token, a bucket and a concurrency pool that never refuse, the per-address rule), its CPU
// time per request, and then latency at fixed fractions of that peak (open loop).

import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { profileTables } from '../profile-summary.js';
import { benchTokens, BENCH_PATH, startBenchWard } from '../bench-targets.js';
import { runOpenLoop } from '../load-gen-native.js';
import { markSteal, stealSince } from '../cpu.js';
import { type Report } from '../report.js';
import { median, noiseNote, percent, warmUp, wrkSample, type WrkSample } from '../samples.js';
import { spawnUpstream } from '../upstream.js';
import { makeKeys } from '../ward.js';
import { LOADGEN_CPUS, SERVER_CPUS, wardCpus, type ScenarioOptions, beginScenario } from './scenario.js';

const CONNECTIONS = 64;
const FRACTIONS = [0.25, 0.5, 0.75, 0.9];

export async function throughput(o: ScenarioOptions): Promise<Report> {
  const { startedAt, machine, notes } = await beginScenario(o);
  const keys = await makeKeys();
  const tokens = await benchTokens(keys);
  const up = await spawnUpstream(SERVER_CPUS);
  const profileDir = o.profile ? mkdtempSync(join(tmpdir(), 'ward-cpu-prof-')) : undefined;
  const nodeFlags = profileDir ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : undefined;
  const ward = await startBenchWard({ upstreamPort: up.port, keys, tokens, banned: [], workers: o.workers, cpus: wardCpus(o.workers), include: new Set(['ward']), nodeFlags, notes });
  const wardRuns: WrkSample[] = [];
  const upRuns: WrkSample[] = [];
  const sweep: { fraction: number; rate: number; p50: number; p99: number; p999: number; ok: number; offered: number; steal: number }[] = [];
  try {
    o.progress.update('warming up');
    await warmUp(ward, { path: BENCH_PATH, token: tokens.ok, connections: CONNECTIONS, cpus: LOADGEN_CPUS });
    for (let i = 0; i < o.runs; i++) {
      for (const [name, t, runs] of [
        ['ward', ward, wardRuns],
        ['upstream alone', up, upRuns],
      ] as const) {
        const label = `run ${i + 1}/${o.runs} · ${name}`;
        const s = await o.progress.countdown(label, o.durationS, wrkSample(t, { path: BENCH_PATH, token: tokens.ok, durationS: o.durationS, connections: CONNECTIONS, cpus: LOADGEN_CPUS }));
        runs.push(s);
        o.progress.log(`${label}: ${Math.round(s.rps)} req/s, p99 ${s.p99_us} µs, ${s.cpuUs.toFixed(1)} CPU µs/req${s.non2xx ? `, ${s.non2xx} non-2xx!` : ''}`);
        if (s.non2xx) notes.push(`${name} run ${i + 1}: ${s.non2xx} answers were not 2xx: the policy should never refuse here`);
      }
    }
    const peak = median(wardRuns.map((s) => s.rps));
    for (const fraction of FRACTIONS) {
      const rate = Math.round(peak * fraction);
      const label = `latency at ${fraction * 100} % of peak (${rate} req/s)`;
      const durationS = Math.max(3, Math.round(o.durationS / 2));
      const steal = markSteal();
      const r = await o.progress.countdown(label, durationS + 1, runOpenLoop({
        host: '127.0.0.1',
        port: ward.port,
        durationS,
        cpus: LOADGEN_CPUS,
        flows: [{ name: 'ward', kind: 'tenant', rate, path: BENCH_PATH, headers: { authorization: `Bearer ${tokens.ok}` }, maxConnections: CONNECTIONS }],
        onSecond: (t, fs) => o.progress.update(`${label} ${t} s · ${fs[0]!.ok}/${fs[0]!.offered} ok`),
      }));
      const stolen = Math.max(0, ...stealSince(steal));
      const f = r.flows[0]!;
      sweep.push({ fraction, rate, p50: f.latency.p50_us, p99: f.latency.p99_us, p999: f.latency.p999_us, ok: f.ok, offered: f.offered, steal: stolen });
      o.progress.log(`${label}: p50 ${f.latency.p50_us} µs, p99 ${f.latency.p99_us} µs, ${f.ok}/${f.offered} ok, host steal ${percent(stolen)}`);
    }
  } finally {
    await ward.stop();
    await up.stop();
  }
  const profiles = profileDir ? profileTables(profileDir) : [];
  if (profileDir && !profiles.length) notes.push(`--profile: ward wrote no .cpuprofile into ${profileDir} (it must exit cleanly on SIGTERM for node to write it)`);
  if (profileDir) notes.push('--profile: ward ran under node --cpu-prof, which slows it down: req/s and CPU figures of this run are not comparable');
  const noisy = noiseNote([...wardRuns, ...upRuns]);
  if (noisy) notes.push(noisy);
  const row = (name: string, runs: WrkSample[]) => [name, median(runs.map((s) => s.rps)), median(runs.map((s) => s.p50_us)), median(runs.map((s) => s.p99_us)), median(runs.map((s) => s.cpuUs)), median(runs.map((s) => s.cores))];
  notes.push('policy: JWT (EdDSA) with one repeated token, bucket api and pool inflight that never refuse, per-address rule 50/s with 127.0.0.1 allow-listed, memory store, pipeline: true on the upstream (as in the bench)');
  return {
    scenario: 'throughput',
    title: `Throughput through ward (${o.workers} worker${o.workers > 1 ? 's' : ''})`,
    startedAt,
    machine,
    tables: [
      {
        title: `Peak: wrk, ${CONNECTIONS} connections, 1 tenant (median of ${o.runs} runs of ${o.durationS} s)`,
        columns: ['server', 'req/s', 'p50 µs', 'p99 µs', 'CPU µs/request', 'cores busy'],
        rows: [row('ward', wardRuns), row('upstream alone', upRuns)],
        note: "CPU µs/request: the server's own CPU time (all threads) over the requests completed. ward's row does not include the upstream's CPU.",
      },
      {
        title: 'Latency at fixed rates (open loop, from the moment each request was due)',
        columns: ['share of peak', 'req/s offered', 'p50 µs', 'p99 µs', 'p99.9 µs', '2xx / offered', 'host steal'],
        rows: sweep.map((s) => [`${s.fraction * 100} %`, s.rate, s.p50, s.p99, s.p999, `${s.ok}/${s.offered}`, percent(s.steal)]),
        note: 'From the C generator (loadtest/native/openloop.c) where it builds. Host steal: the largest share of a core the virtual machine\'s host took during the run; a few per cent puts milliseconds into any p99.',
      },
      ...profiles,
    ],
    charts: [
      { kind: 'bar', title: 'req/s per run', yLabel: 'req/s', categories: wardRuns.map((_, i) => `run ${i + 1}`), series: [{ name: 'ward', values: wardRuns.map((s) => s.rps) }, { name: 'upstream alone', values: upRuns.map((s) => s.rps) }] },
      { kind: 'line', title: 'Latency against offered load', xLabel: 'req/s offered', yLabel: 'µs', series: [{ name: 'p50', points: sweep.map((s) => [s.rate, s.p50] as const) }, { name: 'p99', points: sweep.map((s) => [s.rate, s.p99] as const) }] },
    ],
    notes,
    data: { ward: wardRuns, upstream: upRuns, sweep },
  };
}
