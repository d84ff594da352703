// flood: what refusing costs ward. CPU per request answered 429 (a tenant whose bucket is spent), per
// request answered 401 (no token), and per connection of a banned address: closed unanswered by ward,
// and (where nft can run) refused by the kernel with `ward serve --kernel-bans`.

import { benchTokens, BENCH_PATH, startBenchWard } from '../bench-targets.js';
import { treeRssBytes } from '../cpu.js';
import { type Report } from '../report.js';
import { dropSample, median, noiseNote, warmUp, wrkSample, type DropSample, type WrkSample } from '../samples.js';
import { spawnUpstream } from '../upstream.js';
import { kernelBansUnusable, makeKeys } from '../ward.js';
import { LOADGEN_CPUS, SERVER_CPUS, wardCpus, type ScenarioOptions, beginScenario } from './scenario.js';

const BANNED = ['127.0.0.3', '127.0.0.4', '127.0.0.5', '127.0.0.6', '127.0.0.7', '127.0.0.8'];
const CONNECTIONS = 64;

export async function flood(o: ScenarioOptions): Promise<Report> {
  const { startedAt, machine, notes } = await beginScenario(o);
  const keys = await makeKeys();
  const tokens = await benchTokens(keys);
  const up = await spawnUpstream(SERVER_CPUS);
  const setup = { upstreamPort: up.port, keys, tokens, banned: BANNED, workers: o.workers, cpus: wardCpus(o.workers), include: new Set(['ward'] as const), notes };
  const ward = await startBenchWard(setup);
  const limited: WrkSample[] = [];
  const unauth: WrkSample[] = [];
  const drops: DropSample[] = [];
  const kernelDrops: DropSample[] = [];
  let rssMb = 0;
  try {
    o.progress.update('warming up');
    await warmUp(ward, { path: BENCH_PATH, token: tokens.tiny, connections: CONNECTIONS, cpus: LOADGEN_CPUS });
    for (let i = 0; i < o.runs; i++) {
      const tag = `run ${i + 1}/${o.runs}`;
      const base = { path: BENCH_PATH, durationS: o.durationS, connections: CONNECTIONS, cpus: LOADGEN_CPUS };
      const l = await o.progress.countdown(`${tag} · 429`, o.durationS, wrkSample(ward, { ...base, token: tokens.tiny }));
      limited.push(l);
      o.progress.log(`${tag} · 429: ${Math.round(l.rps)}/s, ${l.cpuUs.toFixed(1)} CPU µs each (${l.requests - l.non2xx} not refused)`);
      const u = await o.progress.countdown(`${tag} · 401`, o.durationS, wrkSample(ward, { ...base, token: 'not-a-jwt' }));
      unauth.push(u);
      o.progress.log(`${tag} · 401: ${Math.round(u.rps)}/s, ${u.cpuUs.toFixed(1)} CPU µs each`);
      const d = await o.progress.countdown(`${tag} · banned`, o.durationS, dropSample(ward, BANNED, o.durationS, BENCH_PATH));
      drops.push(d);
      o.progress.log(`${tag} · banned: ${Math.round(d.perSecond)} connections/s, ${d.cpuUs.toFixed(1)} CPU µs each (${d.answered} answered)`);
      if (d.answered) notes.push(`${tag}: ${d.answered} connections from banned addresses were answered: ${JSON.stringify(d.answers)}`);
    }
    rssMb = Math.round(treeRssBytes(ward.pid) / 2 ** 20);
    await ward.stop();
    const why = kernelBansUnusable();
    if (why) notes.push(`not measured: drops by the kernel (--kernel-bans), because ${why}`);
    else {
      const kernelWard = await startBenchWard({ ...setup, kernelBans: true });
      try {
        for (let i = 0; i < o.runs; i++) {
          const d = await o.progress.countdown(`run ${i + 1}/${o.runs} · banned, --kernel-bans`, o.durationS, dropSample(kernelWard, BANNED, o.durationS, BENCH_PATH));
          kernelDrops.push(d);
          o.progress.log(`run ${i + 1}/${o.runs} · banned, --kernel-bans: ${Math.round(d.perSecond)} connections/s, ${d.cpuUs.toFixed(1)} CPU µs each (${d.refused} refused by the kernel, ${d.answered} answered)`);
        }
      } finally {
        await kernelWard.stop();
      }
    }
  } finally {
    await ward.stop();
    await up.stop();
  }
  const m = (xs: readonly { cpuUs: number }[]) => median(xs.map((x) => x.cpuUs));
  const noisy = noiseNote([...limited, ...unauth]);
  if (noisy) notes.push(noisy);
  notes.push(`429: a tenant whose bucket holds 1 token a day, wrk with ${CONNECTIONS} keep-alive connections; 401: a malformed bearer token; banned: ${BANNED.length} addresses over the per-address rule (50/s, ban 3600 s), one request per new connection`);
  notes.push(`ward RSS at the end: ${rssMb} MB`);
  return {
    scenario: 'flood',
    title: 'The cost of refusing: 429, 401 and banned connections',
    startedAt,
    machine,
    tables: [
      {
        title: `Per refusal (median of ${o.runs} runs of ${o.durationS} s)`,
        columns: ['refusal', 'per second', 'ward CPU µs each', 'p99 µs', 'whole machine CPU µs each'],
        rows: [
          ['429 rate_limited (keep-alive)', median(limited.map((x) => x.rps)), m(limited), median(limited.map((x) => x.p99_us)), '–'],
          ['401 unauthorized (keep-alive)', median(unauth.map((x) => x.rps)), m(unauth), median(unauth.map((x) => x.p99_us)), '–'],
          ['banned address: connection dropped by ward', median(drops.map((x) => x.perSecond)), m(drops), '–', median(drops.map((x) => x.machineUs))],
          ...(kernelDrops.length ? [['banned address: refused by the kernel (--kernel-bans)', median(kernelDrops.map((x) => x.perSecond)), m(kernelDrops), '–', median(kernelDrops.map((x) => x.machineUs))]] : []),
        ],
        note: 'A connection ward drops costs it the accept and the close (kernel time charged to ward). With --kernel-bans the kernel answers the SYN with a reset and ward never sees it. The whole-machine column is both cores, the generator opening the connections included: it shows what moved into the kernel.',
      },
    ],
    charts: [
      {
        kind: 'bar',
        title: 'ward CPU µs per refusal, per run',
        yLabel: 'CPU µs',
        categories: limited.map((_, i) => `run ${i + 1}`),
        series: [
          { name: '429', values: limited.map((x) => x.cpuUs) },
          { name: '401', values: unauth.map((x) => x.cpuUs) },
          { name: 'dropped connection', values: drops.map((x) => x.cpuUs) },
          ...(kernelDrops.length ? [{ name: 'refused by the kernel', values: kernelDrops.map((x) => x.cpuUs) }] : []),
        ],
      },
    ],
    notes,
    data: { limited, unauth, drops, kernel_drops: kernelDrops, rss_mb: rssMb },
  };
}
