// Garbage collection on a process confined to one CPU.
//
// V8 splits each young-generation collection (scavenge) into parallel tasks: the main thread plus
// helper threads from Node's pool (four of them, whatever the CPU affinity). On a process pinned to
// one CPU those tasks cannot run side by side: posting them wakes helper threads that take turns with
// the main thread, and ward waits for the last of them before it serves another request. Done by the
// main thread alone, the same collection is shorter: at half of ward's peak, pinned beside its
// upstream, the mean scavenge pause went from 0.68 to 0.49 ms and the peak req/s did not move
// (README, Performance, "What the tail is made of at half the peak"). Pauses are what the p99 is made
// of at that load. With more than one CPU the helpers do run in parallel, so nothing changes there.
//
// `--no-parallel-scavenge` is read at every collection, so setting it after start takes effect
// (checked by test/gc-tuning.test.ts through V8's own trace); it touches nothing else.

import { availableParallelism } from 'node:os';
import { setFlagsFromString } from 'node:v8';

/** Turns parallel scavenging off when this process may run on one CPU only (its affinity, as
 * `taskset -c 0` or a container's cpuset sets it). Returns whether it did. */
export function tuneGcForCpus(cpus: number = availableParallelism()): boolean {
  if (cpus !== 1) return false;
  setFlagsFromString('--no-parallel-scavenge');
  return true;
}
