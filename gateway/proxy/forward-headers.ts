// The header block ward sends upstream: the client's headers minus hop-by-hop ones (RFC 9110
// §7.6.1, plus any the client's Connection header lists), minus every identity header a client
// could forge (X-Ward-*, X-Forwarded-*, Forwarded, X-Real-IP, X-Request-Id), plus ward's own.

const DROP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'content-length',
  'forwarded',
  'x-real-ip',
  'x-request-id',
  // WebSocket handshake headers are per hop; the upstream client makes its own.
  'sec-websocket-key',
  'sec-websocket-version',
  'sec-websocket-extensions',
  'sec-websocket-accept',
]);

function dropped(name: string, listed: Set<string> | undefined): boolean {
  return DROP.has(name) || name.startsWith('x-ward-') || name.startsWith('x-forwarded-') || (listed !== undefined && listed.has(name));
}

/** Names the client's Connection header marks as hop-by-hop. */
function connectionListed(headers: readonly string[]): Set<string> | undefined {
  for (let i = 0; i < headers.length; i += 2) {
    if (headers[i] === 'connection') {
      const v = headers[i + 1]!.toLowerCase();
      if (v === 'keep-alive' || v === 'close') return undefined;
      return new Set(v.split(',').map((s) => s.trim()).filter(Boolean));
    }
  }
  return undefined;
}

/** Serialised "name: value\r\n" lines for an HTTP/1.1 upstream request. */
export function forwardHeaderBlock(headers: readonly string[], remote: string, requestId: string, tenant: string | undefined): string {
  const listed = connectionListed(headers);
  let out = '';
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i]!;
    if (dropped(name, listed)) continue;
    out += name + ': ' + headers[i + 1] + '\r\n';
  }
  out += 'x-forwarded-for: ' + remote + '\r\nx-request-id: ' + requestId + '\r\n';
  if (tenant !== undefined) out += 'x-ward-tenant: ' + tenant + '\r\n';
  return out;
}

/** The same as a header object, for clients that take one (the WebSocket upstream). */
export function forwardHeaderObject(headers: readonly string[], remote: string, requestId: string, tenant: string | undefined): Record<string, string> {
  const listed = connectionListed(headers);
  const out: Record<string, string> = {};
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i]!;
    if (dropped(name, listed) || name === 'host' || name === 'sec-websocket-protocol') continue;
    out[name] = headers[i + 1]!;
  }
  out['x-forwarded-for'] = remote;
  out['x-request-id'] = requestId;
  if (tenant !== undefined) out['x-ward-tenant'] = tenant;
  return out;
}
