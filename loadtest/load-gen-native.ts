// runLoad's open loop in C (native/openloop.c), for latency runs: the same flows, the same
// accounting, none of the generator's own garbage-collection and JIT pauses in the numbers.
// The C program is compiled on first use with the machine's C compiler (cc) into the temp
// directory, keyed by its source's hash; without one, `nativeGenerator()` says why and callers
// fall back to runLoad. It writes one record per request; this module replays them, in the order
// they happened, through load-gen.ts's FlowRun and GroupRun, so both generators report alike.

import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Histogram } from './histogram.js';
import { prioritized, type ChildPlacement } from './load-gen-child.js';
import { flowRuns, loadResult, runLoad, type FlowRun, type GroupRun, type LoadOptions, type LoadResult } from './load-gen.js';

const SOURCE = fileURLToPath(new URL('../../loadtest/native/openloop.c', import.meta.url));
const RECORD_BYTES = 20;
const STATUS_DROPPED = 0;
const STATUS_ERROR = 1;

let built: { path?: string; why?: string } | undefined;

/** The compiled generator's path, or why there is none (no compiler, a compile error). */
export function nativeGenerator(): { path?: string; why?: string } {
  if (built) return built;
  if (!existsSync(SOURCE)) return (built = { why: `${SOURCE} is missing` });
  const src = readFileSync(SOURCE);
  const path = join(tmpdir(), `ward-openloop-${createHash('sha256').update(src).digest('hex').slice(0, 16)}`);
  if (existsSync(path)) return (built = { path });
  const tmp = `${path}.${process.pid}`;
  const cc = spawnSync('cc', ['-O2', '-o', tmp, SOURCE], { encoding: 'utf8' });
  if (cc.error) return (built = { why: `no C compiler (cc: ${cc.error.message})` });
  if (cc.status !== 0) return (built = { why: `cc failed: ${cc.stderr.trim().split('\n').slice(0, 3).join(' / ')}` });
  renameSync(tmp, path); // atomic: a concurrent run never executes a half-written file
  return (built = { path });
}

/** `cpus` pins the generator (taskset), e.g. the bench's load-generator core; `nice` and `idle` lower
 * its priority, as for a child Node.js generator. */
export interface NativeLoadOptions extends Omit<LoadOptions, 'onSecond'>, ChildPlacement {}

/** As runLoad, with the C generator (throws if there is none: check nativeGenerator() first).
 * Bodiless methods only (HEAD's answers are framed like GET's here). */
export async function runLoadNative(o: NativeLoadOptions): Promise<LoadResult> {
  const bin = nativeGenerator();
  if (!bin.path) throw new Error(`the native load generator is unavailable: ${bin.why}`);
  const { runs, groups } = flowRuns(o);
  if (runs.length > 64) throw new Error('the native load generator takes at most 64 flows');
  for (const f of runs) if (f.spec.method === 'HEAD') throw new Error('the native load generator does not frame HEAD answers');

  const dir = mkdtempSync(join(tmpdir(), 'ward-openloop-run-'));
  try {
    const out = join(dir, 'records');
    const args = [o.host, String(o.port), String(o.warmupS ?? 1), String(o.durationS), String(o.drainMs ?? 2000), o.latencyFrom ?? 'due', o.pace === 'timer' ? 'sleep' : 'spin', out];
    runs.forEach((f, i) => {
      const file = join(dir, `request-${i}`);
      writeFileSync(file, f.request);
      args.push(String(f.spec.rate), String(f.spec.maxConnections ?? 64), f.spec.localAddresses?.join(',') || '-', file);
    });
    const command = prioritized([bin.path, ...args], o);
    const [cmd, ...argv] = o.cpus ? ['taskset', '-c', o.cpus, ...command] : command;
    const stdout = await new Promise<string>((resolve, reject) => {
      const child = spawn(cmd!, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
      let text = '';
      let err = '';
      child.stdout.on('data', (d: Buffer) => (text += d.toString()));
      child.stderr.on('data', (d: Buffer) => (err += d.toString()));
      child.on('error', reject);
      child.on('close', (code) => (code === 0 ? resolve(text) : reject(new Error(`openloop exited ${code}: ${err.trim()}`))));
    });
    const lag = replay(readFileSync(out), runs, groups, o.durationS);
    for (const line of stdout.split('\n')) {
      const m = /^FLOW (\d+) (\d+) (\d+) (\d+) (\d+)$/.exec(line);
      if (!m) continue;
      const f = runs[Number(m[1])]!;
      f.offered = Number(m[2]);
      f.unsent = Number(m[3]);
      f.inFlight = Number(m[4]);
      f.connections = Number(m[5]);
      for (let i = 0; i < f.inFlight; i++) f.sentOne(0);
    }
    return loadResult(o.durationS, runs, groups, runs.map((f) => f.result(f.inFlight)), lag);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The C generator where it builds, else load-gen.ts's runLoad (which alone calls `onSecond`: the C
 * generator reports at the end; `cpus`, `nice` and `idle` place only the C one, the Node one runs in
 * this process). */
export function runOpenLoop(o: NativeLoadOptions & Pick<LoadOptions, 'onSecond'>): Promise<LoadResult> {
  const { onSecond, cpus, nice, idle, ...load } = o;
  return nativeGenerator().path ? runLoadNative({ ...load, cpus, nice, idle }) : runLoad({ ...load, onSecond });
}

/** Feeds the records through the flows in the order things happened (each request's send, then its
 * answer or loss), closing each second as load-gen.ts does; returns the generator's own lateness. */
function replay(buf: Buffer, runs: readonly FlowRun[], groups: readonly GroupRun[], durationS: number): Histogram {
  const n = Math.floor(buf.length / RECORD_BYTES);
  // Two events per record, as (time µs after the warm-up, record index, is-end) packed for one sort.
  const at = new Float64Array(2 * n);
  const order = new Uint32Array(2 * n);
  for (let i = 0; i < n; i++) {
    const o = i * RECORD_BYTES;
    const due = buf.readUInt32LE(o);
    const sentLag = buf.readUInt32LE(o + 8);
    at[2 * i] = due + sentLag;
    at[2 * i + 1] = due + buf.readUInt32LE(o + 4) + (buf.readUInt8(o + 15) ? sentLag : 0);
    order[2 * i] = 2 * i;
    order[2 * i + 1] = 2 * i + 1;
  }
  order.sort((a, b) => at[a]! - at[b]! || a - b);
  const lag = new Histogram();
  let second = 1;
  const closeUntil = (us: number) => {
    while (second <= durationS && us >= second * 1e6) {
      for (const f of runs) f.closeSecond(second);
      for (const g of groups) g.closeSecond(second);
      second++;
    }
  };
  for (const e of order) {
    closeUntil(at[e]!);
    const o = (e >>> 1) * RECORD_BYTES;
    const f = runs[buf.readUInt8(o + 14)]!;
    if ((e & 1) === 0) {
      f.sentOne(buf.readUInt32LE(o + 8) / 1000);
      lag.record(buf.readUInt32LE(o + 16));
      continue;
    }
    const status = buf.readUInt16LE(o + 12);
    if (status === STATUS_DROPPED || status === STATUS_ERROR) f.lost(status === STATUS_DROPPED);
    else f.answered(status, buf.readUInt32LE(o + 4));
  }
  closeUntil(Infinity);
  return lag;
}
