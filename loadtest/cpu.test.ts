import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { cpus } from 'node:os';
import { clockTicksPerSecond, cpuBetween, cpuMicrosPer, markSteal, processTree, readCpuTicks, readPreemptions, sampleCpu, stealSince, treeRssBytes } from './cpu.js';

test('reads clock ticks per second from getconf', () => {
  const t = clockTicksPerSecond();
  assert.ok(Number.isInteger(t) && t > 0, `CLK_TCK ${t}`);
});

test('counts the CPU a busy child burns, through its parent, from /proc/PID/stat', async () => {
  // A shell whose child spins for ~300 ms: the CPU shows up in the tree of the shell.
  const sh = spawn('sh', ['-c', `${JSON.stringify(process.execPath)} -e "const e=Date.now()+300;while(Date.now()<e);" ; sleep 5`], { stdio: 'ignore' });
  try {
    await new Promise((r) => setTimeout(r, 50));
    const before = sampleCpu(sh.pid!);
    assert.ok(processTree(sh.pid!).length >= 2, 'the node child is in the tree of the shell');
    assert.ok(treeRssBytes(sh.pid!) > 1_000_000, 'RSS of the tree is read');
    await new Promise((r) => setTimeout(r, 400));
    const used = cpuBetween(before, sampleCpu(sh.pid!));
    assert.ok(used.cpuMs >= 150, `expected ≥ 150 ms of CPU, got ${used.cpuMs}`);
    assert.ok(used.cores > 0.3 && used.cores <= 1.2, `cores ${used.cores}`);
    assert.ok(cpuMicrosPer(used, 1000) >= 150);
  } finally {
    sh.kill('SIGKILL');
  }
});

test('a process that is gone reads as undefined, and per-unit cost of nothing is NaN', async () => {
  const p = spawn(process.execPath, ['-e', ''], { stdio: 'ignore' });
  const pid = p.pid!;
  await new Promise((r) => p.once('close', r));
  assert.equal(readCpuTicks(pid), undefined);
  assert.ok(Number.isNaN(cpuMicrosPer({ cpuMs: 5, wallMs: 10, cores: 0.5 }, 0)));
});

test('counts involuntary context switches of a tree: two busy processes on one core take it from each other', async () => {
  const spin = `${JSON.stringify(process.execPath)} -e "const e=Date.now()+400;while(Date.now()<e);"`;
  const sh = spawn('sh', ['-c', `taskset -c 0 ${spin} & taskset -c 0 ${spin} & wait; sleep 5`], { stdio: 'ignore' });
  try {
    await new Promise((r) => setTimeout(r, 100));
    const before = readPreemptions(sh.pid!);
    await new Promise((r) => setTimeout(r, 250));
    const during = readPreemptions(sh.pid!) - before;
    assert.ok(during >= 5, `two spinning processes sharing core 0 preempted each other ${during} times in 250 ms`);
  } finally {
    sh.kill('SIGKILL');
  }
  const idle = spawn('sleep', ['5'], { stdio: 'ignore' });
  try {
    await new Promise((r) => setTimeout(r, 50));
    const before = readPreemptions(idle.pid!);
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(readPreemptions(idle.pid!) - before, 0, 'a sleeping process is never preempted');
  } finally {
    idle.kill('SIGKILL');
  }
});

test('reads steal per CPU from /proc/stat: a share of the wall time for every CPU', async () => {
  const mark = markSteal();
  assert.equal(mark.ticks.length, cpus().length, `steal of ${mark.ticks.length} CPUs`);
  assert.ok(mark.ticks.every((t) => Number.isInteger(t) && t >= 0), String(mark.ticks));
  await new Promise((r) => setTimeout(r, 200));
  const shares = stealSince(mark);
  assert.equal(shares.length, mark.ticks.length);
  assert.ok(shares.every((s) => s >= 0 && s <= 1.05), String(shares));
});
