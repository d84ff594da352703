// The worker half of worker-threads.test.ts: attaches to the store and guard the main thread made,
// waits at a start gate so both workers hammer at once, and reports what it was granted.
import { parentPort, workerData } from 'node:worker_threads';
import type { Lease } from '../types.js';
import type { FloodSpec } from '../../policy/types.js';
import { FloodGuard } from '../../stages/admit/flood-guard.js';
import { MemoryLimitStore, type MemoryLimitStoreHandle } from './memory-store.js';
import type { SharedTableHandle } from './shared-table.js';

interface Data {
  store: MemoryLimitStoreHandle;
  guard: SharedTableHandle;
  gate: Int32Array;
  flood: FloodSpec;
  burst: number;
  poolLimit: number;
  tries: number;
  now: number;
}

const d = workerData as Data;
const store = MemoryLimitStore.attach(d.store);
const guard = FloodGuard.attach(d.guard);
guard.configure(d.flood);
const bucketPlan = { tenant: 't', enforce: true, bucket: { name: 'api', key: '{t}:b:api', rate: 1, perS: 3600, burst: d.burst } };
const poolPlan = { tenant: 't', enforce: true, pool: { name: 'calls', key: '{t}:p:calls', limit: d.poolLimit } };
const addr = new Uint8Array([192, 0, 2, 1]).buffer;

parentPort!.postMessage({ ready: true });
Atomics.wait(d.gate, 0, 0);

let bucketAdmitted = 0;
const leases: Lease[] = [];
const verdicts = [0, 0, 0, 0, 0];
for (let i = 0; i < d.tries; i++) {
  if (store.admit(bucketPlan, d.now).ok) bucketAdmitted++;
  const a = store.admit(poolPlan, d.now);
  if (a.lease) leases.push(a.lease);
  verdicts[guard.check(addr, d.now)]!++;
}
parentPort!.postMessage({ bucketAdmitted, leases: leases.length, verdicts });

parentPort!.once('message', () => {
  for (const l of leases) {
    store.release(l);
    store.release(l);
  }
  parentPort!.postMessage({ released: true });
  parentPort!.close();
});
