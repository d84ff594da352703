// The client address as text (X-Forwarded-For, logs), formatted from the bytes uWS already gave
// the flood guard: asking uWS for the text too costs a second getpeername() syscall per request.
// IPv4-mapped IPv6 addresses are written as plain IPv4; IPv6 per RFC 5952 (longest zero run "::").

const v4Cache = new Map<number, string>();
const V4_CACHE_MAX = 4096;

export function formatAddress(b: Uint8Array): string {
  if (b.length === 4) return v4(b, 0);
  if (b.length !== 16) return '';
  let mapped = b[10] === 0xff && b[11] === 0xff;
  for (let i = 0; i < 10 && mapped; i++) if (b[i] !== 0) mapped = false;
  if (mapped) return v4(b, 12);
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((b[i]! << 8) | b[i + 1]!);
  // Longest run of two or more zero groups becomes "::" (the first one on a tie).
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (g: number[]) => g.map((x) => x.toString(16)).join(':');
  if (best < 0) return hex(groups);
  return hex(groups.slice(0, best)) + '::' + hex(groups.slice(best + bestLen));
}

function v4(b: Uint8Array, o: number): string {
  const key = ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0;
  let s = v4Cache.get(key);
  if (s === undefined) {
    if (v4Cache.size >= V4_CACHE_MAX) v4Cache.clear();
    s = `${b[o]}.${b[o + 1]}.${b[o + 2]}.${b[o + 3]}`;
    v4Cache.set(key, s);
  }
  return s;
}
