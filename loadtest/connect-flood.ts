// Connections from banned addresses, as fast as a few concurrent loops can open them: each opens a
// connection from one of the source addresses, sends a request and waits for the server to close it.
// Measures what one dropped connection costs the server (its CPU over the count of drops).

import { connect } from 'node:net';

export interface ConnectFloodOptions {
  readonly host: string;
  readonly port: number;
  /** Source addresses, used in turn... */
  readonly addresses?: readonly string[];
  /** ...or the source address of the i-th connection. */
  readonly addressAt?: (i: number) => string;
  readonly durationS: number;
  /** Stop after this many connections even if time is left. */
  readonly count?: number;
  /** Extra request headers (e.g. authorization). */
  readonly headers?: Readonly<Record<string, string>>;
  /** Connections in progress at once; default 32. */
  readonly concurrency?: number;
  readonly path?: string;
}

export interface ConnectFloodResult {
  readonly connections: number;
  /** Closed (or reset) by the server with no response byte. */
  readonly dropped: number;
  /** The server answered instead: the address was not banned. */
  readonly answered: number;
  /** Status lines of those answers, counted (e.g. {"HTTP/1.1 401 Unauthorized": 3}). */
  readonly answers: Readonly<Record<string, number>>;
  /** Refused at the handshake (a reset answered the SYN): how `ward serve --kernel-bans` drops, or
   * nothing listening. The caller knows which. */
  readonly refused: number;
  /** Could not connect at all otherwise (no such address, timeout). */
  readonly failed: number;
  readonly perSecond: number;
}

export async function runConnectFlood(o: ConnectFloodOptions): Promise<ConnectFloodResult> {
  const extra = Object.entries(o.headers ?? {}).map(([k, v]) => `${k}: ${v}\r\n`).join('');
  const request = Buffer.from(`GET ${o.path ?? '/v1/flood'} HTTP/1.1\r\nhost: ${o.host}\r\n${extra}connection: close\r\n\r\n`);
  const addressAt = o.addressAt ?? ((i: number) => o.addresses![i % o.addresses!.length]);
  const count = o.count ?? Infinity;
  const end = performance.now() + o.durationS * 1000;
  let connections = 0;
  let dropped = 0;
  let answered = 0;
  let failed = 0;
  let refused = 0;
  let turn = 0;
  const answers: Record<string, number> = {};
  const once = () =>
    new Promise<void>((resolve) => {
      const localAddress = addressAt(turn++);
      let gotBytes = false;
      let connected = false;
      let wasRefused = false;
      const s = connect({ host: o.host, port: o.port, localAddress, noDelay: true }, () => {
        connected = true;
        s.write(request);
      });
      s.on('data', (d: Buffer) => {
        gotBytes = true;
        const status = d.toString('latin1', 0, Math.min(d.length, 64)).split('\r\n')[0];
        answers[status] = (answers[status] ?? 0) + 1;
        s.destroy();
      });
      // A reset right after the handshake (haproxy's connection reject) is a drop too.
      s.on('error', (e: NodeJS.ErrnoException) => {
        if (e.code === 'ECONNRESET' || e.code === 'EPIPE') connected = true;
        else if (e.code === 'ECONNREFUSED') wasRefused = true;
      });
      s.on('close', () => {
        connections++;
        if (gotBytes) answered++;
        else if (connected) dropped++;
        else if (wasRefused) refused++;
        else failed++;
        resolve();
      });
      // A server that neither answers nor closes is not dropping: give up on it.
      s.setTimeout(2000, () => s.destroy());
    });
  const loop = async () => {
    while (performance.now() < end && turn < count) await once();
  };
  const t0 = performance.now();
  await Promise.all(Array.from({ length: o.concurrency ?? 32 }, loop));
  const secs = (performance.now() - t0) / 1000;
  return { connections, dropped, answered, answers, refused, failed, perSecond: connections / secs };
}
