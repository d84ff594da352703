// CPU time and memory of a process tree, read from /proc. utime+stime of /proc/PID/stat covers every
// thread of the process; child processes (nginx workers, ward in process mode) are found by ppid, and
// cutime+cstime bring in the children that ended and were reaped during the run.

import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

let ticksPerSecond: number | undefined;

/** Clock ticks per second of /proc/PID/stat (`getconf CLK_TCK`, almost always 100). */
export function clockTicksPerSecond(): number {
  if (ticksPerSecond === undefined) {
    try {
      ticksPerSecond = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      ticksPerSecond = 100;
    }
  }
  return ticksPerSecond;
}

interface StatLine {
  readonly ppid: number;
  readonly ticks: number;
}

function readStat(pid: number): StatLine | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // The command name (field 2) may hold spaces and parentheses: fields resume after the last ')'.
  const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
  // rest[0] is field 3 (state); ppid is field 4, utime 14, stime 15, cutime 16, cstime 17.
  return { ppid: Number(rest[1]), ticks: Number(rest[11]) + Number(rest[12]) + Number(rest[13]) + Number(rest[14]) };
}

/** utime+stime of one process (all its threads) plus that of its reaped children, in clock ticks;
 * undefined once it is gone. */
export function readCpuTicks(pid: number): number | undefined {
  return readStat(pid)?.ticks;
}

/** pid and every live descendant of it. */
export function processTree(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const name of readdirSync('/proc')) {
    const p = Number(name);
    if (!Number.isInteger(p)) continue;
    const st = readStat(p);
    if (!st) continue;
    const list = children.get(st.ppid);
    if (list) list.push(p);
    else children.set(st.ppid, [p]);
  }
  const out: number[] = [];
  const todo = [pid];
  while (todo.length) {
    const p = todo.pop()!;
    out.push(p);
    for (const c of children.get(p) ?? []) todo.push(c);
  }
  return out;
}

/** Resident memory of a process tree, in bytes (VmRSS summed; shared pages count once per process). */
export function treeRssBytes(pid: number): number {
  let total = 0;
  for (const p of processTree(pid)) {
    try {
      const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${p}/status`, 'utf8'));
      if (m) total += Number(m[1]) * 1024;
    } catch {
      // gone between the listing and the read
    }
  }
  return total;
}

export interface CpuSample {
  readonly atMs: number;
  readonly ticks: ReadonlyMap<number, number>;
}

/** Ticks of every process in the tree of `pid`, now. */
export function sampleCpu(pid: number): CpuSample {
  const ticks = new Map<number, number>();
  for (const p of processTree(pid)) {
    const t = readCpuTicks(p);
    if (t !== undefined) ticks.set(p, t);
  }
  return { atMs: performance.now(), ticks };
}

/** Involuntary context switches of a process tree so far (every thread's `nonvoluntary_ctxt_switches`):
 * how often the scheduler took the CPU away from it while it still had work, e.g. for a peer it woke
 * on the same core. Threads that ended before the call are not in it. */
export function readPreemptions(pid: number): number {
  let total = 0;
  for (const p of processTree(pid)) {
    let tasks: string[];
    try {
      tasks = readdirSync(`/proc/${p}/task`);
    } catch {
      continue; // gone
    }
    for (const t of tasks) {
      try {
        const m = /nonvoluntary_ctxt_switches:\s+(\d+)/.exec(readFileSync(`/proc/${p}/task/${t}/status`, 'utf8'));
        if (m) total += Number(m[1]);
      } catch {
        // the thread ended between the listing and the read
      }
    }
  }
  return total;
}

export interface CpuUsage {
  /** CPU time spent by the tree between the samples, in ms (10 ms resolution with CLK_TCK 100). */
  readonly cpuMs: number;
  readonly wallMs: number;
  /** cpuMs / wallMs: 1.0 = one core fully busy. */
  readonly cores: number;
}

/** CPU used between two samples. A process born in between counts from zero; one that ended in
 * between is in its parent's cutime by then, so what it had used before the first sample comes off. */
export function cpuBetween(before: CpuSample, after: CpuSample): CpuUsage {
  let ticks = 0;
  for (const [pid, t] of after.ticks) ticks += t - (before.ticks.get(pid) ?? 0);
  for (const [pid, t] of before.ticks) if (!after.ticks.has(pid)) ticks -= t;
  const cpuMs = (ticks * 1000) / clockTicksPerSecond();
  const wallMs = after.atMs - before.atMs;
  return { cpuMs, wallMs, cores: wallMs > 0 ? cpuMs / wallMs : 0 };
}

/** CPU µs per unit of work (request, refusal, connection); NaN when nothing was done. */
export function cpuMicrosPer(usage: CpuUsage, units: number): number {
  return units > 0 ? (usage.cpuMs * 1000) / units : NaN;
}

/** Busy ticks of the whole machine (every CPU), from the first line of /proc/stat. Steal (time the
 * hypervisor gave this virtual machine's CPUs to someone else) is not this machine's work: see stealSince. */
export function systemBusyTicks(): number {
  const f = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0].trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal: idle and iowait are not busy
  return f[0] + f[1] + f[2] + f[5] + f[6];
}

export interface StealMark {
  /** Steal ticks per CPU, by CPU number. */
  readonly ticks: readonly number[];
  readonly at: number;
}

/** Starts measuring steal: on a virtual machine, time a CPU had work but the host ran something else. */
export function markSteal(): StealMark {
  const ticks: number[] = [];
  for (const line of readFileSync('/proc/stat', 'utf8').split('\n')) {
    const m = /^cpu(\d+) (?:\d+ ){7}(\d+)/.exec(line);
    if (m) ticks[Number(m[1])] = Number(m[2]);
  }
  return { ticks, at: performance.now() };
}

/** Per CPU, the share (0–1) of the wall time since `mark` the host took from it. A share of a few
 * per cent means the host kept stopping the CPU for milliseconds at a time, which no server can hide
 * from a tail latency. */
export function stealSince(mark: StealMark): number[] {
  const now = markSteal();
  const wallTicks = ((now.at - mark.at) / 1000) * clockTicksPerSecond();
  return now.ticks.map((t, i) => (wallTicks > 0 ? Math.max(0, (t - (mark.ticks[i] ?? t)) / wallTicks) : 0));
}

export interface NoiseMark {
  readonly system: number;
  readonly own: CpuSample;
}

/** Starts measuring the CPU that processes outside this one's tree use (other users of the machine). */
export function markNoise(): NoiseMark {
  return { system: systemBusyTicks(), own: sampleCpu(process.pid) };
}

/** Cores kept busy by processes outside this process's tree since `mark` (0 on a quiet machine). */
export function noiseSince(mark: NoiseMark): number {
  const own = cpuBetween(mark.own, sampleCpu(process.pid));
  const systemMs = ((systemBusyTicks() - mark.system) * 1000) / clockTicksPerSecond();
  return own.wallMs > 0 ? Math.max(0, (systemMs - own.cpuMs) / own.wallMs) : 0;
}
