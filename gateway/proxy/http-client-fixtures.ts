// Real loopback servers and a recording sink, shared by the upstream client's tests.
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createNetServer, type Socket } from 'node:net';
import type { OutgoingRequest, ResponseSink, TargetPool, UpstreamErrorKind } from './http-client.js';

export interface Rec {
  status: number;
  headers: string[];
  chunks: Buffer[];
  error: { kind: UpstreamErrorKind; bodySent: boolean; responseStarted: boolean } | null;
  ended: boolean;
  late: string[];
  done: Promise<void>;
  body(): string;
  header(name: string): string | undefined;
}

/** A sink that records everything, and any callback after the terminal one. */
export function recorder(onData: (c: Buffer) => boolean = () => true): { sink: ResponseSink; rec: Rec } {
  let settle!: () => void;
  const rec: Rec = {
    status: 0,
    headers: [],
    chunks: [],
    error: null,
    ended: false,
    late: [],
    done: new Promise((r) => (settle = r)),
    body: () => Buffer.concat(rec.chunks).toString('latin1'),
    header: (name) => {
      const i = rec.headers.indexOf(name);
      return i >= 0 && i % 2 === 0 ? rec.headers[i + 1] : undefined;
    },
  };
  const over = () => rec.ended || rec.error !== null;
  const sink: ResponseSink = {
    onHead(status, headers) {
      if (over() || rec.status !== 0) rec.late.push('head');
      rec.status = status;
      rec.headers = [...headers];
    },
    onData(chunk) {
      if (over()) rec.late.push('data');
      rec.chunks.push(Buffer.from(chunk)); // the chunk is the connection's read buffer
      return onData(chunk);
    },
    onEnd() {
      if (over()) rec.late.push('end');
      rec.ended = true;
      settle();
    },
    onError(kind, bodySent, responseStarted) {
      if (over()) rec.late.push('error');
      rec.error = { kind, bodySent, responseStarted };
      settle();
    },
  };
  return { sink, rec };
}

export function get(path: string, extra: Partial<OutgoingRequest> = {}): OutgoingRequest {
  return { method: 'GET', path, headers: 'X-Forwarded-For: 192.0.2.1\r\n', bodyLength: 0, timeoutMs: 5000, ...extra };
}

export async function send(pool: TargetPool, req: OutgoingRequest, body?: Uint8Array[]): Promise<Rec> {
  const { sink, rec } = recorder();
  const call = pool.request(req, sink);
  if (body) {
    for (const b of body) call.write(b);
    call.end();
  }
  await rec.done;
  return rec;
}

export interface Srv {
  port: number;
  origin: string;
  /** Server-side connection id of each request, in order. */
  conns: number[];
  closedConns: Set<number>;
  close(): Promise<void>;
}

export async function httpServer(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<Srv> {
  const ids = new WeakMap<Socket, number>();
  const srv: Srv = { port: 0, origin: '', conns: [], closedConns: new Set(), close: async () => {} };
  let n = 0;
  const server = createHttpServer((req, res) => {
    srv.conns.push(ids.get(req.socket)!);
    handler(req, res);
  });
  server.on('connection', (s: Socket) => {
    const id = ++n;
    ids.set(s, id);
    s.on('close', () => srv.closedConns.add(id));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  srv.port = (server.address() as { port: number }).port;
  srv.origin = `http://127.0.0.1:${srv.port}`;
  srv.close = () => {
    server.closeAllConnections();
    return new Promise((r) => server.close(() => r()));
  };
  return srv;
}

/** A raw TCP server: `onRequest` is called with each request head received on a connection. */
export async function rawServer(onRequest: (s: Socket, head: string) => void): Promise<Srv> {
  const srv: Srv = { port: 0, origin: '', conns: [], closedConns: new Set(), close: async () => {} };
  const sockets = new Set<Socket>();
  let n = 0;
  const server = createNetServer((s) => {
    const id = ++n;
    sockets.add(s);
    s.on('close', () => (srv.closedConns.add(id), sockets.delete(s)));
    s.on('error', () => {});
    let acc = '';
    s.on('data', (d) => {
      acc += d.toString('latin1');
      let i;
      while ((i = acc.indexOf('\r\n\r\n')) >= 0) {
        const head = acc.slice(0, i);
        acc = acc.slice(i + 4);
        srv.conns.push(id);
        onRequest(s, head);
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  srv.port = (server.address() as { port: number }).port;
  srv.origin = `http://127.0.0.1:${srv.port}`;
  srv.close = () => {
    for (const s of sockets) s.destroy();
    return new Promise((r) => server.close(() => r()));
  };
  return srv;
}
