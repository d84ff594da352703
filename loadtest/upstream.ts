// The upstream every scenario and reference proxies to: uWS answering a small fixed body as fast as
// it can, so what is measured is the gateway in front of it. WebSocket: echoes messages, and answers
// SIP requests (INVITE, BYE...) with 200 OK so the calls scenario has a dialog partner.
// Run alone: `node dist/loadtest/upstream.js [--port N]` prints {"msg":"listening","port":N}.

import uws from 'uWebSockets.js';
import { fileURLToPath } from 'node:url';
import { spawnListening, type ListeningChild } from './processes.js';

export const UPSTREAM_BODY = '{"ok":true}';

export interface Upstream {
  readonly port: number;
  close(): void;
}

export function startUpstream(port = 0, host = '127.0.0.1'): Promise<Upstream> {
  const app = uws.App();
  app.any('/*', (res, req) => {
    const method = req.getMethod();
    if (method === 'get' || method === 'head') {
      res.cork(() => res.writeHeader('content-type', 'application/json').end(UPSTREAM_BODY));
      return;
    }
    // Drain the body before answering, as a real service would.
    let aborted = false;
    res.onAborted(() => (aborted = true));
    res.onData((_chunk, last) => {
      if (last && !aborted) res.cork(() => res.writeHeader('content-type', 'application/json').end(UPSTREAM_BODY));
    });
  });
  app.ws('/*', {
    maxPayloadLength: 1 << 20,
    idleTimeout: 120,
    // Accept the first subprotocol offered (e.g. "sip"), as a real SIP-over-WebSocket server would.
    upgrade: (res, req, context) => {
      const key = req.getHeader('sec-websocket-key');
      const protocol = req.getHeader('sec-websocket-protocol').split(',')[0].trim();
      const extensions = req.getHeader('sec-websocket-extensions');
      res.upgrade({}, key, protocol, extensions, context);
    },
    message: (ws, message, isBinary) => {
      if (isBinary) {
        ws.send(message, true);
        return;
      }
      const text = Buffer.from(message).toString('utf8');
      const reply = sipReply(text);
      ws.send(reply ?? text, false);
    },
  });
  return new Promise((resolve, reject) => {
    app.listen(host, port, (sock) => {
      if (!sock) return reject(new Error(`upstream cannot listen on ${host}:${port}`));
      resolve({ port: uws.us_socket_local_port(sock), close: () => uws.us_listen_socket_close(sock) });
    });
  });
}

export type UpstreamChild = ListeningChild;

/** The upstream as its own process, pinned to `cpus`, so its CPU is not counted as the caller's. */
export function spawnUpstream(cpus?: string): Promise<UpstreamChild> {
  return spawnListening('upstream', fileURLToPath(import.meta.url), ['--port', '0'], cpus);
}

/** 200 OK for a SIP request (copying Via, From, To, Call-ID, CSeq), undefined for anything else. */
export function sipReply(text: string): string | undefined {
  if (!/^[A-Z]+ sip:/.test(text)) return undefined;
  // The To of a response to a dialog-creating request carries the callee's tag (RFC 3261 §8.2.6.2).
  const keep = text
    .split('\r\n')
    .filter((l) => /^(via|from|to|call-id|cseq):/i.test(l))
    .map((l) => (/^to:/i.test(l) && !/;\s*tag=/i.test(l) ? `${l};tag=up${Math.floor(Math.random() * 1e9)}` : l));
  return ['SIP/2.0 200 OK', ...keep, 'Content-Length: 0', '', ''].join('\r\n');
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const i = process.argv.indexOf('--port');
  const port = i > 0 ? Number(process.argv[i + 1]) : 0;
  startUpstream(port).then(
    (u) => console.log(JSON.stringify({ msg: 'listening', port: u.port })),
    (e: Error) => {
      console.error(e.message);
      process.exit(1);
    },
  );
}
