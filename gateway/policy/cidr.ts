// CIDR checking for flood.deny / flood.allow. A bare address is taken as a single host
// (/32 or /128); a prefix with host bits set (10.0.0.1/8) is refused with the network the
// operator most likely meant, because silently widening or narrowing a deny rule is worse.

import { isIPv4, isIPv6 } from 'node:net';

function v4ToBig(ip: string): bigint {
  return ip.split('.').reduce((acc, part) => (acc << 8n) | BigInt(Number(part)), 0n);
}

function v6ToBig(ip: string): bigint {
  let text = ip;
  // An embedded IPv4 tail (::ffff:192.0.2.1) is two more 16-bit groups.
  const dotted = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (dotted) {
    const v = v4ToBig(dotted[1]!);
    text = text.slice(0, -dotted[1]!.length) + `${(v >> 16n).toString(16)}:${(v & 0xffffn).toString(16)}`;
  }
  const [head, tail] = text.split('::') as [string, string | undefined];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array(8 - h.length - t.length).fill('0'), ...t];
  return groups.reduce((acc, g) => (acc << 16n) | BigInt(parseInt(g, 16)), 0n);
}

function bigToV4(n: bigint): string {
  return [24n, 16n, 8n, 0n].map((s) => String((n >> s) & 0xffn)).join('.');
}

function bigToV6(n: bigint): string {
  const groups = Array.from({ length: 8 }, (_, i) => Number((n >> BigInt(112 - 16 * i)) & 0xffffn).toString(16));
  // RFC 5952: compress the longest run (at least two) of zero groups.
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    let j = i;
    while (j < 8 && groups[j] === '0') j++;
    if (j - i > bestLen) [best, bestLen] = [i, j - i];
    i = j === i ? i + 1 : j;
  }
  if (best < 0) return groups.join(':');
  return `${groups.slice(0, best).join(':')}::${groups.slice(best + bestLen).join(':')}`;
}

/** The CIDR as it will be enforced, or why it is not one. */
export function checkCidr(text: string): { value: string } | { error: string } {
  const slash = text.indexOf('/');
  const addr = slash < 0 ? text : text.slice(0, slash);
  const v4 = isIPv4(addr);
  if (!v4 && (!isIPv6(addr) || addr.includes('%'))) {
    return { error: `${JSON.stringify(text)} is not a CIDR (expected e.g. "203.0.113.0/24" or "2001:db8::/32")` };
  }
  const width = v4 ? 32 : 128;
  if (slash < 0) return { value: `${addr}/${width}` };
  const lenText = text.slice(slash + 1);
  const len = /^\d{1,3}$/.test(lenText) ? Number(lenText) : NaN;
  if (!(len >= 0 && len <= width)) {
    return { error: `${JSON.stringify(text)} has a prefix length outside 0..${width}` };
  }
  const n = v4 ? v4ToBig(addr) : v6ToBig(addr);
  const hostMask = (1n << BigInt(width - len)) - 1n;
  if ((n & hostMask) !== 0n) {
    const net = n & ~hostMask;
    const fixed = `${v4 ? bigToV4(net) : bigToV6(net)}/${len}`;
    return { error: `${JSON.stringify(text)} has host bits set (did you mean "${fixed}"?)` };
  }
  return { value: text };
}
