// KernelBans against the real nft: the elements it writes, shadow mode, and a table removed from
// outside ward. No listener is needed: the table only names a port. Needs root and nft (.ci/run
// installs nftables); with CI set, a machine that cannot run nft fails here rather than skipping.

import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { createLogger } from '../../log.js';
import type { FloodSpec } from '../../policy/types.js';
import { KernelBans } from './kernel-bans.js';
import { parseAddress } from './cidr-set.js';

function nft(...args: string[]): { ok: boolean; out: string } {
  const r = spawnSync('nft', args, { encoding: 'utf8' });
  return { ok: r.status === 0, out: (r.stdout ?? '') + (r.stderr ?? '') };
}

const probe = nft('list', 'tables');
const skip = !probe.ok && !process.env.CI ? `nft cannot run here (${probe.out.trim() || 'not installed'})` : false;

const flood = (over: Partial<FloodSpec> = {}): FloodSpec => ({
  per_ip: { rate: 10, per_s: 1, ban_s: 30 },
  ipv6_prefix: 56,
  max_body_bytes: 1 << 20,
  max_header_bytes: 16384,
  deny: ['203.0.113.0/24', '2001:db8:dead::/48', '::ffff:198.51.100.0/120'],
  allow: ['203.0.113.7'],
  enforce: true,
  ...over,
});

const log = createLogger({ level: 'silent' });
// A port nothing here listens on, below the ephemeral range (no test ward gets it): the table only names it.
const PORT = 20000 + (process.pid % 10000);
const bytes = (text: string) => parseAddress(text)!;

describe('KernelBans with the real nft', { skip }, () => {
  const open: KernelBans[] = [];
  after(async () => {
    for (const kb of open) await kb.close();
  });

  it('writes the lists and each ban as the flood guard counts it: IPv6 by its prefix, mapped IPv4 as IPv4', async () => {
    const kb = await KernelBans.install({ port: PORT, flood: flood(), log });
    open.push(kb);
    const set = (name: string) => nft('list', 'set', 'inet', kb.table, name).out;
    assert.match(set('deny4'), /198\.51\.100\.0\/24/);
    assert.match(set('deny4'), /203\.0\.113\.0\/24/);
    assert.match(set('deny6'), /2001:db8:dead::\/48/);
    assert.match(set('allow4'), /203\.0\.113\.7/);
    kb.ban(bytes('2001:db8:1:2:3:4:5:6'), 30_000);
    kb.ban(bytes('::ffff:192.0.2.7'), 30_000);
    kb.ban(bytes('192.0.2.8'), 30_000);
    await kb.settled();
    assert.match(set('ban6'), /2001:db8:1::\/56 timeout 30s/);
    assert.match(set('ban4'), /192\.0\.2\.7 timeout 30s/);
    assert.match(set('ban4'), /192\.0\.2\.8 timeout 30s/);
    assert.equal(kb.stats().bans, 3);
    assert.match(nft('list', 'chain', 'inet', kb.table, 'input').out, new RegExp(`tcp dport ${PORT} ip saddr @ban4`));
  });

  it('in shadow mode (enforce: false) leaves the deny sets empty, lifts the bans and takes no new ones', async () => {
    const kb = open[0]!;
    kb.configure(flood({ enforce: false }));
    kb.ban(bytes('192.0.2.9'), 30_000);
    await kb.settled();
    for (const name of ['deny4', 'deny6', 'ban4', 'ban6']) assert.doesNotMatch(nft('list', 'set', 'inet', kb.table, name).out, /elements/, name);
    assert.match(nft('list', 'set', 'inet', kb.table, 'allow4').out, /203\.0\.113\.7/);
    kb.configure(flood());
    await kb.settled();
    assert.match(nft('list', 'set', 'inet', kb.table, 'deny4').out, /203\.0\.113\.0\/24/);
  });

  it('puts its table back when something else removed it, lists and the waiting bans included', async () => {
    const kb = open[0]!;
    assert.ok(nft('delete', 'table', 'inet', kb.table).ok);
    kb.ban(bytes('192.0.2.10'), 30_000);
    await kb.settled();
    assert.equal(kb.stats().reinstalls, 1);
    assert.equal(kb.stats().failures, 0);
    assert.match(nft('list', 'set', 'inet', kb.table, 'ban4').out, /192\.0\.2\.10/);
    assert.match(nft('list', 'set', 'inet', kb.table, 'deny4').out, /203\.0\.113\.0\/24/);
  });

  it('notices a removed table when its counters are read (a metrics scrape), and puts it back', async () => {
    const kb = open[0]!;
    assert.ok(nft('delete', 'table', 'inet', kb.table).ok);
    assert.equal(await kb.drops(), undefined);
    await kb.settled();
    assert.equal(kb.stats().reinstalls, 2);
    assert.deepEqual(await kb.drops(), { denied: 0, banned: 0 });
  });

  it('lifts the IPv6 bans when ipv6_prefix changes: the clients are keyed afresh, and old prefixes would overlap new ones', async () => {
    const kb = open[0]!;
    kb.ban(bytes('2001:db8:7:8::1'), 30_000);
    await kb.settled();
    assert.match(nft('list', 'set', 'inet', kb.table, 'ban6').out, /2001:db8:7::\/56/);
    kb.configure(flood({ ipv6_prefix: 64 }));
    kb.ban(bytes('2001:db8:7:9::1'), 30_000);
    await kb.settled();
    const ban6 = nft('list', 'set', 'inet', kb.table, 'ban6').out;
    assert.doesNotMatch(ban6, /2001:db8:7::\/56/);
    assert.match(ban6, /2001:db8:7:9::\/64/);
    assert.equal(kb.stats().failures, 0);
    kb.configure(flood());
    await kb.settled();
  });

  it('when nft refuses a batch: counts and logs it, waits a second, and takes the address again when it knocks again', async () => {
    // nft itself, with a switch that makes it fail: the path a broken or locked firewall takes.
    const dir = mkdtempSync(join(tmpdir(), 'ward-nft-'));
    const failing = join(dir, 'fail');
    const wrapper = join(dir, 'nft');
    writeFileSync(wrapper, `#!/bin/sh\nif [ -e '${failing}' ]; then cat >/dev/null; echo 'Error: refused for this test' >&2; exit 1; fi\nexec nft "$@"\n`, { mode: 0o755 });
    const kb = await KernelBans.install({ port: PORT + 1, flood: flood(), log, nft: wrapper });
    try {
      writeFileSync(failing, '');
      const t0 = Date.now();
      kb.ban(bytes('192.0.2.20'), 30_000);
      await sleep(200); // the run failed; the next waits
      assert.equal(kb.stats().failures, 1);
      // The address knocks again (three times) during the wait: queued once.
      for (let i = 0; i < 3; i++) kb.ban(bytes('192.0.2.20'), 30_000);
      rmSync(failing);
      await kb.settled();
      assert.ok(Date.now() - t0 >= 1000, `the next run waited a second (${Date.now() - t0} ms)`);
      assert.deepEqual(kb.stats(), { bans: 1, failures: 1, overflow: 0, reinstalls: 0 });
      assert.match(nft('list', 'set', 'inet', kb.table, 'ban4').out, /192\.0\.2\.20/);
    } finally {
      await kb.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('deletes its table on close', async () => {
    const kb = open.pop()!;
    await kb.close();
    assert.equal(nft('list', 'table', 'inet', kb.table).ok, false);
  });
});
