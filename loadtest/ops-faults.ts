// The fault table of issue 7's report: one of three targets (each its own process) fails while
// ward carries steady open-loop traffic, and the report says what clients saw and how long ward
// took to take the target out and to bring it back. Faults: SIGKILL (then restarted), SIGSTOP (then
// SIGCONT), answering 500 (then healthy again), and a restart (a deploy: stop, start on the same port).
// Target states are read from ward's /metrics (ward_upstream_target_state) every 50 ms.
// OPS_FAULT=SIGSTOP (a prefix of a fault's name) runs one fault only; OPS_DEBUG=1 prints ward's
// target events and voided probe rounds after each fault. On an overloaded machine ward's own
// event loop stalls, and the stall guard then (rightly) voids timeouts: a fault may go undetected.

import { spawn, type ChildProcess } from 'node:child_process';
import { runLoad, type FlowResult } from './load-gen.js';
import type { Progress } from './progress.js';
import type { Table } from './report.js';
import { sleep } from './processes.js';
import { mintToken, startWard, writeWardPolicy } from './ward.js';

// SIGUSR1: answer 500 from now on; SIGUSR2: answer 200 again. Prints its port once listening.
const TARGET = `
const http = require('node:http');
let failing = false;
process.on('SIGUSR1', () => (failing = true));
process.on('SIGUSR2', () => (failing = false));
const s = http.createServer((req, res) => {
  req.resume();
  req.on('end', () => res.writeHead(failing && req.url !== '/healthz' ? 500 : 200, { 'content-type': 'application/json' }).end('{"ok":true}'));
});
s.keepAliveTimeout = 60000;
s.listen(Number(process.argv[1]), '127.0.0.1', () => console.log('listening ' + s.address().port));
process.on('SIGTERM', () => { s.close(); s.closeAllConnections(); process.exit(0); });
`;

class FaultTarget {
  proc!: ChildProcess;
  port = 0;
  async start(port = 0): Promise<this> {
    this.proc = spawn(process.execPath, ['-e', TARGET, String(port)], { stdio: ['ignore', 'pipe', 'inherit'] });
    this.port = await new Promise<number>((resolve, reject) => {
      this.proc.stdout!.once('data', (d: Buffer) => resolve(Number(/listening (\d+)/.exec(d.toString())?.[1])));
      this.proc.once('exit', (c) => reject(new Error(`fault target exited with ${c}`)));
    });
    return this;
  }
  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }
  signal(s: NodeJS.Signals): void {
    this.proc.kill(s);
  }
  stop(s: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    return new Promise((r) => {
      if (this.proc.exitCode !== null || this.proc.signalCode !== null) return r();
      this.proc.once('exit', () => r());
      this.proc.kill(s);
    });
  }
}

export interface FaultRow {
  fault: string;
  sent: number;
  errors: number;
  statuses: Record<string, number>;
  /** ms from the fault to the target leaving rotation (undefined: it never left). */
  ejectMs?: number;
  /** ms from the repair to the target back in rotation. */
  recoverMs?: number;
  /** ms the target spent out of rotation in all. */
  outMs: number;
}

interface Fault {
  name: string;
  /** Breaks the target at t = 1 s; returns the repair, run at t = 1 s + brokenMs. */
  inject(t: FaultTarget): Promise<() => Promise<void>>;
  brokenMs: number;
}

const ALL_FAULTS: Fault[] = [
  { name: 'SIGKILL (restarted 4 s later)', brokenMs: 4000, inject: async (t) => { await t.stop('SIGKILL'); return async () => void (await t.start(t.port)); } },
  { name: 'SIGSTOP (SIGCONT 4 s later)', brokenMs: 4000, inject: async (t) => { t.signal('SIGSTOP'); return async () => t.signal('SIGCONT'); } },
  { name: 'answers 500 (healthy 3 s later)', brokenMs: 3000, inject: async (t) => { t.signal('SIGUSR1'); return async () => t.signal('SIGUSR2'); } },
  { name: 'restarted (SIGTERM, started again at once)', brokenMs: 0, inject: async (t) => { await t.stop('SIGTERM'); await t.start(t.port); return async () => undefined; } },
];

const FAULTS = process.env.OPS_FAULT ? ALL_FAULTS.filter((f) => f.name.startsWith(process.env.OPS_FAULT!)) : ALL_FAULTS;
const RATE = 300;
const RUN_S = 13;

/** Is the target in rotation (healthy or slow_start) according to /metrics? */
async function inRotation(admin: string, url: string): Promise<boolean> {
  const text = await (await fetch(`${admin}/metrics`)).text();
  for (const state of ['healthy', 'slow_start']) {
    if (text.includes(`ward_upstream_target_state{upstream="api",target="${url}",state="${state}"} 1`)) return true;
  }
  return false;
}

export async function faultTable(progress: Progress, wardCpus?: string): Promise<{ table: Table; rows: FaultRow[] }> {
  const rows: FaultRow[] = [];
  for (const fault of FAULTS) {
    const targets = await Promise.all([0, 1, 2].map(() => new FaultTarget().start()));
    const policy = await writeWardPolicy({
      upstreams: {
        api: {
          targets: targets.map((t) => t.url),
          timeout_ms: 1000,
          health: {
            active: { path: '/healthz', interval_ms: 500, timeout_ms: 250, rise: 2, fall: 2 },
            passive: { consecutive_failures: 3, base_ejection_ms: 3000, max_ejection_ms: 30000 },
          },
        },
      },
      routes: [{ name: 'api', prefix: '/v1/', upstream: 'api', bucket: 'api' }],
      tenants: { '*': { buckets: { api: { rate: 1000000, per_s: 1 } }, concurrency: {} } },
    });
    const ward = await startWard(policy, { workers: 1, ...(wardCpus ? { cpus: wardCpus } : {}) });
    const admin = `http://127.0.0.1:${policy.adminPort}`;
    const victim = targets[1]!;
    const token = await mintToken(policy.keys, 'acme');
    let watching = true;
    const timeline: Array<[number, boolean]> = [];
    const t0 = performance.now();
    const watch = (async () => {
      let last = true;
      while (watching) {
        const now = await inRotation(admin, victim.url).catch(() => last);
        if (now !== last) timeline.push([performance.now() - t0, now]);
        last = now;
        await sleep(50);
      }
    })();
    const load = runLoad({
      host: '127.0.0.1',
      port: policy.port,
      durationS: RUN_S,
      warmupS: 0,
      pace: 'timer',
      flows: [{ name: 'clients', kind: 'tenant', rate: RATE, path: '/v1/things', headers: { authorization: `Bearer ${token}` }, maxConnections: 64 }],
      onSecond: (t) => progress.update(`fault table · ${fault.name} · ${t}/${RUN_S} s`),
    });
    await sleep(1000);
    const brokeAt = performance.now() - t0;
    const repair = await fault.inject(victim);
    await sleep(fault.brokenMs);
    const repairedAt = performance.now() - t0;
    await repair();
    const r = await load;
    watching = false;
    await watch;
    if (process.env.OPS_DEBUG) process.stderr.write(ward.lines.filter((l) => /voided|event/.test(l)).join('\n') + '\n');
    await ward.stop();
    await Promise.all(targets.map((t) => t.stop()));
    const f: FlowResult = r.flows[0]!;
    const out = timeline.find(([at, up]) => !up && at >= brokeAt);
    const back = timeline.find(([at, up]) => up && at >= Math.max(repairedAt, out?.[0] ?? 0));
    let outMs = 0;
    let since: number | undefined;
    for (const [at, up] of timeline) {
      if (!up) since = at;
      else if (since !== undefined) {
        outMs += at - since;
        since = undefined;
      }
    }
    if (since !== undefined) outMs += RUN_S * 1000 - since;
    const row: FaultRow = {
      fault: fault.name,
      sent: f.sent,
      errors: f.sent - f.ok,
      statuses: { ...f.statuses },
      ...(out ? { ejectMs: Math.round(out[0] - brokeAt) } : {}),
      ...(out && back ? { recoverMs: Math.round(back[0] - repairedAt) } : {}),
      outMs: Math.round(outMs),
    };
    rows.push(row);
    progress.log(`fault table · ${fault.name}: ${row.errors}/${row.sent} client-visible errors, out after ${row.ejectMs ?? '–'} ms, back ${row.recoverMs ?? '–'} ms after the repair`);
  }
  return {
    rows,
    table: {
      title: `Faults of one of three targets under ${RATE} req/s (open loop, ${RUN_S} s each)`,
      columns: ['fault', 'requests', 'client-visible errors', 'answers', 'time to eject (ms)', 'time to recover (ms)', 'out of rotation (ms)'],
      rows: rows.map((x) => [
        x.fault,
        x.sent,
        x.errors,
        Object.entries(x.statuses).map(([k, v]) => `${k}: ${v}`).join(', '),
        x.ejectMs ?? '–',
        x.recoverMs ?? '–',
        x.outMs,
      ]),
      note:
        'health: active /healthz every 500 ms (timeout 250 ms, fall 2, rise 2), passive 3 consecutive failures, ejection 3 s doubling; timeout_ms 1000. ' +
        'Idempotent GETs: a connect failure or a reset before the answer is retried once on another target. A 500 is the target’s own answer, passed on. ' +
        'Time to recover: from the repair (restart, SIGCONT, 200s again) to the target back in rotation.',
    },
  };
}
