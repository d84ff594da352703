import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Worker } from 'node:worker_threads';
import type { UpstreamSpec } from '../policy/types.js';
import { LoopWatch } from './loop-watch.js';
import { UpstreamRegistry } from './upstream-registry.js';

function worker(spec: UpstreamSpec, buffers: Record<string, SharedArrayBuffer>, picks: number): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const w = new Worker(new URL('./table-worker-fixture.js', import.meta.url), { workerData: { spec, buffers, picks } });
    w.once('message', (m: string[]) => {
      resolve(m);
      void w.terminate();
    });
    w.once('error', reject);
  });
}

describe('target tables shared with listener threads', () => {
  it('worker threads see the main thread\'s drains and their picks count in one in-flight total', async () => {
    const spec: UpstreamSpec = { name: 'api', targets: ['http://10.0.0.1:1', 'http://10.0.0.2:1', 'http://10.0.0.3:1'], timeout_ms: 1000, balance: 'hash', hash: { key: 'tenant', balance_factor: 125 } };
    const main = new UpstreamRegistry({ loopWatch: new LoopWatch() });
    main.apply({ upstreams: { api: spec } });
    main.get('api')!.drain('http://10.0.0.1:1');
    const [a, b] = await Promise.all([worker(spec, main.buffers(), 300), worker(spec, main.buffers(), 300)]);
    assert.ok(![...a!, ...b!].includes('http://10.0.0.1:1'), 'no thread picks a drained target');
    const loads = main.get('api')!.view().targets.map((t) => t.in_flight);
    assert.deepEqual(loads[0], 0);
    assert.equal(loads[1]! + loads[2]!, 600, 'both threads counted in the shared table');
    // Bounded loads hold across threads: neither target is above 1.25 × the average + 1.
    assert.ok(Math.max(loads[1]!, loads[2]!) <= 1.25 * 300 + 1, loads.join());
  });
});
