import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { watchPolicy } from './watch.js';

const GATEWAY = (jwks: string): string => `auth: { jwks_file: ${jwks} }\n`;

let dir: string;
let calls: number;
let watcher: { close(): void } | undefined;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'ward-watch-'));
  mkdirSync(join(dir, 'keys'));
  writeFileSync(join(dir, 'gateway.yaml'), GATEWAY('keys/jwks.json'));
  writeFileSync(join(dir, 'keys/jwks.json'), '{"keys": []}');
  calls = 0;
});

afterEach(() => {
  watcher?.close();
  watcher = undefined;
  rmSync(dir, { recursive: true, force: true });
});

function start(): void {
  watcher = watchPolicy(dir, () => calls++);
}

/** Waits until onChange has been called `n` times (well within the contract's 2 s), then a bit more. */
async function expectCalls(n: number): Promise<void> {
  const until = Date.now() + 1500;
  while (calls < n && Date.now() < until) await sleep(20);
  await sleep(300); // nothing more should follow
  assert.equal(calls, n);
}

test('fires once for a burst of edits to gateway.yaml', async () => {
  start();
  writeFileSync(join(dir, 'gateway.yaml'), GATEWAY('keys/jwks.json') + '# 1\n');
  writeFileSync(join(dir, 'gateway.yaml'), GATEWAY('keys/jwks.json') + '# 2\n');
  await expectCalls(1);
});

test('fires when an editor replaces gateway.yaml by an atomic rename', async () => {
  start();
  writeFileSync(join(dir, '.gateway.yaml.swp'), 'new');
  await sleep(250);
  assert.equal(calls, 0, 'a temporary file alone is not a change');
  writeFileSync(join(dir, '.gateway.yaml.swp'), GATEWAY('keys/jwks.json') + '# renamed\n');
  renameSync(join(dir, '.gateway.yaml.swp'), join(dir, 'gateway.yaml'));
  await expectCalls(1);
  // The directory watch survives the replaced inode: a second save is seen too.
  writeFileSync(join(dir, 'gateway.yaml'), GATEWAY('keys/jwks.json') + '# again\n');
  await expectCalls(2);
});

test('fires for tenant files, including in a tenants/ created after start', async () => {
  start();
  mkdirSync(join(dir, 'tenants'));
  await expectCalls(1);
  writeFileSync(join(dir, 'tenants/acme.yaml'), 'tenants: { acme: {} }\n');
  await expectCalls(2);
  writeFileSync(join(dir, 'tenants/README.txt'), 'not a tenant file');
  await expectCalls(2);
  rmSync(join(dir, 'tenants/acme.yaml'));
  await expectCalls(3);
});

test('fires for the files gateway.yaml names, following a change of name', async () => {
  start();
  writeFileSync(join(dir, 'keys/jwks.json'), '{"keys": [1]}');
  await expectCalls(1);
  mkdirSync(join(dir, 'other'));
  writeFileSync(join(dir, 'other/jwks.json'), '{"keys": []}');
  await expectCalls(1);
  writeFileSync(join(dir, 'gateway.yaml'), GATEWAY('other/jwks.json'));
  await expectCalls(2);
  writeFileSync(join(dir, 'other/jwks.json'), '{"keys": [2]}');
  await expectCalls(3);
});

test('ignores unrelated files and stops after close', async () => {
  start();
  writeFileSync(join(dir, 'notes.txt'), 'hello');
  writeFileSync(join(dir, 'keys/unrelated.json'), '{}');
  await expectCalls(0);
  watcher!.close();
  writeFileSync(join(dir, 'gateway.yaml'), GATEWAY('keys/jwks.json') + '# after close\n');
  await expectCalls(0);
});

test('survives the policy directory being removed, and fires again once it is back', async () => {
  start();
  rmSync(dir, { recursive: true, force: true });
  await expectCalls(1); // the reload that follows fails and keeps the last good policy
  mkdirSync(join(dir, 'keys'), { recursive: true });
  writeFileSync(join(dir, 'keys/jwks.json'), '{"keys": []}');
  writeFileSync(join(dir, 'gateway.yaml'), GATEWAY('keys/jwks.json'));
  await expectCalls(2);
  // Watched again as before: a later edit is seen.
  writeFileSync(join(dir, 'gateway.yaml'), GATEWAY('keys/jwks.json') + '# edited\n');
  await expectCalls(3);
});
