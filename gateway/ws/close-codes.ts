// Close codes across the proxy (RFC 6455 §7.4). A code either side may send passes through with
// its reason. The two that never travel in a close frame are mapped: 1005 (no code) stays "no
// code"; 1006 (the connection dropped) from the client drops the upstream connection, and from
// the upstream becomes 1014 (bad gateway) for the client, who did nothing wrong.

/** Codes an endpoint may put in a close frame (the set `ws` accepts). */
export function isSendableCode(code: number): boolean {
  return (code >= 1000 && code <= 1014 && code !== 1004 && code !== 1005 && code !== 1006) || (code >= 3000 && code <= 4999);
}

/**
 * How to close the upstream after the client closed with (code, reason): undefined = drop the
 * connection (terminate), [] = a close frame without a code, [code, reason] = that close frame.
 */
export function clientCloseToUpstream(code: number, reason: ArrayBuffer): [] | [number, Buffer] | undefined {
  if (code === 1005 || code === 0) return [];
  if (!isSendableCode(code)) return undefined;
  // The reason came in a close frame (≤ 123 bytes); copy it out of uWS's short-lived buffer.
  return [code, Buffer.copyBytesFrom(new Uint8Array(reason, 0, Math.min(reason.byteLength, 123)))];
}

/** The close frame the client gets when the upstream closed with (code, reason). */
export function upstreamCloseToClient(code: number, reason: Buffer): [number, string | Buffer] {
  if (code === 1005) return [1005, ''];
  if (!isSendableCode(code)) return [1014, code === 1006 ? 'upstream_reset' : 'upstream_closed'];
  return [code, reason];
}
