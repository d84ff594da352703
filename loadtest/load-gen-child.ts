// runLoad in a process of its own, for load that must not share the measuring process's event loop:
// in the isolation scenario the noisy tenant and the address flood run here at nice 19 on the
// generator's core, so they take only the CPU the well-behaved tenants' generator leaves over.
// Run alone: `node dist/loadtest/load-gen-child.js OPTIONS.json` prints one `LOADGEN_RESULT {...}` line.

import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runLoad, type FlowResult, type LoadOptions } from './load-gen.js';
import type { LatencySummary } from './histogram.js';
import { startChild, tempDir } from './processes.js';

const MARK = 'LOADGEN_RESULT ';

export type ChildLoadOptions = Omit<LoadOptions, 'onSecond'>;

export interface ChildLoadResult {
  readonly durationS: number;
  readonly flows: readonly FlowResult[];
  readonly generatorLag: LatencySummary;
}

export interface ChildLoad {
  /** Settles once the child's run is over. */
  readonly result: Promise<ChildLoadResult>;
  readonly pid: number;
}

/** Where the child runs: `cpus` to pin it; `nice` to lower its priority; `idle` to run it under
 * SCHED_IDLE, so any normal process on its core (the measuring generator) preempts it at once on
 * wakeup — a nice level alone does not guarantee that under the EEVDF scheduler. */
export interface ChildPlacement {
  readonly cpus?: string;
  readonly nice?: number;
  readonly idle?: boolean;
}

/** The command line for `argv` under the placement's priority (nice, chrt). */
export function prioritized(argv: readonly string[], place: ChildPlacement): string[] {
  let out = [...argv];
  if (place.nice) out = ['nice', '-n', String(place.nice), ...out];
  if (place.idle && canRunIdle()) out = ['chrt', '--idle', '0', ...out];
  return out;
}

let idleOk: boolean | undefined;
function canRunIdle(): boolean {
  return (idleOk ??= spawnSync('chrt', ['--idle', '0', 'true']).status === 0);
}

/** Starts the child and resolves once it is about to send (so the caller can start its own load). */
export async function startLoadInChild(o: ChildLoadOptions, place: ChildPlacement = {}): Promise<ChildLoad> {
  const file = join(tempDir('ward-loadgen-'), 'options.json');
  writeFileSync(file, JSON.stringify(o));
  const script = fileURLToPath(import.meta.url);
  const [cmd, ...args] = prioritized([process.execPath, script, file], place);
  const child = await startChild({
    name: 'load generator',
    cmd: cmd!,
    args,
    cpus: place.cpus,
    readyLine: (l) => l === 'LOADGEN_START',
    timeoutMs: 10000,
  });
  const result = new Promise<ChildLoadResult>((resolve, reject) => {
    child.proc.once('close', (code) => {
      const line = child.lines.find((l) => l.startsWith(MARK));
      if (line) resolve(JSON.parse(line.slice(MARK.length)) as ChildLoadResult);
      else reject(new Error(`load generator exited (${code}) without a result: ${child.lines.slice(-3).join(' / ')}`));
    });
  });
  return { result, pid: child.pid };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const o = JSON.parse(readFileSync(process.argv[2], 'utf8')) as ChildLoadOptions;
  process.stdout.write('LOADGEN_START\n');
  runLoad(o).then(
    (r) => {
      const out: ChildLoadResult = { durationS: r.durationS, flows: r.flows, generatorLag: r.generatorLag };
      process.stdout.write(`${MARK}${JSON.stringify(out)}\n`, () => process.exit(0));
    },
    (e: Error) => {
      process.stderr.write(`${e.message}\n`);
      process.exit(1);
    },
  );
}
