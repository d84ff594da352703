// The example policy's upstream, started by `npm start` so the README's walk-through needs no
// other process: an HTTP echo (what ward forwarded, as JSON) and a WebSocket echo on one port.
// `?hold_ms=N` holds the answer, to show a concurrency sandbox filling up.

import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { WebSocketServer } from 'ws';

export function startDemoUpstream(port: number, host = '127.0.0.1'): Promise<{ server: Server; port: number }> {
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const url = new URL(req.url ?? '/', 'http://x');
      const hold = Math.min(Number(url.searchParams.get('hold_ms') ?? 0) || 0, 60_000);
      const body = JSON.stringify({
        upstream: `demo:${(server.address() as AddressInfo).port}`,
        method: req.method,
        path: url.pathname,
        tenant: req.headers['x-ward-tenant'] ?? null,
        request_id: req.headers['x-request-id'] ?? null,
        forwarded_for: req.headers['x-forwarded-for'] ?? null,
        body_bytes: Buffer.concat(chunks).length,
      });
      const send = () => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(body + '\n');
      };
      if (hold > 0) setTimeout(send, hold);
      else send();
    });
  });
  const wss = new WebSocketServer({ server, handleProtocols: (p) => (p.has('sip') ? 'sip' : [...p][0] ?? false) });
  wss.on('error', () => {}); // the server's own 'error' (e.g. EADDRINUSE) is reported below
  wss.on('connection', (ws) => ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary })));
  return new Promise((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) =>
      reject(new Error(err.code === 'EADDRINUSE' ? `the demo upstream's port ${host}:${port} is already in use (is another npm start running?)` : err.message)),
    );
    server.listen(port, host, () => resolve({ server, port: (server.address() as AddressInfo).port }));
  });
}
