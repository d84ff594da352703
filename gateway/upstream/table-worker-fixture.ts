// Test support: a listener thread that attaches to the main thread's target tables and picks.
import { parentPort, workerData } from 'node:worker_threads';
import type { UpstreamSpec } from '../policy/types.js';
import { LoopWatch } from './loop-watch.js';
import { UpstreamRegistry } from './upstream-registry.js';

const { spec, buffers, picks } = workerData as { spec: UpstreamSpec; buffers: Record<string, SharedArrayBuffer>; picks: number };
const reg = new UpstreamRegistry({ loopWatch: new LoopWatch() });
reg.apply({ upstreams: { [spec.name]: spec } }, buffers);
const g = reg.get(spec.name)!;
const urls: string[] = [];
for (let i = 0; i < picks; i++) urls.push(g.pick(`key-${i}`)!.url);
parentPort!.postMessage(urls);
