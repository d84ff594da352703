// The floor of ward's runtime: the smallest proxy the same two libraries allow — uWS on the client
// side, a keep-alive `node:net` connection per in-flight request on the upstream side — with no
// auth, no limits, no header hygiene and no error handling beyond what keeps it running. It only
// understands a GET answered with a Content-Length body (the bench upstream's answer), so it is a
// measuring stick, never a proxy: whatever it costs per request, ward cannot cost less on Node.js.
// Run alone: `node dist/loadtest/floor-proxy.js --upstream PORT` prints {"msg":"listening","port":N}.

import uws from 'uWebSockets.js';
import { connect, type Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import { spawnListening, type ListeningChild } from './processes.js';

const CRLF2 = Buffer.from('\r\n\r\n');

interface Upstream {
  readonly socket: Socket;
  res: uws.HttpResponse | undefined;
  aborted: boolean;
}

export function startFloorProxy(upstreamPort: number): Promise<number> {
  const idle: Upstream[] = [];
  const open = (): Upstream => {
    const u: Upstream = { socket: connect(upstreamPort, '127.0.0.1'), res: undefined, aborted: false };
    u.socket.setNoDelay(true);
    u.socket.on('data', (b: Buffer) => {
      // The whole answer arrives in one read on loopback: status, headers, body.
      const res = u.res;
      u.res = undefined;
      idle.push(u);
      if (res === undefined || u.aborted) return;
      const head = b.indexOf(CRLF2);
      res.cork(() => res.writeStatus(b.toString('latin1', 9, 12)).writeHeader('content-type', 'application/json').end(b.subarray(head + 4)));
    });
    u.socket.on('error', () => undefined);
    // The upstream closes connections idle for a while (uWS: 10 s): forget them, fail their request.
    u.socket.on('close', () => {
      const i = idle.indexOf(u);
      if (i >= 0) idle.splice(i, 1);
      const res = u.res;
      u.res = undefined;
      if (res !== undefined && !u.aborted) res.close();
    });
    return u;
  };
  const app = uws.App();
  app.any('/*', (res, req) => {
    const u = idle.pop() ?? open();
    u.res = res;
    u.aborted = false;
    res.onAborted(() => (u.aborted = true));
    u.socket.write(`GET ${req.getUrl()} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: ${req.getHeader('authorization')}\r\n\r\n`);
  });
  return new Promise((resolve, reject) => {
    app.listen('127.0.0.1', 0, (sock) => (sock ? resolve(uws.us_socket_local_port(sock)) : reject(new Error('floor proxy cannot listen'))));
  });
}

/** The floor proxy as its own process, pinned to `cpus`. */
export function spawnFloorProxy(upstreamPort: number, cpus?: string): Promise<ListeningChild> {
  return spawnListening('floor', fileURLToPath(import.meta.url), ['--upstream', String(upstreamPort)], cpus);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const i = process.argv.indexOf('--upstream');
  startFloorProxy(Number(process.argv[i + 1])).then(
    (port) => console.log(JSON.stringify({ msg: 'listening', port })),
    (e: Error) => {
      console.error(e.message);
      process.exit(1);
    },
  );
}
