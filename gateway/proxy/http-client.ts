// ward's upstream HTTP/1.1 client: one keep-alive pool per target on `node:net`, streaming both
// ways with backpressure. Measured cheaper than undici for the proxy's one-request-at-a-time use.
//
// Keep-alive race: a server may close an idle connection just as ward sends a request on it.
// When a request on a REUSED connection meets a reset or EOF before any response byte and no
// request body byte was written, the pool sends it again, once, on a fresh connection (the server
// cannot have seen more than the head). Otherwise the error is reported to the sink.
//
// Pipelining (opt-in per request, `pipelineKey`): bodiless GET and HEAD requests with the same key
// (ward uses the tenant) started in one turn of the event loop go out on one connection in one
// write, and their answers come back in order on it: one system call, one wake-up of the upstream
// and one read for the lot instead of one each. Nothing is added to a connection that already has
// requests out, so a request never waits behind one from an earlier turn, and never behind another
// tenant's. The rest of a pipeline whose connection fails, times out or is closed by the server
// before their answers began is sent again (RFC 9112 §9.3.2), once, each on a fresh connection.
// A target that breaks pipelines (PIPELINE_BREAKS of them: a server that closes after one answer,
// or one too slow for the requests behind) gets one request per connection for PIPELINE_OFF_MS.

import { connect, type Socket } from 'node:net';
import { ResponseParser, type ResponseHandler } from './response-parser.js';
import { afterBatch, type Batched } from '../event-batch.js';

export type UpstreamErrorKind = 'connect' | 'reset' | 'timeout' | 'protocol';

export interface OutgoingRequest {
  /** Upper-case. */
  method: string;
  /** Path + '?' + query, as received. */
  path: string;
  /** Pre-serialised "Name: value\r\n" lines without hop-by-hop fields, Content-Length or
   * Transfer-Encoding. Host is added from the target unless present. Encoded as UTF-8. */
  headers: string;
  /** Whether `headers` has a Host line, when the caller knows (saves scanning them); else looked up. */
  hasHost?: boolean;
  /** 0 = no body; >0 = exact Content-Length; -1 = unknown length, sent chunked. */
  bodyLength: number;
  /** Time allowed from request start until the response head is received; 0 = none. */
  timeoutMs: number;
  /** Set: a bodiless GET or HEAD may share a connection with the other requests of this key
   * started in the same turn (pipelined, see above). */
  pipelineKey?: string;
}

export interface ResponseSink {
  /** headers: flat [name, value, ...], names lower-case, hop-by-hop fields removed. */
  onHead(status: number, headers: readonly string[]): void;
  /** De-chunked body bytes, valid only during the call: they live in the connection's read buffer,
   * which the next read overwrites, so a sink copies what it keeps. false = stop reading until
   * call.resume(). */
  onData(chunk: Buffer): boolean;
  onEnd(): void;
  /** bodySent: a request body byte reached a connected socket; responseStarted: a response byte arrived. */
  onError(kind: UpstreamErrorKind, bodySent: boolean, responseStarted: boolean): void;
}

export interface UpstreamCall {
  /** Request body. false = socket buffer full, wait for onDrain. The chunk is referenced until
   * flushed, so it must not be a buffer its owner reuses or frees (e.g. a uWS onData chunk). */
  write(chunk: Uint8Array): boolean;
  /** Request body complete (once; implicit for bodyLength 0). */
  end(): void;
  /** cb replaces any earlier one and runs on every drain while the call lives. */
  onDrain(cb: () => void): void;
  /** After onData returned false. */
  resume(): void;
  /** Client went away: destroys the connection; no sink callback follows. */
  abort(): void;
}

export interface TargetPoolOptions {
  /** Idle connections kept (LIFO); default 256. */
  maxIdle?: number;
  /** Default 5000. */
  connectTimeoutMs?: number;
  /** An idle connection older than this is closed, never reused; default 4000 (below the
   * 5 s keep-alive timeout of Node servers, so ward closes first). */
  idleTimeoutMs?: number;
  /** An error thrown while handling an upstream connection's events (a bug: in the parser or the
   * sink) ends that one call with a `protocol` error and comes here, instead of ending the thread
   * and every other request with it. Without it the error is thrown on (fail fast). */
  onFault?: (err: unknown) => void;
  /** The target broke PIPELINE_BREAKS pipelines: it gets no pipelined requests for `offMs`. */
  onPipeliningOff?: (origin: string, offMs: number) => void;
}

const HAS_HOST = /(?:^|\n)host:/i;
const PIPELINE_BREAKS = 3;
const PIPELINE_OFF_MS = 60_000;

/** Every upstream connection of the thread reads into this one buffer (`onread`), instead of Node
 * allocating (malloc) and shrinking (realloc + copy) a 64 KiB buffer per read: about 1 µs less per
 * proxied request. A read's bytes are handled before the next read, so sharing is safe as long as
 * nothing keeps them past the call: the parser copies a partial head, the connection copies what
 * it holds while paused, and sinks copy what they keep (ResponseSink.onData). */
const READ_BUFFER = Buffer.allocUnsafe(64 * 1024);

export class TargetPool implements Batched {
  readonly origin: string;
  private readonly host: string;
  private readonly port: number;
  private readonly hostLine: string;
  private readonly maxIdle: number;
  private readonly connectTimeoutMs: number;
  private readonly idleTimeoutMs: number;
  private readonly onFault: ((err: unknown) => void) | undefined;
  private readonly onPipeliningOff: ((origin: string, offMs: number) => void) | undefined;
  private pipelineBreaks = 0;
  private pipeliningOffUntil = 0;
  private readonly idle: Conn[] = [];
  private sweeper: NodeJS.Timeout | undefined;
  private calls = 0;
  private closed = false;
  /** Pipelinable calls started this turn, sent at its end (runBatched). */
  private batch: Call[] = [];

  constructor(origin: string, opts: TargetPoolOptions = {}) {
    let url: URL;
    try {
      url = new URL(origin);
    } catch {
      throw new Error(`TargetPool: "${origin}" is not a URL; expected e.g. "http://127.0.0.1:9001"`);
    }
    if (url.protocol !== 'http:' || url.username || url.password || url.search || url.hash || url.pathname !== '/') {
      throw new Error(`TargetPool: "${origin}" must be a plain http origin, e.g. "http://127.0.0.1:9001"`);
    }
    this.origin = url.origin;
    this.host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
    this.port = url.port === '' ? 80 : Number(url.port);
    this.hostLine = `Host: ${url.host}\r\n`;
    this.maxIdle = positive(opts.maxIdle, 256, 'maxIdle', true);
    this.connectTimeoutMs = positive(opts.connectTimeoutMs, 5000, 'connectTimeoutMs', false);
    this.idleTimeoutMs = positive(opts.idleTimeoutMs, 4000, 'idleTimeoutMs', false);
    this.onFault = opts.onFault;
    this.onPipeliningOff = opts.onPipeliningOff;
  }

  /** Calls started and not yet ended, failed or aborted. */
  get inFlight(): number {
    return this.calls;
  }

  /** Idle keep-alive connections (for metrics and tests). */
  get idleCount(): number {
    return this.idle.length;
  }

  request(req: OutgoingRequest, sink: ResponseSink): UpstreamCall {
    let head = req.method + ' ' + req.path + ' HTTP/1.1\r\n';
    if (!(req.hasHost ?? HAS_HOST.test(req.headers))) head += this.hostLine;
    head += req.headers + 'Connection: keep-alive\r\n';
    const n = req.bodyLength;
    if (n > 0) head += 'Content-Length: ' + n + '\r\n\r\n';
    else if (n < 0) head += 'Transfer-Encoding: chunked\r\n\r\n';
    // RFC 9110 §8.6: a body-carrying method with an empty body still says so.
    else if (req.method === 'POST' || req.method === 'PUT' || req.method === 'PATCH') head += 'Content-Length: 0\r\n\r\n';
    else head += '\r\n';

    const call = new Call(this, sink, head, req.method === 'HEAD', n);
    this.calls++;
    if (this.closed) {
      process.nextTick(refuseClosed, call);
      return call;
    }
    if (req.timeoutMs > 0) deadlines(req.timeoutMs).add(call);
    if (n === 0 && req.pipelineKey !== undefined && (req.method === 'GET' || req.method === 'HEAD')) {
      call.ended = true;
      call.headWritten = true;
      call.pipelineKey = req.pipelineKey;
      if (this.batch.length === 0) afterBatch(this);
      this.batch.push(call);
      return call;
    }
    this.attach(call, false);
    if (n === 0) {
      call.ended = true;
      call.headWritten = true;
      call.batchedSocket = call.conn!.socket;
      afterBatch(call);
    }
    return call;
  }

  /** End of the turn: each key's calls go on one connection, their heads in one write. */
  runBatched(): void {
    const batch = this.batch;
    this.batch = [];
    if (batch.length === 1 || (this.pipeliningOffUntil !== 0 && this.pipeliningStillOff())) {
      for (const c of batch) if (!c.done) this.attach(c, false);
      return;
    }
    const groups = new Map<string, Call[]>();
    for (const c of batch) {
      if (c.done) continue; // aborted before it was sent
      const g = groups.get(c.pipelineKey!);
      if (g === undefined) groups.set(c.pipelineKey!, [c]);
      else g.push(c);
    }
    for (const g of groups.values()) {
      if (g.length === 1) this.attach(g[0]!, false);
      else this.attachPipeline(g);
    }
  }

  /** Destroys idle connections and refuses new requests; calls in flight finish. */
  close(): void {
    this.closed = true;
    if (this.sweeper !== undefined) clearInterval(this.sweeper);
    this.sweeper = undefined;
    for (const c of this.idle.splice(0)) c.destroy();
  }

  /** @internal Gives the call a connection: the newest live idle one, or a fresh one. */
  attach(call: Call, fresh: boolean): void {
    const conn = this.connection(fresh);
    conn.call = call;
    call.conn = conn;
    conn.parser.reset(call.isHead);
    if (call.headWritten) conn.socket.write(call.head);
  }

  /** The newest live idle connection (unless `fresh`), or a new one. */
  private connection(fresh: boolean): Conn {
    let conn: Conn | undefined;
    if (!fresh && this.idle.length > 0) {
      const now = performance.now();
      while ((conn = this.idle.pop()) !== undefined && now - conn.idleSince >= conn.idleLimit) conn.destroy();
    }
    return conn ?? new Conn(this, this.host, this.port, this.connectTimeoutMs);
  }

  private pipeliningStillOff(): boolean {
    if (performance.now() < this.pipeliningOffUntil) return true;
    this.pipeliningOffUntil = 0;
    return false;
  }

  /** @internal A pipeline's connection ended with calls on it unanswered. */
  pipelineBroken(): void {
    if (++this.pipelineBreaks < PIPELINE_BREAKS) return;
    this.pipelineBreaks = 0;
    this.pipeliningOffUntil = performance.now() + PIPELINE_OFF_MS;
    this.onPipeliningOff?.(this.origin, PIPELINE_OFF_MS);
  }

  /** Several calls on one connection, their heads in one write; answers come back in order. */
  private attachPipeline(calls: Call[]): void {
    const conn = this.connection(false);
    let heads = '';
    for (const c of calls) {
      c.conn = conn;
      c.queued = true;
      heads += c.head;
    }
    calls[0]!.queued = false;
    conn.call = calls[0]!;
    conn.queue = calls.slice(1);
    conn.parser.reset(calls[0]!.isHead);
    conn.socket.write(heads);
  }

  /** @internal A connection whose exchange ended cleanly goes idle (or is closed). */
  release(conn: Conn, keepAliveHintMs: number): void {
    // Leave a second of margin under the server's announced keep-alive timeout.
    const limit = keepAliveHintMs > 0 ? Math.min(this.idleTimeoutMs, keepAliveHintMs - 1000) : this.idleTimeoutMs;
    if (this.closed || limit <= 0 || this.idle.length >= this.maxIdle) {
      conn.destroy();
      return;
    }
    conn.reused = true;
    conn.idleLimit = limit;
    conn.idleSince = performance.now();
    this.idle.push(conn);
    if (this.sweeper === undefined) {
      this.sweeper = setInterval(sweep, Math.max(50, Math.min(1000, this.idleTimeoutMs >> 1)), this);
      this.sweeper.unref();
    }
  }

  /** @internal A connection closed or misbehaved while idle. */
  dropIdle(conn: Conn): void {
    const i = this.idle.indexOf(conn);
    if (i >= 0) this.idle.splice(i, 1);
  }

  /** @internal */
  sweepIdle(): void {
    const now = performance.now();
    const idle = this.idle;
    let w = 0;
    for (let r = 0; r < idle.length; r++) {
      const c = idle[r];
      if (now - c.idleSince >= c.idleLimit) c.destroy();
      else idle[w++] = c;
    }
    idle.length = w;
    if (w === 0 && this.sweeper !== undefined) {
      clearInterval(this.sweeper);
      this.sweeper = undefined;
    }
  }

  /** @internal */
  callEnded(): void {
    this.calls--;
  }

  /** @internal A connection's event handler threw (see TargetPoolOptions.onFault). */
  fault(err: unknown): void {
    if (this.onFault === undefined) throw err;
    this.onFault(err);
  }
}

function positive(v: number | undefined, dflt: number, name: string, zeroOk: boolean): number {
  if (v === undefined) return dflt;
  if (!Number.isFinite(v) || v < 0 || (!zeroOk && v === 0)) {
    throw new Error(`TargetPool: ${name} must be a ${zeroOk ? 'non-negative' : 'positive'} number of ${name === 'maxIdle' ? 'connections' : 'ms'}, got ${v}`);
  }
  return v;
}

function sweep(pool: TargetPool): void {
  pool.sweepIdle();
}

function onCallTimeout(call: Call): void {
  if (call.done || call.headReceived || call.conn === null) return;
  const conn = call.conn;
  if (conn.call === call) conn.fail(call, 'timeout');
  else conn.failQueued(call, 'timeout');
}

/**
 * Response-head deadlines of one timeout value. A timer per request (setTimeout + clearTimeout,
 * a Timeout object and its async bookkeeping each time) is a measurable share of a proxied
 * request's CPU; here calls join an intrusive list in deadline order (same timeout, so later
 * calls expire later), leave it in O(1) when their head arrives, and one timer per list wakes for
 * the head of the list only.
 */
class DeadlineList {
  private head: Call | null = null;
  private tail: Call | null = null;
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly ms: number) {}

  add(call: Call): void {
    call.deadline = performance.now() + this.ms;
    call.dlList = this;
    call.dlPrev = this.tail;
    call.dlNext = null;
    if (this.tail !== null) this.tail.dlNext = call;
    else this.head = call;
    this.tail = call;
    if (this.timer === undefined) this.arm(this.ms);
  }

  remove(call: Call): void {
    const prev = call.dlPrev;
    const next = call.dlNext;
    if (prev !== null) prev.dlNext = next;
    else this.head = next;
    if (next !== null) next.dlPrev = prev;
    else this.tail = prev;
    call.dlList = call.dlPrev = call.dlNext = null;
    // The timer stays armed: when it fires it finds nothing due and waits for the new head.
  }

  private arm(ms: number): void {
    this.timer = setTimeout(fireDeadlines, Math.max(1, Math.ceil(ms)), this);
    this.timer.unref(); // in-flight calls keep the process alive through their sockets
  }

  /** @internal */
  fire(): void {
    this.timer = undefined;
    const now = performance.now();
    let c: Call | null;
    while ((c = this.head) !== null && c.deadline <= now) {
      this.remove(c);
      onCallTimeout(c);
    }
    if (this.head !== null) this.arm(this.head.deadline - now);
  }
}

function fireDeadlines(list: DeadlineList): void {
  list.fire();
}

const deadlineLists = new Map<number, DeadlineList>();

function deadlines(ms: number): DeadlineList {
  let l = deadlineLists.get(ms);
  if (l === undefined) deadlineLists.set(ms, (l = new DeadlineList(ms)));
  return l;
}

function refuseClosed(call: Call): void {
  if (call.done) return;
  call.finish();
  call.sink.onError('connect', false, false);
}

function onConnectTimeout(conn: Conn): void {
  const call = conn.call;
  if (call !== null) conn.fail(call, 'connect');
  else conn.destroy();
}

/** One request/response exchange; the caller's handle. */
class Call implements UpstreamCall, Batched {
  conn: Conn | null = null;
  /** Where a bodiless request's head goes at the end of the batch (event-batch.ts). The socket, not
   * the call's connection: a call retried on a fresh connection before then writes its head there
   * itself, and the old, destroyed socket is skipped. */
  batchedSocket: Socket | null = null;
  /** Its place in the response-head deadline list, while it waits for a head. */
  deadline = 0;
  dlList: DeadlineList | null = null;
  dlPrev: Call | null = null;
  dlNext: Call | null = null;
  headWritten = false;
  ended = false;
  bodySent = false;
  bodyQueued = false;
  responseStarted = false;
  headReceived = false;
  paused = false;
  done = false;
  retried = false;
  /** The key it may be pipelined under (OutgoingRequest.pipelineKey). */
  pipelineKey: string | undefined = undefined;
  /** Sent pipelined behind another call: if the connection ends before its answer starts, it goes again. */
  queued = false;
  drainCb: (() => void) | null = null;
  private readonly chunked: boolean;
  private bodyLeft: number;
  private chunkOpen = false;

  constructor(
    readonly pool: TargetPool,
    readonly sink: ResponseSink,
    public head: string,
    readonly isHead: boolean,
    bodyLength: number,
  ) {
    this.chunked = bodyLength < 0;
    this.bodyLeft = bodyLength;
  }

  runBatched(): void {
    const s = this.batchedSocket;
    this.batchedSocket = null;
    if (s !== null && !s.destroyed) s.write(this.head);
  }

  write(chunk: Uint8Array): boolean {
    const conn = this.conn;
    if (conn === null || this.ended) return true;
    const s = conn.socket;
    let n = chunk.byteLength;
    if (!this.chunked) {
      // Never write past Content-Length: extra bytes would be read as another request.
      if (n > this.bodyLeft) chunk = chunk.subarray(0, (n = this.bodyLeft));
      this.bodyLeft -= n;
    }
    if (n === 0) return !s.writableNeedDrain; // an empty chunk would end a chunked body
    s.cork();
    if (!this.headWritten) {
      this.headWritten = true;
      s.write(this.head);
    }
    if (this.chunked) {
      // The CRLF closing the previous chunk rides with the next size line.
      s.write((this.chunkOpen ? '\r\n' : '') + n.toString(16) + '\r\n');
      this.chunkOpen = true;
    }
    const ok = s.write(chunk);
    s.uncork();
    if (conn.connected) this.bodySent = true;
    else this.bodyQueued = true;
    return ok;
  }

  end(): void {
    const conn = this.conn;
    if (conn === null || this.ended) return;
    this.ended = true;
    let tail = '';
    if (this.chunked) tail = this.chunkOpen ? '\r\n0\r\n\r\n' : '0\r\n\r\n';
    else if (this.bodyLeft > 0) conn.reusable = false; // short body: the server still waits for bytes
    if (!this.headWritten) {
      // Kept whole, so the stale-connection retry can resend an empty body too.
      this.head += tail;
      this.headWritten = true;
      conn.socket.write(this.head);
    } else if (tail !== '') {
      conn.socket.write(tail);
    }
  }

  onDrain(cb: () => void): void {
    this.drainCb = cb;
  }

  resume(): void {
    if (!this.paused || this.conn === null) return;
    this.paused = false;
    this.conn.resumeReading();
  }

  abort(): void {
    const conn = this.conn;
    if (conn === null) {
      if (!this.done) this.finish(); // refused by a closed pool, not yet reported
      return;
    }
    this.finish();
    conn.abandon(this);
  }

  /** Ends the call's life (exactly once); the caller then reports to the sink, or not. */
  finish(): void {
    this.done = true;
    this.conn = null;
    this.dlList?.remove(this);
    this.pool.callEnded();
  }
}

/** One upstream connection and its parser; serves one call at a time, or a pipeline of them. */
class Conn implements ResponseHandler {
  readonly socket: Socket;
  readonly parser: ResponseParser;
  /** The call whose answer is being read. */
  call: Call | null = null;
  /** Calls pipelined behind it, in order. A call aborted or timed out in the middle stays (done)
   * until its answer has been read and dropped; the last one is never done (trimQueue). */
  queue: Call[] = [];
  connected = false;
  reused = false;
  reusable = true;
  idleSince = 0;
  idleLimit = 0;
  private pending: Buffer | null = null;
  private readPaused = false;
  /** Answers to dropped calls may still come: close once the live calls are answered. */
  private closeWhenDone = false;
  /** The server ended the connection while a paused sink still had `pending` to take. */
  private endedWhilePaused = false;
  private completed = false;
  private connectTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly pool: TargetPool,
    host: string,
    port: number,
    connectTimeoutMs: number,
  ) {
    this.parser = new ResponseParser(this);
    // A handler that throws (a bug) costs this call, not the thread: see crashed().
    const guarded =
      <T>(fn: (arg: T) => void) =>
      (arg: T): void => {
        try {
          fn(arg);
        } catch (err) {
          this.crashed(err);
        }
      };
    const onRead = guarded((b: Buffer) => this.onData(b));
    const s = (this.socket = connect({
      port,
      host,
      // true: go on reading; a paused sink pauses the socket itself (feed()).
      onread: { buffer: READ_BUFFER, callback: (n: number, buf: Uint8Array): boolean => (onRead((buf as Buffer).subarray(0, n)), true) },
    }));
    s.setNoDelay(true);
    this.connectTimer = setTimeout(onConnectTimeout, connectTimeoutMs, this);
    s.on('connect', () => this.onConnect());
    s.on('end', guarded(() => this.onEof()));
    s.on('close', guarded(() => this.onClose()));
    s.on('drain', guarded(() => this.call?.drainCb?.()));
    s.on('error', noop); // 'close' follows and reports
  }

  destroy(): void {
    this.reusable = false;
    this.pending = null;
    if (this.connectTimer !== undefined) clearTimeout(this.connectTimer);
    this.socket.destroy();
  }

  /** A handler of this connection's events threw: this call ends with a protocol error (its sink
   * told, unless telling it throws too), the connection is closed, and the pool reports the fault. */
  private crashed(err: unknown): void {
    const call = this.call;
    this.call = null;
    this.destroy();
    this.retryQueued();
    if (call !== null && !call.done) {
      call.finish();
      try {
        call.sink.onError('protocol', call.bodySent, call.responseStarted);
      } catch {
        // The sink is what failed; the fault below is reported either way.
      }
    }
    this.pool.fault(err);
  }

  /** Ends the current call with an error; the connection is never reused. */
  fail(call: Call, kind: UpstreamErrorKind): void {
    const report = !call.done; // an abandoned call's sink hears nothing more
    if (report) call.finish();
    this.call = null;
    this.destroy();
    this.retryQueued();
    if (report) call.sink.onError(kind, call.bodySent, call.responseStarted);
  }

  /** A call waiting in the pipeline timed out: it ends now; its answer is dropped when it comes. */
  failQueued(call: Call, kind: UpstreamErrorKind): void {
    call.finish();
    this.trimQueue();
    call.sink.onError(kind, false, false);
  }

  /** The client of `call` (finished) went away. */
  abandon(call: Call): void {
    if (call !== this.call) {
      this.trimQueue();
      return;
    }
    if (this.queue.length === 0) {
      this.call = null;
      this.destroy();
      return;
    }
    // Calls pipelined behind it need this connection: read its answer to the end and drop it.
    if (call.paused) {
      call.paused = false;
      this.resumeReading();
    }
  }

  /** Drops the done calls at the end of the pipeline. Their answers may still come, so the
   * connection is not reused; with nothing live left on it, it closes now. */
  private trimQueue(): void {
    const q = this.queue;
    let n = q.length;
    while (n > 0 && q[n - 1]!.done) n--;
    if (n === q.length) return;
    q.length = n;
    this.closeWhenDone = true;
    const cur = this.call;
    if (n === 0 && cur !== null && cur.done) {
      this.call = null;
      this.destroy();
    }
  }

  /** The connection is gone with pipelined calls unanswered: each is sent again, once, on a fresh
   * connection (bodiless GET or HEAD, so the server may see it twice; RFC 9112 §9.3.2). */
  private retryQueued(): void {
    const q = this.queue;
    if (q.length === 0) return;
    this.queue = [];
    if (q.some(isLive)) this.pool.pipelineBroken();
    for (const c of q) {
      if (c.done) continue;
      c.conn = null;
      if (c.retried) {
        c.finish();
        c.sink.onError('reset', false, false);
      } else {
        c.retried = true;
        this.pool.attach(c, true);
      }
    }
  }

  resumeReading(): void {
    const call = this.call;
    const p = this.pending;
    if (p !== null) {
      this.pending = null;
      this.feed(p);
      if (this.call !== call || call === null) return;
      if (this.endedWhilePaused && this.pending === null) {
        this.onEof();
        return;
      }
      if (call.paused) return;
    }
    this.readPaused = false;
    this.socket.resume();
  }

  onResponseHead(status: number, headers: readonly string[]): boolean {
    const call = this.call!;
    call.headReceived = true;
    call.dlList?.remove(call);
    if (!call.done) call.sink.onHead(status, headers);
    return this.call === call;
  }

  onResponseData(chunk: Buffer): boolean {
    const call = this.call;
    if (call === null) return false;
    if (call.done || call.sink.onData(chunk)) return this.call === call;
    if (this.call !== call) return false;
    if (call.done) return true; // abandoned from onData, pipeline behind it: read on, drop the rest
    call.paused = true;
    return false;
  }

  onResponseComplete(): void {
    this.completed = true;
  }

  private onConnect(): void {
    this.connected = true;
    clearTimeout(this.connectTimer);
    this.connectTimer = undefined;
    const call = this.call;
    if (call !== null && call.bodyQueued) call.bodySent = true;
  }

  private onData(buf: Buffer): void {
    const call = this.call;
    if (call === null) {
      // An idle connection must be silent; whatever this is, it belongs to no request.
      this.pool.dropIdle(this);
      this.destroy();
      return;
    }
    call.responseStarted = true;
    this.feed(buf);
  }

  private feed(buf: Buffer): void {
    for (;;) {
      const off = this.parser.execute(buf);
      const call = this.call;
      if (call === null) return; // aborted from a sink callback
      if (off < 0) {
        this.fail(call, 'protocol');
      } else if (this.completed) {
        const pipelined = this.queue.length > 0;
        this.complete(call, off === buf.length);
        // The next pipelined answer may follow in the same bytes.
        if (pipelined && off < buf.length && this.call !== null) {
          buf = buf.subarray(off);
          this.call.responseStarted = true;
          continue;
        }
      } else if (call.paused) {
        if (off < buf.length) this.pending = Buffer.from(buf.subarray(off)); // copy: buf is the shared read buffer
        this.readPaused = true;
        this.socket.pause();
      }
      return;
    }
  }

  /** The response is whole: hand the connection back (if clean) before telling the sink, so a
   * request the sink starts from onEnd can reuse it. */
  private complete(call: Call, clean: boolean): void {
    this.completed = false;
    const report = !call.done; // an abandoned call's answer is dropped
    if (report) call.finish();
    this.call = null;
    const keep = call.ended && this.reusable && this.parser.keepAlive && !this.endedWhilePaused;
    if (this.queue.length > 0) {
      if (keep) {
        const next = this.queue.shift()!;
        this.call = next;
        this.parser.reset(next.isHead);
        if (this.readPaused && this.pending === null) {
          this.readPaused = false;
          this.socket.resume();
        }
      } else {
        this.destroy(); // the server is closing (or the call left bytes unsent): the rest go again
        this.retryQueued();
      }
    } else if (clean && keep && !this.closeWhenDone) {
      if (this.readPaused) {
        // Completed from the remainder kept by a pause: an idle socket must read, to see a close.
        this.readPaused = false;
        this.socket.resume();
      }
      this.pool.release(this, this.parser.keepAliveTimeoutMs);
    } else {
      this.destroy();
    }
    if (report) call.sink.onEnd();
  }

  private onEof(): void {
    const call = this.call;
    if (call === null) {
      this.pool.dropIdle(this);
      this.destroy();
    } else if (this.pending !== null) {
      this.endedWhilePaused = true; // the rest of the response is already here: deliver it first
    } else if (this.parser.finish()) {
      this.complete(call, false); // body delimited by close
    } else {
      this.lost(call);
    }
  }

  private onClose(): void {
    const call = this.call;
    if (call === null) this.pool.dropIdle(this);
    else if (this.pending !== null) this.endedWhilePaused = true;
    else this.lost(call);
  }

  /** The connection ended before the response did. */
  private lost(call: Call): void {
    if (call.done) {
      this.call = null;
      this.destroy();
      this.retryQueued();
      return;
    }
    if ((this.reused || call.queued) && !call.responseStarted && !call.bodySent && !call.retried) {
      this.call = null;
      call.conn = null;
      this.destroy();
      this.retryQueued();
      call.retried = true;
      this.pool.attach(call, true);
      return;
    }
    this.fail(call, this.connected ? 'reset' : 'connect');
  }
}

function noop(): void {}

function isLive(c: Call): boolean {
  return !c.done;
}
