// `ward serve --kernel-bans`: the flood guard's deny list and bans mirrored into nftables, so the
// kernel refuses those addresses' connections (a reset answers the SYN) before ward accepts them.
// Real nft, real loopback sources (127.0.0.x); each ward's table is inet ward_PORT, so the rules
// touch nothing but that ward's port. Needs root (CAP_NET_ADMIN) and nft: .ci/run installs
// nftables; with CI set, a machine that cannot run nft fails this file rather than skipping it.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { spawnSync } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { policyDir, basePolicy, startWard, runCli, type PolicyFiles, type WardProcess, stopAll } from './support/ward-process.js';
import { startUpstream, request, type TestUpstream } from './support/http.js';
import { metric, scrape } from './support/observe.js';

function nft(...args: string[]): { ok: boolean; out: string } {
  const r = spawnSync('nft', args, { encoding: 'utf8', timeout: 10_000 });
  return { ok: r.status === 0, out: (r.stdout ?? '') + (r.stderr ?? '') };
}

const probe = nft('list', 'tables');
const skip = !probe.ok && !process.env.CI ? `nft cannot run here (${probe.out.trim() || 'not installed'}): apt-get install nftables, as root` : false;

/** How a connection from `localAddress` ended: the status, 'refused' (the kernel's reset to the
 * SYN: ward never saw it) or 'dropped' (accepted, then closed by ward with no answer). */
async function attempt(url: string, localAddress: string): Promise<number | 'refused' | 'dropped'> {
  try {
    // A SYN the kernel dropped instead of refusing would be retried for minutes: fail in 5 s instead.
    const done = new AbortController();
    const timeout = sleep(5000, undefined, { signal: done.signal }).then(() => Promise.reject(new Error(`no answer within 5 s from ${url} to ${localAddress}`)));
    timeout.catch(() => {}); // aborted once the request settles
    try {
      return (await Promise.race([request(url, { localAddress }), timeout])).status;
    } finally {
      done.abort();
    }
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ECONNREFUSED') return 'refused';
    assert.ok(code === 'ECONNRESET' || code === 'EPIPE', `expected a refused or closed connection, got ${String(err)}`);
    return 'dropped';
  }
}

async function eventually(what: string, timeoutMs: number, check: () => Promise<boolean> | boolean): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > end) assert.fail(`${what} did not happen within ${timeoutMs} ms`);
    await sleep(50);
  }
}

// 3 requests per 10 s: a quick burst of five is over it on any machine; bans last a minute.
const PER_IP = { rate: 3, per_s: 10, ban_s: 60 };

for (const workers of [1, 2]) {
  describe(`kernel bans (--workers ${workers})`, { skip }, () => {
    let up: TestUpstream;
    let p: PolicyFiles;
    let w: WardProcess;
    const flood = (deny: string[]) => ({ flood: { per_ip: PER_IP, deny, allow: ['127.0.9.5/32'] } });

    before(async () => {
      up = await startUpstream();
      p = policyDir();
      p.write(basePolicy(up.url, flood(['127.0.0.2/32', '127.0.9.0/24'])));
      w = await startWard(p.dir, { workers, args: ['--kernel-bans'] });
    });
    after(() => stopAll(w, up, p));

    it('refuses a deny-listed source in the kernel: ward never accepts the connection, and counts it', async () => {
      const seen = up.seen.length;
      assert.equal(await attempt(w.base + '/v1/status', '127.0.0.2'), 'refused');
      assert.equal(await attempt(w.base + '/v1/status', '127.0.9.77'), 'refused');
      // allow wins over deny, as in userland; everyone else is served.
      assert.equal(await attempt(w.base + '/v1/status', '127.0.9.5'), 200);
      assert.equal(await attempt(w.base + '/v1/status', '127.0.0.10'), 200);
      assert.equal(up.seen.length, seen + 2);
      const m = await scrape(w);
      assert.equal(metric(m, 'ward_dropped_total', { reason: 'denied' }), 0, 'ward itself dropped nothing: the kernel did');
      assert.ok(metric(m, 'ward_kernel_dropped_packets_total', { reason: 'denied' }) >= 2, m);
    });

    it('hands a flooding address to the kernel: after the burst that banned it, its connections are refused', async () => {
      const addr = `127.0.0.${20 + workers}`;
      const outcomes: Array<number | string> = [];
      for (let i = 0; i < 5; i++) outcomes.push(await attempt(w.base + '/v1/status', addr));
      assert.deepEqual(outcomes.slice(0, 3), [200, 200, 200]);
      assert.ok(outcomes.slice(3).every((o) => o === 'dropped' || o === 'refused'), `over the rate: ${outcomes.join(', ')}`);
      await eventually('the ban reaching nft', 5000, () => nft('list', 'set', 'inet', `ward_${w.port}`, 'ban4').out.includes(addr));
      assert.equal(await attempt(w.base + '/v1/status', addr), 'refused');
      assert.equal(await attempt(w.base + '/v1/status', '127.0.0.11'), 200, 'other addresses are still served');
      const m = await scrape(w);
      assert.ok(metric(m, 'ward_kernel_bans_total', { result: 'installed' }) >= 1, m);
      assert.ok(metric(m, 'ward_kernel_dropped_packets_total', { reason: 'banned' }) >= 1, m);
      assert.equal(metric(m, 'ward_kernel_nft_failures_total'), 0);
    });

    it('hands a ban the kernel lost back to it when the banned address reaches ward again', async () => {
      const addr = `127.0.0.${20 + workers}`; // banned by the test before (ban_s 60)
      // As a firewall reload elsewhere would lose it.
      assert.ok(nft('flush', 'set', 'inet', `ward_${w.port}`, 'ban4').ok);
      assert.equal(await attempt(w.base + '/v1/status', addr), 'dropped', 'ward still drops it itself');
      await eventually('the ban back in nft', 5000, () => nft('list', 'set', 'inet', `ward_${w.port}`, 'ban4').out.includes(addr));
      assert.equal(await attempt(w.base + '/v1/status', addr), 'refused');
    });

    it('takes a policy edit live: a source taken off the deny list is served, a new one is refused', async () => {
      p.write(basePolicy(up.url, flood(['127.0.0.30/32'])));
      // Wait on the set itself: knocking from 127.0.0.30 until it is refused could be answered by a
      // flood ban of that address (3 per 10 s) before the edit arrives.
      await eventually('the edited deny list in the kernel', 8000, () => {
        const set = nft('list', 'set', 'inet', `ward_${w.port}`, 'deny4').out;
        return /127\.0\.0\.30(?!\d)/.test(set) && !/127\.0\.0\.2(?![\d.])/.test(set);
      });
      assert.equal(await attempt(w.base + '/v1/status', '127.0.0.30'), 'refused');
      // The listener threads take the edit a moment apart from the kernel's table.
      await eventually('127.0.0.2 served', 3000, async () => (await attempt(w.base + '/v1/status', '127.0.0.2')) === 200);
    });

    it('removes its table when it stops: a stopped ward drops nothing', async () => {
      const table = `ward_${w.port}`;
      assert.ok(nft('list', 'table', 'inet', table).ok);
      assert.equal(await w.stop(), 0);
      assert.equal(nft('list', 'table', 'inet', table).ok, false, 'the table is gone');
    });
  });
}

describe('kernel bans for IPv6 clients (dual-stack listener)', { skip }, () => {
  it('refuses a deny-listed IPv6 source, and bans a flooding one by its prefix, while IPv4 is served', async () => {
    const up = await startUpstream();
    const p = policyDir();
    let w: WardProcess | undefined;
    try {
      // "::" is dual-stack: IPv4 clients arrive as IPv4 packets and meet the ip rules, IPv6 ones the ip6 rules.
      p.write(basePolicy(up.url, { listen: { host: '::', port: 0 }, flood: { per_ip: PER_IP, deny: ['::1/128'] } }));
      w = await startWard(p.dir, { args: ['--kernel-bans'] });
      const v6 = `http://[::1]:${w.port}/v1/status`;
      assert.equal(await attempt(v6, '::1'), 'refused');
      assert.equal(await attempt(w.base + '/v1/status', '127.0.0.40'), 200);
      // Off the deny list, ::1 floods: the ban covers its /64 (ipv6_prefix), as the flood guard counts it.
      p.write(basePolicy(up.url, { listen: { host: '::', port: 0 }, flood: { per_ip: PER_IP } }));
      const table = `ward_${w.port}`;
      await eventually('the deny list emptied in the kernel', 8000, async () => (await attempt(v6, '::1')) === 200);
      for (let i = 0; i < 5; i++) await attempt(v6, '::1');
      await eventually('the IPv6 ban reaching nft', 5000, () => nft('list', 'set', 'inet', table, 'ban6').out.includes('::/64'));
      assert.equal(await attempt(v6, '::1'), 'refused');
      assert.equal(await attempt(w.base + '/v1/status', '127.0.0.41'), 200);
    } finally {
      await stopAll(w, up, p);
    }
  });
});

describe('kernel bans asked for where nft cannot run', { skip }, () => {
  it('refuses to start, saying why, rather than serving without them', async () => {
    const up = await startUpstream();
    const p = policyDir();
    try {
      p.write(basePolicy(up.url));
      // No nft on this PATH: what a machine without nftables looks like.
      const r = await runCli(['serve', '--policies', p.dir, '--workers', '1', '--kernel-bans'], { env: { PATH: '/nonexistent' }, killAfterMs: 15_000 });
      assert.equal(r.code, 1, r.stdout + r.stderr);
      assert.match(r.stderr, /--kernel-bans: nft could not install table inet ward_\d+ \(needs the nft command and CAP_NET_ADMIN\)/);
    } finally {
      await up.close();
      p.remove();
    }
  });
});
