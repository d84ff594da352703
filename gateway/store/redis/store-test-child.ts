// Test fixture (run by redis-store*.test.ts as a separate process, i.e. a separate ward instance):
//   hammer: on "go" from stdin, admits the plan as fast as it can for durationMs, prints the count;
//   hold:   takes `leases` leases of the plan's pool, prints how many, then holds them (renewing)
//           until it is killed.
// Input: one JSON argument {mode, spec, plan, durationMs?, concurrency?, leases?, opts?}.

import { createInterface } from 'node:readline';
import type { StoreSpec } from '../../policy/types.js';
import { MemoryLimitStore } from '../memory/memory-store.js';
import type { AdmitPlan } from '../types.js';
import { RedisLimitStore, type RedisLimitStoreOptions } from './redis-store.js';

interface ChildArgs {
  mode: 'hammer' | 'hold';
  spec: StoreSpec;
  plan: AdmitPlan;
  durationMs?: number;
  concurrency?: number;
  leases?: number;
  opts?: RedisLimitStoreOptions;
}

const args = JSON.parse(process.argv[2]!) as ChildArgs;
// The parent holds our stdin: when it goes away (even killed), so do we.
const lines = createInterface({ input: process.stdin });
lines.once('close', () => process.exit(0));
const store = new RedisLimitStore(args.spec, MemoryLimitStore.create(), args.opts);
if (!(await store.ready(5000))) {
  process.stdout.write(JSON.stringify({ error: 'redis not reachable' }) + '\n');
  process.exit(1);
}

if (args.mode === 'hold') {
  let held = 0;
  for (let i = 0; i < args.leases!; i++) if ((await store.admit(args.plan, Date.now())).lease) held++;
  process.stdout.write(JSON.stringify({ held }) + '\n');
  setInterval(() => undefined, 1 << 30); // stay alive, renewing, until SIGKILL
} else {
  process.stdout.write(JSON.stringify({ ready: true }) + '\n');
  await new Promise<void>((resolve) => lines.once('line', () => resolve()));
  let admitted = 0;
  let refused = 0;
  let local = 0;
  const startMs = Date.now();
  const until = startMs + args.durationMs!;
  const worker = async () => {
    while (Date.now() < until) {
      const a = await store.admit(args.plan, Date.now());
      if (a.ok) admitted++;
      else refused++;
    }
  };
  await Promise.all(Array.from({ length: args.concurrency ?? 16 }, worker));
  const endMs = Date.now();
  local = store.stats().failOpenTotal;
  process.stdout.write(JSON.stringify({ admitted, refused, local, startMs, endMs }) + '\n');
  await store.close();
  process.exit(0);
}
