// The contract's 30 s promise, with the real default TTL (so this file takes about 31 s; it has its
// own file so the runner overlaps it with the rest of the suite): a SIGKILLed instance's leases are
// freed within 30 s, and a live instance's leases, renewed, are not.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { StoreSpec } from '../../policy/types.js';
import { startRedis } from '../../../test/support/redis-server.js';
import { MemoryLimitStore } from '../memory/memory-store.js';
import { poolKey, type AdmitPlan } from '../types.js';
import { RedisLimitStore } from './redis-store.js';

const CHILD = fileURLToPath(new URL('./store-test-child.js', import.meta.url));

test('leases of a SIGKILLed instance are freed within 30 s; a live holder keeps its own', { timeout: 60_000 }, async () => {
  const redis = await startRedis();
  const spec: StoreSpec = { kind: 'redis', url: redis.url, prefix: 'ward:', outage_share: 0.5 };
  const plan: AdmitPlan = { tenant: 'acme', enforce: true, pool: { name: 'calls', key: poolKey('acme', 'calls'), limit: 4 } };
  // Default TTL 30 s, renewed every 10 s; a patient command timeout so a loaded CI box never falls
  // back to local leases here.
  const opts = { commandTimeoutMs: 2000 };
  const live = new RedisLimitStore(spec, MemoryLimitStore.create(), opts);
  const child = spawn(process.execPath, [CHILD, JSON.stringify({ mode: 'hold', spec, plan, leases: 3, opts })], { stdio: ['pipe', 'pipe', 'inherit'] });
  try {
    assert.equal(await live.ready(3000), true);
    // The live instance takes its lease first, so without renewal it would expire first.
    assert.ok((await live.admit(plan, Date.now())).lease);
    const line = await new Promise<string>((res) => createInterface({ input: child.stdout! }).once('line', res));
    assert.deepEqual(JSON.parse(line), { held: 3 });
    assert.equal((await live.admit(plan, Date.now())).refused, 'pool', 'the pool of 4 is full');

    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    const killedAt = Date.now();
    while ((await live.inUse(plan.pool!.key)) > 1) {
      assert.ok(Date.now() - killedAt <= 30_500, 'the dead instance\'s leases are gone within 30 s');
      await new Promise((r) => setTimeout(r, 200));
    }
    const freedAfter = Date.now() - killedAt;
    assert.ok(freedAfter > 25_000, `nothing but expiry frees them early (freed after ${freedAfter} ms)`);
    assert.equal(await live.inUse(plan.pool!.key), 1, 'the live holder\'s lease, renewed, is still counted');
    const again = await Promise.all([live.admit(plan, Date.now()), live.admit(plan, Date.now()), live.admit(plan, Date.now()), live.admit(plan, Date.now())]);
    assert.deepEqual(again.map((a) => a.ok), [true, true, true, false]);
  } finally {
    child.kill('SIGKILL');
    await live.close();
    await redis.stop();
  }
});
