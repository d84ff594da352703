// One proxied HTTP request, from the uWS handler to the upstream and back. This file and
// http-listener.ts are the only ones that touch uWS HttpRequest/HttpResponse objects. uWS rules
// kept here: everything is copied from `req` synchronously; onAborted is registered before any
// await; `res` is never touched after abort; writes from outside a uWS callback are corked;
// large bodies go through tryEnd/onWritable with backpressure both ways.

import { STATUS_CODES } from 'node:http';
import type { HttpResponse } from './uws.js';
import type { Grant, RequestHead, Verdict } from '../pipeline/types.js';
import { isVerdict } from '../pipeline/types.js';
import { headerOf, type Pipeline } from '../pipeline/pipeline.js';
import * as verdicts from '../pipeline/verdicts.js';
import type { ResponseSink, UpstreamCall, UpstreamErrorKind } from '../proxy/http-client.js';
import { forwardHeaderBlock } from '../proxy/forward-headers.js';
import type { Outcome } from '../metrics/edge-metrics.js';
import type { AccessLog } from './access-log.js';
import type { Target, Upstreams } from '../proxy/upstreams.js';
import { afterBatch, afterBatchLast, type Batched } from '../event-batch.js';
import type { PacedRefusal } from '../stages/admit/refusal-pace.js';

const STATUS_LINES: string[] = [];
export function statusLine(status: number): string {
  return (STATUS_LINES[status] ??= `${status} ${STATUS_CODES[status] ?? 'Unknown'}`);
}

/** Response headers ward does not copy: hop-by-hop ones are already gone (the client removes
 * them); uWS writes its own Content-Length/Transfer-Encoding and Date. Compared, not hashed:
 * the names are fresh strings, and a Set lookup would hash each of them. */
function skippedResponseHeader(name: string): boolean {
  return name === 'content-length' || name === 'date';
}

/** The upstream header lines ward copies to the client, prepared once per distinct upstream head:
 * the parser hands the same frozen array for byte-identical heads (response-parser.ts), so most
 * answers find theirs here. uWS then gets them in one writeHeader call, as bytes, instead of one
 * call and two string conversions per header. The value carries the later lines after CRLF: uWS
 * writes `name: value\r\n` verbatim, and the parser has refused any CR or LF inside a field. */
interface CopiedLines {
  readonly name: Buffer;
  readonly rest: Buffer;
}
const copiedLines = new WeakMap<readonly string[], CopiedLines | null>();

function prepareCopiedLines(headers: readonly string[]): CopiedLines | null {
  let name: string | undefined;
  let rest = '';
  for (let i = 0; i < headers.length; i += 2) {
    const n = headers[i]!;
    if (skippedResponseHeader(n)) continue;
    if (name === undefined) {
      name = n;
      rest = headers[i + 1]!;
    } else {
      rest += '\r\n' + n + ': ' + headers[i + 1]!;
    }
  }
  return name === undefined ? null : { name: Buffer.from(name, 'latin1'), rest: Buffer.from(rest) };
}

const X_REQUEST_ID = Buffer.from('x-request-id', 'latin1');

/** Queue at most this much request body before the upstream call exists, then pause the client. */
const EARLY_BODY_PAUSE = 64 * 1024;
/** A body up to this size is kept until the upstream answers, so a connect failure can send it to another target. */
const REPLAY_MAX = 64 * 1024;
/**
 * The most ward writes inside one res.cork(). The uWS build ward runs on loses data written
 * inside a cork when it overflows uWS's 16 KiB cork buffer at a moment the socket cannot take the
 * buffer's contents: uncork() flushes the buffer, and when that flush fails it returns without
 * writing or buffering the write that overflowed (fixed upstream in uWebSockets v20.77: "Buffer
 * optional uncork data after failure to flush already corked data"). For res.write() that is a
 * chunk gone from a chunked response whose size line was already sent, which breaks the client's
 * framing; for end() and the header writes, bytes gone from the answer. So a cork here never holds
 * more than this (the margin covers what uWS adds: Date, Content-Length or chunk framing); larger
 * writes go uncorked, where uWS buffers whatever the socket does not take. tryEnd() is safe either
 * way: when it overflows it writes nothing and says so, and its caller retries from the offset.
 */
const CORK_BUDGET = 16 * 1024 - 512;
/** What uWS adds to a response head ward writes: its Date and uWebSockets lines, Content-Length
 * or Transfer-Encoding, the blank line, and the x-request-id name. */
const HEAD_OVERHEAD = 160;

export interface ExchangeEnv {
  readonly upstreams: Upstreams;
  readonly accessLog: AccessLog;
  /** In-flight exchanges, for draining. */
  inFlightChanged(delta: 1 | -1): void;
  /** An error thrown while writing an answer (a bug): that request's connection was closed. */
  answerFault(err: unknown, requestId: string): void;
}

/** Fault injection for tests and game days: writing the answer to a request for exactly this path
 * throws, as a bug in the exchange would. Never set in production. */
const ANSWER_FAULT_PATH = process.env.WARD_FAULT_THROW_ANSWER_PATH;

/** Writes a refusal: a JSON body with request_id, or a silent close for drops. */
export function answer(res: HttpResponse, v: Verdict, requestId: string, closeConnection = false): void {
  if (v.drop) {
    res.close();
    return;
  }
  const a = preparedAnswer(v);
  const body = a.bodyPrefix + requestId + '"}';
  res.cork(() => {
    res.writeStatus(a.status);
    res.writeHeader(a.firstName, a.lines);
    res.end(body, closeConnection || a.closes);
  });
}

/**
 * A refusal decided inside a uWS handler, written at the end of the event-loop turn with the turn's
 * other refusals and answers (event-batch.ts). Every write wakes the client's reader; written one by
 * one between reading requests, a client on another core is woken (an inter-processor interrupt)
 * for nearly every refusal, and written back to back, about once per turn: interleaved A/B of the
 * 429 path, 30.4 → 24.6 µs of CPU per refusal (README, Performance). Drops close at once.
 */
export function answerAfterTurn(res: HttpResponse, v: Verdict, requestId: string, env: ExchangeEnv): void {
  if (v.drop) return answer(res, v, requestId);
  const held = new HeldAnswer(res, v, requestId, env);
  res.onAborted(() => (held.aborted = true));
  // After the turn's admitted requests and answers (a good tenant's request waits for no 429 of
  // this turn), or later still when the refused tenant is past its pace (refusal-pace.ts).
  if (v.pace === undefined || !v.pace.hold(held)) afterBatchLast(held);
}

/** A bug met while writing an answer: logged, and that request's connection closed (only it). */
function closeAfterFault(res: HttpResponse, env: ExchangeEnv, err: unknown, requestId: string): void {
  env.answerFault(err, requestId);
  try {
    res.close();
  } catch {
    // Already closed.
  }
}

class HeldAnswer implements Batched {
  aborted = false;

  constructor(
    private readonly res: HttpResponse,
    private readonly v: Verdict,
    private readonly requestId: string,
    private readonly env: ExchangeEnv,
  ) {}

  runBatched(): void {
    if (this.aborted) return;
    try {
      answer(this.res, this.v, this.requestId);
    } catch (err) {
      closeAfterFault(this.res, this.env, err, this.requestId);
    }
  }
}

/** What a verdict's answer always carries, built once per verdict object (refusals are cached per
 * bucket and retry time, pipeline/verdicts.ts): the status line and every header line as bytes, for
 * one writeStatus and one writeHeader call (see CopiedLines), and the body up to the request id. */
interface PreparedAnswer {
  readonly status: Buffer;
  readonly firstName: Buffer;
  readonly lines: Buffer;
  readonly bodyPrefix: string;
  readonly closes: boolean;
}
const preparedAnswers = new WeakMap<Verdict, PreparedAnswer>();

function preparedAnswer(v: Verdict): PreparedAnswer {
  let a = preparedAnswers.get(v);
  if (a === undefined) {
    let body = '{"error":' + JSON.stringify(v.error);
    if (v.extra) for (const k in v.extra) body += ',' + JSON.stringify(k) + ':' + JSON.stringify(v.extra[k]);
    const h = v.headers ?? [];
    let first = 'content-type';
    let lines = 'application/json';
    for (let i = 0; i < h.length; i += 2) {
      if (i === 0) {
        first = h[0]!;
        lines = h[1]!;
      } else lines += '\r\n' + h[i]! + ': ' + h[i + 1]!;
    }
    if (h.length > 0) lines += '\r\ncontent-type: application/json';
    const s = v.status;
    a = {
      status: Buffer.from(statusLine(s), 'latin1'),
      firstName: Buffer.from(first, 'latin1'),
      lines: Buffer.from(lines),
      bodyPrefix: body + ',"request_id":"',
      closes: s === 400 || s === 413 || s === 431 || s === 501 || s === 503,
    };
    preparedAnswers.set(v, a);
  }
  return a;
}

/** Writes a JSON answer ward composes itself (e.g. the /v1/e2e/ endpoints). */
export function writeJson(res: HttpResponse, status: number, body: unknown, headers: readonly string[] = []): void {
  const text = Buffer.from(JSON.stringify(body));
  let bytes = HEAD_OVERHEAD + 64 + text.length;
  for (let i = 0; i < headers.length; i++) bytes += Buffer.byteLength(headers[i]!) + 2;
  corkIfFits(res, bytes, () => {
    res.writeStatus(statusLine(status));
    for (let i = 0; i < headers.length; i += 2) res.writeHeader(headers[i]!, headers[i + 1]!);
    res.writeHeader('content-type', 'application/json');
    res.writeHeader('cache-control', 'no-store');
    res.end(text);
  });
}

/** Runs `write` corked when `bytes` fit the cork budget (one syscall), uncorked otherwise (see CORK_BUDGET). */
function corkIfFits(res: HttpResponse, bytes: number, write: () => void): void {
  if (bytes <= CORK_BUDGET) res.cork(write);
  else write();
}

export class HttpExchange implements ResponseSink, Batched {
  private aborted = false;
  private finished = false;
  /** How the exchange ended, for a grant that arrives after it did. */
  private endedAs: Outcome | undefined;
  private grant: Grant | undefined;
  private call: UpstreamCall | undefined;
  private target: Target | undefined;
  private retried = false;
  private startedAt = 0;
  // request body
  private readonly expectBody: boolean;
  private readonly bodyLength: number;
  private early: Buffer[] | undefined;
  private earlyBytes = 0;
  /** Body chunks handed to the first upstream call, for the one retry after a connect failure
   * (nothing reached that target); undefined once the body outgrew REPLAY_MAX. */
  private replay: Buffer[] | undefined;
  private replayBytes = 0;
  private bodyBytes = 0;
  private bodyDone = false;
  private clientPaused = false;
  // response body
  private headSent = false;
  /** The upstream's response head, until it is written with the first body bytes. */
  private headStatus = 0;
  /** The upstream's response head is still to be written (with the first body bytes or the end). */
  private headPending = false;
  /** The upstream header lines ward copies, and the response head's size in bytes (about). */
  private headLines: CopiedLines | null = null;
  private headBytes = 0;
  /** The upstream's answer is complete while its last bytes still wait in `pending` for the client. */
  private upstreamEnded = false;
  private total = -1;
  private pending: Buffer | undefined;
  private pendingOffset = 0;
  private writableHooked = false;
  /** A small answer that arrived whole, written (and the exchange ended) at the end of the batch. */
  private held: Buffer | undefined;

  constructor(
    private readonly res: HttpResponse,
    private readonly head: RequestHead,
    private readonly pipeline: Pipeline,
    private readonly env: ExchangeEnv,
    contentLength: string | undefined,
    chunked: boolean,
  ) {
    this.bodyLength = contentLength !== undefined ? Number(contentLength) : chunked ? -1 : 0;
    this.expectBody = this.bodyLength !== 0;
    if (this.expectBody && this.bodyLength <= REPLAY_MAX) this.replay = [];
    env.inFlightChanged(1);
    res.onAborted(() => this.onAborted());
    if (this.expectBody) res.onData((chunk, isLast) => this.onClientData(chunk, isLast));
  }

  /** Called with the pipeline's outcome (synchronously or after the token was verified). */
  proceed(outcome: Grant | Verdict): void {
    if (isVerdict(outcome)) {
      // A tenant refused faster than its pace gets this answer later (refusal-pace.ts); the
      // exchange stays in flight, so a drain waits for it.
      if (outcome.pace !== undefined && !this.aborted && !this.expectBody && outcome.pace.hold(new PacedExchangeRefusal(this, outcome))) return;
      this.refuse(outcome);
      return;
    }
    if (this.finished) {
      // The exchange ended while its outcome was pending (a token's first verification, a Redis
      // round trip): the client went away, or its body outgrew the limit. end() ran without a
      // grant, so the lease this one holds comes back here, and the outcome is counted for it.
      outcome.finish();
      if (this.endedAs !== undefined) outcome.record(this.endedAs);
      return;
    }
    this.grant = outcome;
    this.startedAt = Date.now();
    this.send();
  }

  private send(): void {
    const grant = this.grant!;
    const failed = this.target; // a retry: try another target, then let the failed one go
    const target = this.env.upstreams.pick(grant.upstream, grant, this.head, failed);
    this.target = target;
    if (failed !== undefined) this.env.upstreams.release(failed);
    if (target === undefined) {
      this.fail(verdicts.UPSTREAM_UNAVAILABLE, 'upstream_unavailable');
      return;
    }
    const h = this.head;
    const headers = forwardHeaderBlock(h.headers, h.remoteText, h.requestId, grant.route.public ? undefined : grant.tenant);
    const path = h.query.length > 0 ? h.url + '?' + h.query : h.url;
    const settings = this.env.upstreams.callSettings(grant.upstream);
    const call = target.pool.request(
      {
        method: h.method,
        path,
        headers,
        hasHost: headerOf(h, 'host') !== undefined,
        bodyLength: this.bodyLength,
        timeoutMs: settings.timeoutMs,
        // One tenant's requests may share a pipelined connection; never two tenants' (a slow
        // answer would hold up the other tenant's behind it).
        pipelineKey: settings.pipelined ? grant.tenant : undefined,
      },
      this,
    );
    this.call = call;
    if (!this.expectBody) return;
    call.onDrain(() => this.resumeClient());
    if (this.early !== undefined) {
      let ok = true;
      for (const c of this.early) {
        this.keep(c);
        if (!call.write(c)) ok = false;
      }
      if (!ok) this.pauseClient();
      else if (this.retried) this.resumeClient(); // paused by the failed call's socket
      this.early = undefined;
      this.earlyBytes = 0;
    }
    if (this.bodyDone) call.end();
  }

  // ---- request body: client → upstream ----

  private onClientData(chunk: ArrayBuffer, isLast: boolean): void {
    if (this.finished || this.aborted) return;
    this.bodyBytes += chunk.byteLength;
    if (this.bodyBytes > this.pipeline.policy.flood.max_body_bytes) {
      // A chunked body outgrew the limit (Content-Length was checked before any work).
      this.call?.abort();
      this.fail(verdicts.BODY_TOO_LARGE, 'body_too_large');
      return;
    }
    // uWS neuters the ArrayBuffer when this callback returns: copy it.
    const copy = Buffer.from(new Uint8Array(chunk));
    if (isLast) this.bodyDone = true;
    const call = this.call;
    if (call === undefined) {
      (this.early ??= []).push(copy);
      this.earlyBytes += copy.length;
      if (this.earlyBytes >= EARLY_BODY_PAUSE) this.pauseClient();
      return;
    }
    if (copy.length > 0) {
      this.keep(copy);
      if (!call.write(copy)) this.pauseClient();
    }
    if (isLast) call.end();
  }

  /** Keeps a chunk sent to the first call for a retry after a connect failure, while the body is small. */
  private keep(c: Buffer): void {
    if (this.replay === undefined || this.retried) return;
    this.replayBytes += c.length;
    if (this.replayBytes > REPLAY_MAX) this.replay = undefined;
    else this.replay.push(c);
  }

  private pauseClient(): void {
    if (!this.clientPaused && !this.aborted) {
      this.clientPaused = true;
      this.res.pause();
    }
  }

  private resumeClient(): void {
    if (this.clientPaused && !this.aborted && !this.finished) {
      this.clientPaused = false;
      this.res.resume();
    }
  }

  // ---- response: upstream → client (ResponseSink) ----

  onHead(status: number, headers: readonly string[]): void {
    if (this.aborted) return;
    let total = -1;
    for (let i = 0; i < headers.length; i += 2) if (headers[i] === 'content-length') total = Number(headers[i + 1]);
    this.headSent = true;
    this.env.upstreams.report(this.target!, status >= 500 ? '5xx' : status >= 400 ? '4xx' : 'ok', Date.now() - this.startedAt, this.grant);
    let lines = copiedLines.get(headers);
    if (lines === undefined) copiedLines.set(headers, (lines = prepareCopiedLines(headers)));
    this.headLines = lines;
    this.headBytes = HEAD_OVERHEAD + 64 + this.head.requestId.length + (lines === null ? 0 : lines.name.length + lines.rest.length + 4);
    if (this.head.method === 'HEAD' || status === 204 || status === 304) {
      const res = this.res;
      this.total = -2; // ended
      corkIfFits(res, this.headBytes, () => {
        this.writeHead(status);
        res.endWithoutBody(total >= 0 ? total : undefined);
      });
      return;
    }
    // The head is written with the first body bytes (or the end): one corked write, one syscall,
    // for the common response that arrives whole.
    this.total = total;
    this.headStatus = status;
    this.headPending = true;
  }

  /** Status line and headers (prepared by onHead). */
  private writeHead(status: number): void {
    const res = this.res;
    if (status !== 200) res.writeStatus(statusLine(status)); // uWS writes "200 OK" by itself
    const lines = this.headLines;
    if (lines !== null) res.writeHeader(lines.name, lines.rest);
    res.writeHeader(X_REQUEST_ID, this.head.requestId);
  }

  private flushHead(): void {
    if (this.headPending) {
      this.headPending = false;
      this.writeHead(this.headStatus);
    }
  }

  /** Bytes the response head still to be written takes in a cork (0 once written). */
  private get unwrittenHead(): number {
    return this.headPending ? this.headBytes : 0;
  }

  onData(chunk: Buffer): boolean {
    if (this.aborted || this.total === -2) return true;
    const head = this.unwrittenHead;
    if (this.total === chunk.length && head > 0 && head + chunk.length <= CORK_BUDGET) {
      // The whole answer, head and body, in one piece: the common API response.
      this.held = Buffer.from(chunk); // copy: chunk is the upstream connection's read buffer
      this.total = -2;
      afterBatch(this);
      return true;
    }
    const res = this.res;
    let ok = true;
    if (this.total >= 0) {
      // tryEnd() may overflow a cork safely (see CORK_BUDGET); only a large head goes out first.
      if (head > CORK_BUDGET) this.flushHead();
      res.cork(() => {
        this.flushHead();
        const offset = res.getWriteOffset();
        const [written, done] = res.tryEnd(chunk, this.total);
        if (done) this.total = -2;
        else if (!written) {
          this.pending = Buffer.from(chunk); // copy, as above
          this.pendingOffset = offset;
          ok = false;
        }
      });
    } else if (head + chunk.length + 16 <= CORK_BUDGET) {
      res.cork(() => {
        this.flushHead();
        ok = res.write(chunk);
      });
    } else {
      // A chunk too big for the cork goes uncorked, after the head (see CORK_BUDGET).
      if (head > 0) corkIfFits(res, head, () => this.flushHead());
      ok = res.write(chunk);
    }
    if (!ok) this.hookWritable();
    return ok;
  }

  /** Writes a held answer and ends the exchange (unless the client went away meanwhile). Runs at
   * the end of the event-loop turn, outside any handler that would contain an error: one thrown here
   * (a bug) costs this request its connection, not the thread and every request on it. */
  runBatched(): void {
    const body = this.held!;
    this.held = undefined;
    if (!this.aborted) {
      try {
        if (ANSWER_FAULT_PATH !== undefined && this.head.url === ANSWER_FAULT_PATH) throw new Error('injected fault (WARD_FAULT_THROW_ANSWER_PATH)');
        const res = this.res;
        res.cork(() => {
          this.flushHead();
          res.end(body);
        });
      } catch (err) {
        // end() first: close() runs onAborted at once, which would count it as client_aborted.
        this.end('error');
        closeAfterFault(this.res, this.env, err, this.head.requestId);
        return;
      }
    }
    this.end('ok');
  }

  onEnd(): void {
    if (this.held !== undefined) return; // runBatched() writes it and ends the exchange
    if (this.pending !== undefined && !this.aborted) {
      // The last bytes still wait for the client to drain: onWritable ends the exchange once they
      // are written (the lease is held until then, as for any response still being sent).
      this.upstreamEnded = true;
      return;
    }
    if (!this.aborted && this.total > 0) {
      // The upstream ended short of its Content-Length: cut the client's response too. end()
      // first: close() runs onAborted at once, which would count the request as client_aborted.
      this.end('upstream_unavailable');
      this.res.close();
      return;
    }
    if (!this.aborted && this.total !== -2) {
      const res = this.res;
      corkIfFits(res, this.unwrittenHead + 16, () => {
        this.flushHead();
        res.end();
      });
    }
    this.end('ok');
  }

  onError(kind: UpstreamErrorKind, bodySent: boolean, responseStarted: boolean): void {
    if (this.aborted || this.finished) return;
    this.env.upstreams.report(this.target!, kind, Date.now() - this.startedAt, this.grant);
    if (!responseStarted && !this.headSent && this.mayRetry(kind, bodySent)) {
      this.retried = true;
      this.call = undefined;
      if (this.expectBody) {
        // Nothing reached the failed target: the new call gets the body from its start.
        this.early = this.replay;
        this.earlyBytes = this.replayBytes;
        this.replay = undefined;
      }
      this.send();
      return;
    }
    if (this.headSent) {
      // Too late for a status: cut the connection so the client sees a truncated response.
      // end() first: close() runs onAborted at once, which would count it as client_aborted.
      this.end(kind === 'timeout' ? 'upstream_timeout' : 'upstream_unavailable');
      this.res.close();
      return;
    }
    if (kind === 'timeout') this.fail(verdicts.UPSTREAM_TIMEOUT, 'upstream_timeout');
    else this.fail(verdicts.UPSTREAM_UNAVAILABLE, 'upstream_unavailable');
  }

  /** Contract: idempotent bodiless requests are retried once after a connect failure or a reset
   * before any response byte; others only after a connect failure (nothing was sent), when the
   * body so far is small enough to have been kept (REPLAY_MAX). */
  private mayRetry(kind: UpstreamErrorKind, bodySent: boolean): boolean {
    if (this.retried) return false;
    if (kind === 'connect') return !bodySent && (!this.expectBody || this.replay !== undefined);
    if (this.expectBody) return false;
    const m = this.head.method;
    return kind === 'reset' && (m === 'GET' || m === 'HEAD' || m === 'OPTIONS');
  }

  private hookWritable(): void {
    if (this.writableHooked) return;
    this.writableHooked = true;
    this.res.onWritable((offset) => {
      if (this.aborted) return true;
      const p = this.pending;
      if (p !== undefined) {
        const [written, done] = this.res.tryEnd(p.subarray(offset - this.pendingOffset), this.total);
        if (done) this.total = -2;
        if (!written && !done) return false;
        this.pending = undefined;
        if (this.upstreamEnded) {
          this.onEnd();
          return true;
        }
      }
      this.call?.resume();
      return true;
    });
  }

  // ---- endings: exactly once ----

  private fail(v: Verdict, outcome: Outcome): void {
    this.end(outcome);
    if (this.aborted) return;
    if (!this.headSent) {
      this.headSent = true;
      answer(this.res, v, this.head.requestId, this.expectBody && !this.bodyDone);
    } else if (this.total !== -2) {
      // The upstream's response already started (e.g. a chunked body outgrew the limit after
      // the upstream answered early): too late for a status, so cut it rather than leave it hanging.
      this.res.close();
    }
  }

  /** @internal Answers the refusal and ends the exchange (at once, or when its pace releases it). */
  refuse(v: Verdict): void {
    // An unread request body would be taken for the next request: close after the answer.
    if (!this.aborted) answer(this.res, v, this.head.requestId, this.expectBody && !this.bodyDone);
    this.end(undefined);
  }

  /** @internal */
  get clientGone(): boolean {
    return this.aborted;
  }

  private onAborted(): void {
    this.aborted = true;
    this.call?.abort();
    this.end('client_aborted');
  }

  private end(outcome: Outcome | undefined): void {
    if (this.finished) return;
    this.finished = true;
    this.endedAs = outcome;
    const t = this.target;
    if (t !== undefined) {
      this.target = undefined;
      this.env.upstreams.release(t);
    }
    const g = this.grant;
    if (g !== undefined) {
      g.finish();
      if (outcome !== undefined) g.record(outcome);
    }
    if (outcome !== undefined) this.env.accessLog.record(this.head, g, outcome, this.startedAt);
    this.env.inFlightChanged(-1);
  }
}

/** A refusal decided after the handler returned (a token's first verification, a store round trip), waiting for its tenant's pace. */
class PacedExchangeRefusal implements PacedRefusal {
  constructor(
    private readonly ex: HttpExchange,
    private readonly v: Verdict,
  ) {}

  get aborted(): boolean {
    return this.ex.clientGone;
  }

  runBatched(): void {
    this.ex.refuse(this.v);
  }
}
