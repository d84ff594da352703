// What every scenario shares: its options, the placement (ward and the upstream on core 0, the load
// generator, this process, on core 1), and the checks that make a report say when it cannot be trusted.

import { cpus, loadavg } from 'node:os';
import type { Progress } from '../progress.js';
import { canPin, runToEnd } from '../processes.js';
import { machineInfo, type Report } from '../report.js';
import { wardAvailable, wardCliPath } from '../ward.js';

export interface ScenarioOptions {
  /** Seconds of each measured run. */
  readonly durationS: number;
  /** Runs (or baseline/test rounds) whose median or merge is reported. */
  readonly runs: number;
  /** ward --workers. */
  readonly workers: number;
  /** Run ward under `node --cpu-prof` and report its hottest functions (throughput only). */
  readonly profile?: boolean;
  /** The proxy under test: ward, or nginx in its place as a reference (isolation only). */
  readonly through?: 'ward' | 'nginx';
  /** isolation: ward runs with --kernel-bans where nft can run (default); false keeps its drops in userland. */
  readonly kernelBans?: boolean;
  readonly progress: Progress;
}

export type Scenario = (o: ScenarioOptions) => Promise<Report>;

export const SERVER_CPUS = '0';
export const LOADGEN_CPUS = '1';

/** Where ward runs: core 0 alone, or both cores with several workers. */
export function wardCpus(workers: number): string {
  return workers > 1 ? '0,1' : SERVER_CPUS;
}

/** Moves this process (every thread) to the load generator's core. */
export async function pinSelf(cpus = LOADGEN_CPUS): Promise<void> {
  if (canPin()) await runToEnd('taskset', ['-a', '-p', '-c', cpus, String(process.pid)]).catch(() => undefined);
}

export class WardMissing extends Error {
  readonly code = 'ERR_WARD_MISSING';
  constructor() {
    super(`ward is not built: ${wardCliPath()} does not exist (run npm run build)`);
  }
}

export function requireWard(): void {
  if (!wardAvailable()) throw new WardMissing();
}

/** Where a scenario's upstream runs: beside ward (the bench's placement), or with the load generator
 * so that ward's core is ward's alone. */
export type UpstreamPlacement = 'beside-ward' | 'with-load';

export function upstreamCpus(placement: UpstreamPlacement): string {
  return placement === 'with-load' ? LOADGEN_CPUS : SERVER_CPUS;
}

/** Notes every report carries about how far its numbers can be trusted. */
export function placementNotes(workers = 1, upstream: UpstreamPlacement = 'beside-ward'): string[] {
  const where =
    workers > 1
      ? `ward (${workers} workers) on cores ${wardCpus(workers)}, the upstream on core ${upstreamCpus(upstream)}`
      : upstream === 'with-load'
        ? `ward alone on core ${SERVER_CPUS}, the upstream on core ${LOADGEN_CPUS}`
        : `ward and the upstream pinned to core ${SERVER_CPUS}`;
  const notes = [`placement: ${where}, the load generator on core ${LOADGEN_CPUS}${canPin() ? '' : ' (taskset missing: NOT pinned)'}`];
  const busy = loadavg()[0];
  if (busy > 1) notes.push(`the machine was busy before the run (load average ${busy.toFixed(2)} on ${cpus().length} cores): other processes shared the cores, so latencies and req/s are lower and noisier than on a quiet machine`);
  return notes;
}

/** The start every scenario shares: ward must be built, the run's time and machine are noted, the
 * placement is described, and this process moves to the load generator's core. */
export async function beginScenario(o: ScenarioOptions, upstream: UpstreamPlacement = 'beside-ward'): Promise<{ startedAt: string; machine: ReturnType<typeof machineInfo>; notes: string[] }> {
  requireWard();
  const started = { startedAt: new Date().toISOString(), machine: machineInfo(), notes: placementNotes(o.workers, upstream) };
  await pinSelf();
  return started;
}
