// A ward confined to one CPU collects its young generation without V8's parallel helper tasks
// (gateway/instance/gc-tuning.ts): it says so at start, and V8's own trace of every scavenge shows no
// helper work. With two CPUs nothing changes (the control).

import assert from 'node:assert/strict';
import { Agent } from 'node:http';
import { availableParallelism } from 'node:os';
import { after, it } from 'node:test';
import { policyDir, basePolicy, startWard, type WardProcess } from './support/ward-process.js';
import { request } from './support/http.js';

const TUNED = 'one CPU: young-generation collections run without parallel helper tasks';
const running: WardProcess[] = [];
after(async () => {
  for (const w of running) await w.stop();
});

/** Starts ward with V8's per-scavenge trace, sends it enough requests for several scavenges (ward's
 * own 404s: no upstream needed), and returns each scavenge's helper-task time (ms). */
async function scavengeHelperTimes(cpus: string | undefined): Promise<{ w: WardProcess; helperMs: number[] }> {
  const p = policyDir();
  p.write(basePolicy('http://127.0.0.1:1'));
  const w = await startWard(p.dir, { nodeFlags: ['--trace-gc-nvp'], ...(cpus !== undefined ? { cpus } : {}) });
  running.push(w);
  const agent = new Agent({ keepAlive: true, maxSockets: 8 });
  try {
    for (let round = 0; round < 500; round++) {
      const answers = await Promise.all(Array.from({ length: 16 }, () => request(`${w.base}/nowhere/${round}`, { agent })));
      assert.equal(answers[0]!.status, 404);
    }
  } finally {
    agent.destroy();
  }
  // Scavenges from the moment ward tuned (those while it loaded its modules came before).
  const tuned = w.logs.findIndex((l) => l.includes(TUNED));
  const helperMs = w.logs.slice(tuned + 1).filter((l) => l.includes(' gc=s ')).map((l) => Number(/background\.scavenge\.parallel=([\d.]+)/.exec(l)?.[1] ?? NaN));
  return { w, helperMs };
}

it('pinned to one CPU: says so at start, and its scavenges use no helper tasks', async () => {
  const { w, helperMs } = await scavengeHelperTimes('0');
  assert.ok(w.logs.some((l) => l.includes(`"msg":"${TUNED}"`)), 'the tuning line');
  assert.ok(helperMs.length >= 5, `only ${helperMs.length} scavenges traced`);
  assert.ok(helperMs.every((ms) => ms === 0), `helper time per scavenge, ms: ${helperMs.join(' ')}`);
});

it('with two CPUs (the control): no such line, and its scavenges do use helper tasks', { skip: availableParallelism() < 2 ? 'this machine has one CPU: no control to run' : false }, async () => {
  const { w, helperMs } = await scavengeHelperTimes(undefined);
  assert.ok(!w.logs.some((l) => l.includes(TUNED)), 'no tuning line');
  assert.ok(helperMs.length >= 5, `only ${helperMs.length} scavenges traced`);
  assert.ok(helperMs.some((ms) => ms > 0), `helper time per scavenge, ms: ${helperMs.join(' ')}`);
});
