// One keep-alive HTTP/1.1 client connection with at most one request in flight, and a strict little
// response parser (Content-Length, chunked, no-body statuses). The load generator needs per-request
// outcomes at tens of thousands of requests per second on one core, and to tell "answered" from
// "closed with no answer" (a dropped, banned address), which a general client hides.

import { connect, type Socket } from 'node:net';

export interface ConnectionEvents {
  /** A whole response arrived; the connection is idle again unless the server asked to close. */
  onResponse(status: number): void;
  /** The connection ended. `inFlight`: a request was outstanding; `answered`: some response byte came for it. */
  onClose(inFlight: boolean, answered: boolean, error: Error | undefined): void;
}

export interface ConnectionTarget {
  readonly host: string;
  readonly port: number;
  readonly localAddress?: string;
}

const CRLF2 = Buffer.from('\r\n\r\n');

const enum State {
  Head,
  Body,
  ChunkSize,
  ChunkData,
  ChunkCrlf,
  Trailers,
}

export class RawConnection {
  readonly socket: Socket;
  connected = false;
  inFlight = false;
  /** The load generator's bookkeeping for the request in flight: when it was due, when it was written. */
  due = 0;
  sentAt = 0;
  closed = false;
  private answered = false;
  private buf: Buffer | undefined;
  private state = State.Head;
  private status = 0;
  private remaining = 0;
  private closeAfter = false;
  private error: Error | undefined;

  constructor(target: ConnectionTarget, private readonly events: ConnectionEvents) {
    this.socket = connect({ host: target.host, port: target.port, localAddress: target.localAddress, noDelay: true });
    this.socket.on('connect', () => (this.connected = true));
    this.socket.on('data', (d: Buffer) => this.onData(d));
    this.socket.on('error', (e) => (this.error = e));
    this.socket.on('close', () => {
      this.closed = true;
      const { inFlight, answered } = this;
      this.inFlight = false;
      this.events.onClose(inFlight, answered, this.error);
    });
  }

  /** true when a new request may be sent now (connecting counts: the write is queued until then). */
  get usable(): boolean {
    return !this.closed && !this.inFlight && !this.closeAfter;
  }

  /** Writes one whole request; the caller keeps at most one in flight. */
  send(request: Buffer): void {
    this.inFlight = true;
    this.answered = false;
    this.socket.write(request);
  }

  close(): void {
    this.socket.destroy();
  }

  private onData(d: Buffer): void {
    if (this.inFlight) this.answered = true;
    let buf = this.buf ? Buffer.concat([this.buf, d]) : d;
    this.buf = undefined;
    let pos = 0;
    while (pos < buf.length) {
      if (this.state === State.Head) {
        const end = buf.indexOf(CRLF2, pos);
        if (end < 0) break;
        if (!this.parseHead(buf.toString('latin1', pos, end))) return this.fail('malformed response head');
        pos = end + 4;
        if (this.state === State.Head) this.complete();
        continue;
      }
      if (this.state === State.Body || this.state === State.ChunkData) {
        const take = Math.min(this.remaining, buf.length - pos);
        pos += take;
        this.remaining -= take;
        if (this.remaining > 0) break;
        if (this.state === State.Body) this.complete();
        else this.state = State.ChunkCrlf;
        continue;
      }
      const eol = buf.indexOf('\r\n', pos, 'latin1');
      if (eol < 0) break;
      const line = buf.toString('latin1', pos, eol);
      pos = eol + 2;
      if (this.state === State.ChunkSize) {
        const size = parseInt(line, 16);
        if (!/^[0-9a-fA-F]+/.test(line) || !Number.isFinite(size)) return this.fail('malformed chunk size');
        if (size === 0) this.state = State.Trailers;
        else {
          this.remaining = size;
          this.state = State.ChunkData;
        }
      } else if (this.state === State.ChunkCrlf) {
        if (line !== '') return this.fail('missing CRLF after chunk');
        this.state = State.ChunkSize;
      } else if (line === '') {
        this.complete(); // end of trailers
      }
    }
    if (pos < buf.length) this.buf = buf.subarray(pos);
  }

  /** Parses the status line and the framing headers; sets the state for the body. */
  private parseHead(head: string): boolean {
    const lines = head.split('\r\n');
    const m = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0]);
    if (!m) return false;
    this.status = Number(m[1]);
    let length = -1;
    let chunked = false;
    this.closeAfter = lines[0].startsWith('HTTP/1.0');
    for (let i = 1; i < lines.length; i++) {
      const l = lines[i];
      const c = l.indexOf(':');
      if (c < 0) return false;
      const name = l.slice(0, c).trim().toLowerCase();
      const value = l.slice(c + 1).trim().toLowerCase();
      if (name === 'content-length') length = Number(value);
      else if (name === 'transfer-encoding') chunked = value.endsWith('chunked');
      else if (name === 'connection') this.closeAfter = value === 'close';
    }
    const noBody = this.status < 200 || this.status === 204 || this.status === 304;
    if (noBody) this.state = State.Head;
    else if (chunked) this.state = State.ChunkSize;
    else if (length > 0) {
      this.state = State.Body;
      this.remaining = length;
    } else if (length === 0) this.state = State.Head;
    else return false; // read-until-close bodies are not something a gateway should send
    return true;
  }

  private complete(): void {
    this.state = State.Head;
    this.inFlight = false;
    this.answered = false;
    const status = this.status;
    if (this.closeAfter) this.socket.end();
    this.events.onResponse(status);
  }

  private fail(why: string): void {
    this.error = new Error(why);
    this.socket.destroy();
  }
}
