// One measured run against a server: wrk (or a connection flood) on the load generator's core, and
// the server's own CPU time over the same interval, per request or per dropped connection.

import { runConnectFlood } from './connect-flood.js';
import { clockTicksPerSecond, cpuBetween, cpuMicrosPer, markNoise, markSteal, noiseSince, readPreemptions, sampleCpu, stealSince, systemBusyTicks } from './cpu.js';
import { runWrk } from './wrk.js';

export interface Measured {
  readonly port: number;
  /** Root of the process tree whose CPU is counted. */
  readonly pid: number;
}

export interface WrkSample {
  readonly rps: number;
  readonly p50_us: number;
  readonly p99_us: number;
  /** Server CPU µs per completed request. */
  readonly cpuUs: number;
  /** Times per completed request the scheduler took the server's CPU away while it had work
   * (involuntary context switches of its process tree), e.g. for the upstream it woke on its core. */
  readonly preemptedPerReq: number;
  readonly non2xx: number;
  readonly requests: number;
  /** Cores the server kept busy (1.0 = one core). */
  readonly cores: number;
  /** Cores kept busy meanwhile by processes that are not part of the measurement (other users). */
  readonly noise: number;
  /** The larger share of any core's time the virtual machine's host took meanwhile (steal). */
  readonly steal: number;
}

export interface DropSample {
  readonly perSecond: number;
  /** Server CPU µs per dropped connection. */
  readonly cpuUs: number;
  /** The whole machine's busy CPU µs per dropped connection: the server, the kernel and the client
   * opening the connections (the same client for every server), so work moved into the kernel
   * shows up here even when it runs outside the server's process. */
  readonly machineUs: number;
  /** Accepted, then closed with no answer. */
  readonly dropped: number;
  /** Refused at the handshake by the kernel (`--kernel-bans`): drops too. */
  readonly refused: number;
  readonly answered: number;
  readonly answers: Readonly<Record<string, number>>;
}

export interface WrkSampleOptions {
  readonly path: string;
  readonly token: string;
  readonly durationS: number;
  readonly connections: number;
  readonly cpus?: string;
  readonly threads?: number;
}

export async function wrkSample(t: Measured, o: WrkSampleOptions): Promise<WrkSample> {
  const noise = markNoise();
  const steal = markSteal();
  const before = sampleCpu(t.pid);
  const preemptedBefore = readPreemptions(t.pid);
  const r = await runWrk({ url: `http://127.0.0.1:${t.port}${o.path}`, connections: o.connections, durationS: o.durationS, token: o.token, cpus: o.cpus, threads: o.threads });
  const usage = cpuBetween(before, sampleCpu(t.pid));
  const preemptedPerReq = r.requests > 0 ? (readPreemptions(t.pid) - preemptedBefore) / r.requests : NaN;
  return { rps: r.rps, p50_us: r.latency.p50_us, p99_us: r.latency.p99_us, cpuUs: cpuMicrosPer(usage, r.requests), preemptedPerReq, non2xx: r.non2xx, requests: r.requests, cores: usage.cores, noise: noiseSince(noise), steal: Math.max(0, ...stealSince(steal)) };
}

export async function dropSample(t: Measured, addresses: readonly string[], durationS: number, path: string): Promise<DropSample> {
  const before = sampleCpu(t.pid);
  const machineBefore = systemBusyTicks();
  const r = await runConnectFlood({ host: '127.0.0.1', port: t.port, addresses, durationS, path });
  const usage = cpuBetween(before, sampleCpu(t.pid));
  const machineMs = ((systemBusyTicks() - machineBefore) * 1000) / clockTicksPerSecond();
  const drops = r.dropped + r.refused;
  return { perSecond: r.perSecond, cpuUs: cpuMicrosPer(usage, drops), machineUs: drops > 0 ? (machineMs * 1000) / drops : NaN, dropped: r.dropped, refused: r.refused, answered: r.answered, answers: r.answers };
}

export function median(xs: readonly number[]): number {
  const v = xs.filter(Number.isFinite).sort((a, b) => a - b);
  if (!v.length) return NaN;
  const m = v.length >> 1;
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
}

/** a ÷ b to two decimals ('< 0.01' below that), or '–' when either is missing. */
export function ratio(a: number, b: number): string {
  if (!(Number.isFinite(a) && Number.isFinite(b) && b > 0)) return '–';
  return a / b < 0.005 ? '< 0.01' : (a / b).toFixed(2);
}

/** Runs `run` until the host's steal in it is at most `maxSteal`, `attempts` times at most, and keeps
 * the least-stolen run: on a virtual machine the host may stop a core for milliseconds at a time, which
 * lands in any tail latency measured meanwhile and says nothing about what is measured. */
export async function leastStolen<T extends { readonly steal: number }>(attempts: number, maxSteal: number, run: (attempt: number) => Promise<T>, onRetry?: (stolen: T) => void): Promise<{ kept: T; attempts: number }> {
  let kept: T | undefined;
  let made = 0;
  while (made < Math.max(1, attempts)) {
    const r = await run(++made);
    if (!kept || r.steal < kept.steal) kept = r;
    if (r.steal <= maxSteal) break;
    if (made < attempts) onRetry?.(r);
  }
  return { kept: kept!, attempts: made };
}

/** A share (0–1) as a percentage for a report: one decimal below 10 %. */
export function percent(share: number): string {
  return `${(share * 100).toFixed(share < 0.1 ? 1 : 0)} %`;
}

/** A report line on how much else ran on the machine during the samples, or undefined when nothing did. */
export function noiseNote(samples: readonly { readonly noise: number }[]): string | undefined {
  const n = samples.map((s) => s.noise);
  if (!n.length) return undefined;
  const max = Math.max(...n);
  if (max < 0.05) return undefined;
  return `other processes on the machine kept ${median(n).toFixed(2)} cores busy (median; up to ${max.toFixed(2)}) during the measured runs: every number here is skewed by that much contention`;
}

/** Traffic that counts for nothing, so JIT, connection pools and caches are warm before the first sample. */
export async function warmUp(t: Measured, o: Omit<WrkSampleOptions, 'durationS'>, seconds = 2): Promise<void> {
  await runWrk({ url: `http://127.0.0.1:${t.port}${o.path}`, connections: o.connections, durationS: seconds, token: o.token, cpus: o.cpus, threads: o.threads });
}
