// Two real worker threads attached to one MemoryLimitStore and one FloodGuard, hammering the same
// bucket, pool and address at the same instant: together they get exactly what one would.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { Worker } from 'node:worker_threads';
import { FloodGuard, FloodVerdict } from '../../stages/admit/flood-guard.js';
import { MemoryLimitStore } from './memory-store.js';

interface Result {
  bucketAdmitted: number;
  leases: number;
  verdicts: number[];
}

test('two worker threads share one budget: burst B admits exactly B, a pool of N grants exactly N, one ban', async () => {
  const store = MemoryLimitStore.create();
  const guard = FloodGuard.create({ addressSlots: 1 << 12 });
  const gate = new Int32Array(new SharedArrayBuffer(4));
  const burst = 20_000;
  const poolLimit = 15_000;
  const perIp = 25_000;
  const tries = 30_000;
  const data = {
    store: store.shared(),
    guard: guard.shared(),
    gate,
    flood: { per_ip: { rate: perIp, per_s: 3600, ban_s: 60 }, ipv6_prefix: 64, max_body_bytes: 1 << 20, max_header_bytes: 16384, deny: [], allow: [], enforce: true },
    burst,
    poolLimit,
    tries,
    now: 5_000_000,
  };
  guard.configure(data.flood);
  const url = new URL('./worker-fixture.js', import.meta.url);
  const workers = [new Worker(url, { workerData: data }), new Worker(url, { workerData: data })];
  try {
    await Promise.all(workers.map((w) => once(w, 'message'))); // both attached, at the gate
    const results = workers.map((w) => once(w, 'message').then(([m]) => m as Result));
    Atomics.store(gate, 0, 1);
    Atomics.notify(gate, 0);
    const [a, b] = await Promise.all(results);

    assert.equal(a!.bucketAdmitted + b!.bucketAdmitted, burst);
    assert.equal(a!.leases + b!.leases, poolLimit);
    assert.equal(store.inUse('{t}:p:calls'), poolLimit);
    const sum = (v: number) => a!.verdicts[v]! + b!.verdicts[v]!;
    assert.equal(sum(FloodVerdict.Pass), perIp);
    assert.equal(sum(FloodVerdict.Flooding), 1, 'exactly one thread saw the address go over');
    assert.equal(sum(FloodVerdict.Banned), 2 * tries - perIp - 1);
    assert.equal(guard.check(new Uint8Array([192, 0, 2, 1]), 5_000_000), FloodVerdict.Banned, 'the main thread sees the ban');

    const released = workers.map((w) => once(w, 'message'));
    for (const w of workers) w.postMessage('release');
    await Promise.all(released);
    assert.equal(store.inUse('{t}:p:calls'), 0, 'every lease freed once, none twice');
  } finally {
    await Promise.all(workers.map((w) => w.terminate()));
  }
});
