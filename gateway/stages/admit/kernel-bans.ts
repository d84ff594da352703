// Kernel-side drops (`ward serve --kernel-bans`): the flood guard's deny and allow lists and each
// ban it hands out are mirrored into an nftables table of ward's own, so the kernel answers a
// denied or banned address's packets to ward's port with a TCP reset before any socket exists.
// A dropped connection then costs ward nothing: no accept, no epoll registration, no getpeername,
// no close (in userland those are 13 of the 14 system calls a drop costs, all inside uWS).
//
// The userland guard stays in force underneath: an nft failure, a ban still in the queue or one lost
// with a table removed from outside only means the address is dropped the dearer way, and handed to
// the kernel again when it next knocks (the pipeline calls ban() for every banned address it sees). nft runs as a child process, one transaction per
// run, at most one run at a time; bans that arrive meanwhile go in the next run together, so a
// flood of distinct addresses costs a few runs per second, not one per address.
//
// Needs the nft command and CAP_NET_ADMIN. The table is inet ward_PORT, deleted on drain and
// replaced at the next start (after a crash or kill -9 it stays until then).

import { spawn } from 'node:child_process';
import type { FloodSpec } from '../../policy/types.js';
import type { Logger } from '../../log.js';
import { formatAddress } from '../../server/remote-address.js';
import { isMapped, maskHostBits, parseCidr } from './cidr-set.js';

/** Bans waiting for nft beyond this are left to the userland guard (counted in stats().overflow). */
const MAX_PENDING_BANS = 65_536;
/** After a failed run, the next waits this long: a broken nft costs one run and one log line a second. */
const RETRY_AFTER_FAILURE_MS = 1000;

export interface KernelBansStats {
  /** Bans handed to nft (in runs that succeeded). */
  readonly bans: number;
  /** nft runs that failed (each logged). */
  readonly failures: number;
  /** Bans not handed over because too many were waiting. */
  readonly overflow: number;
  /** Times the table was found removed from outside ward and put back. */
  readonly reinstalls: number;
}

export interface KernelDrops {
  /** Packets the kernel refused for a `deny` range, and for a ban (a refused connection is one packet). */
  readonly denied: number;
  readonly banned: number;
}

interface NftResult {
  readonly ok: boolean;
  readonly stdout: string;
  readonly stderr: string;
}

function runNft(nft: string, args: readonly string[], input?: string): Promise<NftResult> {
  return new Promise((resolve) => {
    const child = spawn(nft, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', (err) => resolve({ ok: false, stdout, stderr: err.message }));
    child.on('close', (code) => resolve({ ok: code === 0, stdout, stderr: stderr.trim() }));
    child.stdin.on('error', () => undefined); // nft gone before reading: its exit code tells
    child.stdin.end(input ?? '');
  });
}

/** nft's element text for a CIDR of the policy: family and "net/len" (mapped IPv4 as IPv4). */
function cidrElement(text: string): { family: 4 | 6; element: string } {
  const c = parseCidr(text);
  return { family: c.family, element: `${formatAddress(c.bytes)}/${c.prefix}` };
}

export class KernelBans {
  private flood: FloodSpec;
  private pendingConfig: string | undefined;
  private pendingBans: string[] = [];
  /** The elements in pendingBans: a banned address that keeps reaching ward is queued once. */
  private readonly queued = new Set<string>();
  private running: Promise<void> | undefined;
  private closed = false;
  private bans = 0;
  private failures = 0;
  private overflow = 0;
  private reinstalls = 0;
  /** Ends the wait after a failed run early (close). */
  private endBackoff: (() => void) | undefined;

  private constructor(
    private readonly nft: string,
    readonly table: string,
    private readonly port: number,
    flood: FloodSpec,
    private readonly log: Logger,
  ) {
    this.flood = flood;
  }

  /** Creates (or replaces) the table for `port` with the policy's lists. Throws with nft's words
   * when nft is missing or not permitted: the operator asked for kernel drops, so ward does not
   * start without them. */
  static async install(opts: { port: number; flood: FloodSpec; log: Logger; nft?: string }): Promise<KernelBans> {
    const kb = new KernelBans(opts.nft ?? 'nft', `ward_${opts.port}`, opts.port, opts.flood, opts.log);
    const r = await runNft(kb.nft, ['-f', '-'], kb.tableScript() + kb.listsScript());
    if (!r.ok) throw new Error(`--kernel-bans: nft could not install table inet ${kb.table} (needs the nft command and CAP_NET_ADMIN): ${r.stderr.split('\n')[0]}`);
    return kb;
  }

  /** A new policy version's lists; bans in force stay (all go in shadow mode: `enforce: false`). */
  configure(flood: FloodSpec): void {
    // IPv6 clients are keyed by a new prefix from now on, with no ban (as in the flood guard); old
    // prefixes in ban6 would also make nft refuse every new one that overlaps them.
    const rekeyed = flood.ipv6_prefix !== this.flood.ipv6_prefix;
    this.flood = flood;
    this.pendingConfig = this.listsScript() + (rekeyed ? `flush set inet ${this.table} ban6\n` : '');
    this.kick();
  }

  /**
   * Bans an address the flood guard banned (its bytes as the guard saw them) for what is left of its
   * ban. An IPv6 address is banned by its flood.ipv6_prefix, as the guard counts it. Called again for
   * an address the kernel should have refused (a ban lost with a removed table, or still queued):
   * it is queued once.
   */
  ban(addr: Uint8Array, forMs: number): void {
    if (this.closed || !this.flood.enforce || forMs <= 0) return;
    const v4 = addr.length === 4 || (addr.length === 16 && isMapped(addr, 0));
    let element: string;
    if (v4) element = formatAddress(addr);
    else if (addr.length === 16) {
      const bits = this.flood.ipv6_prefix;
      const net = addr.slice();
      maskHostBits(net, bits);
      element = `${formatAddress(net)}/${bits}`;
    } else return;
    if (this.queued.has(element)) return;
    if (this.pendingBans.length >= MAX_PENDING_BANS) {
      this.overflow++;
      return;
    }
    this.queued.add(element);
    this.pendingBans.push(`add element inet ${this.table} ${v4 ? 'ban4' : 'ban6'} { ${element} timeout ${Math.ceil(forMs / 1000)}s }`);
    this.kick();
  }

  stats(): KernelBansStats {
    return { bans: this.bans, failures: this.failures, overflow: this.overflow, reinstalls: this.reinstalls };
  }

  /** The kernel's drop counters (one nft run: call it at scrape time, not per request). */
  async drops(): Promise<KernelDrops | undefined> {
    const r = await runNft(this.nft, ['-j', 'list', 'counters', 'table', 'inet', this.table]);
    if (!r.ok) {
      // Most likely the table was removed from outside: rewriting the lists finds that and puts it back.
      if (!this.closed) this.configure(this.flood);
      return undefined;
    }
    const out = { denied: 0, banned: 0 };
    try {
      for (const item of (JSON.parse(r.stdout) as { nftables: { counter?: { name: string; packets: number } }[] }).nftables) {
        const c = item.counter;
        if (c && (c.name === 'denied' || c.name === 'banned')) out[c.name] = c.packets;
      }
    } catch {
      return undefined;
    }
    return out;
  }

  /** Waits for queued work, then deletes the table: a stopped ward drops nothing. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.endBackoff?.();
    await this.settled();
    const r = await runNft(this.nft, ['delete', 'table', 'inet', this.table]);
    if (!r.ok) this.log.warn({ table: this.table, err: r.stderr }, 'could not delete the kernel ban table');
  }

  /** Waits until nothing is queued or running (tests, and close). */
  async settled(): Promise<void> {
    while (this.running) await this.running;
  }

  private kick(): void {
    if (this.running || this.closed) return;
    let lines: string[] = [];
    let script: string;
    if (this.pendingConfig !== undefined) {
      // A list change goes alone: a ban that nft refuses must not hold back a policy edit.
      script = this.pendingConfig;
      this.pendingConfig = undefined;
    } else if (this.pendingBans.length > 0) {
      lines = this.pendingBans;
      script = lines.join('\n') + '\n';
      this.pendingBans = [];
      this.queued.clear();
    } else return;
    this.running = this.apply(script, lines).then(() => {
      this.running = undefined;
      this.kick();
    });
  }

  /** One nft run; if the table has gone (a firewall reload or `nft flush ruleset` elsewhere), puts it
   * back with the current lists and queues the batch's bans again. */
  private async apply(script: string, bans: string[]): Promise<void> {
    const r = await runNft(this.nft, ['-f', '-'], script);
    if (r.ok) {
      this.bans += bans.length;
      return;
    }
    if (!this.closed && !(await runNft(this.nft, ['list', 'table', 'inet', this.table])).ok) {
      const again = await runNft(this.nft, ['-f', '-'], this.tableScript() + this.listsScript());
      if (again.ok) {
        this.reinstalls++;
        this.log.warn({ table: this.table, bans: bans.length }, 'the kernel ban table had been removed from outside ward: reinstalled with the current lists (the bans it held come back as their addresses knock again)');
        this.pendingBans = [...bans, ...this.pendingBans];
        return;
      }
    }
    this.failures++;
    this.log.warn({ table: this.table, err: r.stderr.split('\n')[0], bans: bans.length }, bans.length ? 'nft refused a batch of bans: those addresses are dropped in userland instead' : 'nft refused the deny/allow lists: the kernel keeps the previous ones');
    if (this.closed) return;
    await new Promise<void>((resolve) => {
      const t = setTimeout(resolve, RETRY_AFTER_FAILURE_MS);
      this.endBackoff = () => (clearTimeout(t), resolve());
    });
    this.endBackoff = undefined;
  }

  /** The table, its sets and rules, emptied first if an earlier run left it. */
  private tableScript(): string {
    const t = this.table;
    const p = this.port;
    return `table inet ${t} {}
delete table inet ${t}
table inet ${t} {
  counter denied {}
  counter banned {}
  set allow4 { type ipv4_addr; flags interval; auto-merge; }
  set allow6 { type ipv6_addr; flags interval; auto-merge; }
  set deny4 { type ipv4_addr; flags interval; auto-merge; }
  set deny6 { type ipv6_addr; flags interval; auto-merge; }
  set ban4 { type ipv4_addr; flags timeout; }
  set ban6 { type ipv6_addr; flags interval, timeout; }
  chain input {
    type filter hook input priority filter - 10; policy accept;
    tcp dport ${p} ip saddr @allow4 accept
    tcp dport ${p} ip6 saddr @allow6 accept
    tcp dport ${p} ip saddr @deny4 counter name "denied" reject with tcp reset
    tcp dport ${p} ip6 saddr @deny6 counter name "denied" reject with tcp reset
    tcp dport ${p} ip saddr @ban4 counter name "banned" reject with tcp reset
    tcp dport ${p} ip6 saddr @ban6 counter name "banned" reject with tcp reset
  }
}
`;
  }

  /** Replaces the allow and deny sets with the policy's (deny empty in shadow mode, and bans lifted). */
  private listsScript(): string {
    const t = this.table;
    const f = this.flood;
    const sets: Record<string, string[]> = { allow4: [], allow6: [], deny4: [], deny6: [] };
    for (const c of f.allow) {
      const e = cidrElement(c);
      sets[`allow${e.family}`]!.push(e.element);
    }
    if (f.enforce) {
      for (const c of f.deny) {
        const e = cidrElement(c);
        sets[`deny${e.family}`]!.push(e.element);
      }
    }
    let s = '';
    for (const [name, elements] of Object.entries(sets)) {
      s += `flush set inet ${t} ${name}\n`;
      if (elements.length) s += `add element inet ${t} ${name} { ${elements.join(', ')} }\n`;
    }
    if (!f.enforce) s += `flush set inet ${t} ban4\nflush set inet ${t} ban6\n`;
    return s;
  }
}
