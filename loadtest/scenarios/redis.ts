// redis: the price of sharing limits between instances. Two wards on the same policy, one with the
// memory store and one with a Redis store (a redis-server this scenario starts on a free port), run
// in turn; reported: req/s, p99 and CPU per request of each, and the Redis/memory ratios.

import { benchTokens, BENCH_PATH } from '../bench-targets.js';
import { freePort, startChild, tempDir, type Child } from '../processes.js';
import { findBinary } from '../references.js';
import { type Report } from '../report.js';
import { median, noiseNote, ratio, warmUp, wrkSample, type WrkSample } from '../samples.js';
import { spawnUpstream } from '../upstream.js';
import { makeKeys, startWard, writeWardPolicy, type SigningKeys } from '../ward.js';
import { cpuBetween, sampleCpu } from '../cpu.js';
import { LOADGEN_CPUS, SERVER_CPUS, wardCpus, type ScenarioOptions, beginScenario } from './scenario.js';

const CONNECTIONS = 64;

async function startRedis(cpus: string): Promise<{ port: number; child: Child }> {
  const bin = findBinary('redis-server');
  if (!bin) throw new Error('redis-server is not installed (apt-get install redis-server)');
  const port = await freePort();
  const dir = tempDir('ward-loadtest-redis-');
  const child = await startChild({
    name: 'redis-server',
    cmd: bin,
    args: ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir],
    cpus,
    readyLine: (l) => l.includes('Ready to accept connections'),
  });
  return { port, child };
}

async function wardWith(store: Record<string, unknown>, upstreamPort: number, keys: SigningKeys, workers: number) {
  const policy = await writeWardPolicy(
    {
      upstreams: { app: { targets: [`http://127.0.0.1:${upstreamPort}`] } },
      routes: [{ name: 'bench', prefix: '/v1/', upstream: 'app', bucket: 'api', concurrency: 'inflight' }],
      store,
      tenants: { '*': { buckets: { api: { rate: 100_000_000, per_s: 1, burst: 100_000_000 } }, concurrency: { inflight: 100_000 } } },
    },
    keys,
  );
  const child = await startWard(policy, { workers, cpus: wardCpus(workers) });
  return { port: policy.port, pid: child.pid, child };
}

export async function redis(o: ScenarioOptions): Promise<Report> {
  const { startedAt, machine, notes } = await beginScenario(o);
  const keys = await makeKeys();
  const tokens = await benchTokens(keys);
  const up = await spawnUpstream(SERVER_CPUS);
  // Redis sits on the load generator's core: in production it is another machine, not ward's core.
  const rd = await startRedis(LOADGEN_CPUS);
  const children: Child[] = [rd.child];
  const mem: WrkSample[] = [];
  const red: (WrkSample & { redisCpuUs: number })[] = [];
  try {
    const wm = await wardWith({ kind: 'memory' }, up.port, keys, o.workers);
    children.push(wm.child);
    const wr = await wardWith({ kind: 'redis', url: `redis://127.0.0.1:${rd.port}`, prefix: 'ward:loadtest:' }, up.port, keys, o.workers);
    children.push(wr.child);
    const opts = { path: BENCH_PATH, token: tokens.ok, durationS: o.durationS, connections: CONNECTIONS, cpus: LOADGEN_CPUS };
    o.progress.update('warming up');
    await warmUp(wm, opts);
    await warmUp(wr, opts);
    for (let i = 0; i < o.runs; i++) {
      const tag = `run ${i + 1}/${o.runs}`;
      const a = await o.progress.countdown(`${tag} · memory store`, o.durationS, wrkSample(wm, opts));
      mem.push(a);
      o.progress.log(`${tag} · memory store: ${Math.round(a.rps)} req/s, p99 ${a.p99_us} µs, ${a.cpuUs.toFixed(1)} CPU µs/req`);
      const before = sampleCpu(rd.child.pid);
      const b = await o.progress.countdown(`${tag} · redis store`, o.durationS, wrkSample(wr, opts));
      const redisCpu = cpuBetween(before, sampleCpu(rd.child.pid));
      red.push({ ...b, redisCpuUs: (redisCpu.cpuMs * 1000) / Math.max(1, b.requests) });
      o.progress.log(`${tag} · redis store: ${Math.round(b.rps)} req/s, p99 ${b.p99_us} µs, ${b.cpuUs.toFixed(1)} CPU µs/req (+ redis ${((redisCpu.cpuMs * 1000) / Math.max(1, b.requests)).toFixed(1)})`);
      if (a.non2xx || b.non2xx) notes.push(`${tag}: non-2xx answers (memory ${a.non2xx}, redis ${b.non2xx}): the policy should never refuse here`);
    }
  } finally {
    for (const c of children.reverse()) await c.stop();
    await up.stop();
  }
  const med = (xs: readonly WrkSample[], k: 'rps' | 'p99_us' | 'cpuUs' | 'p50_us') => median(xs.map((x) => x[k]));
  const noisy = noiseNote([...mem, ...red]);
  if (noisy) notes.push(noisy);
  return {
    scenario: 'redis',
    title: 'Redis store against memory store',
    startedAt,
    machine,
    tables: [
      {
        title: `wrk, ${CONNECTIONS} connections, 1 tenant (median of ${o.runs} runs of ${o.durationS} s each)`,
        columns: ['store', 'req/s', 'p50 µs', 'p99 µs', 'ward CPU µs/request', 'redis CPU µs/request'],
        rows: [
          ['memory', med(mem, 'rps'), med(mem, 'p50_us'), med(mem, 'p99_us'), med(mem, 'cpuUs'), '–'],
          ['redis', med(red, 'rps'), med(red, 'p50_us'), med(red, 'p99_us'), med(red, 'cpuUs'), median(red.map((r) => r.redisCpuUs))],
          ['redis ÷ memory', ratio(med(red, 'rps'), med(mem, 'rps')), ratio(med(red, 'p50_us'), med(mem, 'p50_us')), ratio(med(red, 'p99_us'), med(mem, 'p99_us')), ratio(med(red, 'cpuUs'), med(mem, 'cpuUs')), '–'],
        ],
      },
    ],
    charts: [
      { kind: 'bar', title: 'req/s per run', yLabel: 'req/s', categories: mem.map((_, i) => `run ${i + 1}`), series: [{ name: 'memory', values: mem.map((x) => x.rps) }, { name: 'redis', values: red.map((x) => x.rps) }] },
      { kind: 'bar', title: 'p99 per run', yLabel: 'µs', categories: mem.map((_, i) => `run ${i + 1}`), series: [{ name: 'memory', values: mem.map((x) => x.p99_us) }, { name: 'redis', values: red.map((x) => x.p99_us) }] },
    ],
    notes: [...notes, 'redis-server runs on the load generator\'s core (in production it is another machine); its CPU per request is shown apart'],
    data: { memory: mem, redis: red },
  };
}
