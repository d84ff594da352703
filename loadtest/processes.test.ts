import { test } from 'node:test';
import assert from 'node:assert/strict';
import { freePort, runToEnd, startChild } from './processes.js';

test('a child is ready on its ready line and stops on request', async () => {
  const c = await startChild({ name: 'echo', cmd: process.execPath, args: ['-e', 'console.log("up"); setInterval(() => {}, 1000)'], readyLine: (l) => l === 'up' });
  assert.ok(c.pid > 0);
  await c.stop();
  assert.ok(c.proc.exitCode !== null || c.proc.signalCode !== null);
});

test('a child that exits before it is ready fails with what it printed', async () => {
  await assert.rejects(
    startChild({ name: 'broken', cmd: process.execPath, args: ['-e', 'console.error("bad policy: line 3"); process.exit(2)'], readyLine: () => false }),
    /broken exited \(2\) before it was ready[\s\S]*bad policy: line 3/,
  );
});

test('a child that never gets ready is stopped after the timeout', async () => {
  await assert.rejects(
    startChild({ name: 'slow', cmd: process.execPath, args: ['-e', 'setInterval(() => {}, 1000)'], readyPort: await freePort(), timeoutMs: 300 }),
    /nothing listens|not ready/,
  );
});

test('runToEnd returns stdout, and rejects with stderr on failure', async () => {
  assert.equal((await runToEnd(process.execPath, ['-e', 'process.stdout.write("ok")'])).trim(), 'ok');
  await assert.rejects(runToEnd(process.execPath, ['-e', 'console.error("nope"); process.exit(3)']), /exited 3: nope/);
});
