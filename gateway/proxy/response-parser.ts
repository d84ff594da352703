// Strict, incremental HTTP/1.x response parser (RFC 9112) for ward's upstream client.
// It reads socket Buffers in place: the head is found with indexOf and decoded once, body bytes
// are handed on as subarrays (no copy), and input may be split anywhere.
// Heads are decoded as UTF-8, not latin1: uWS writes header strings as UTF-8, so a UTF-8 value
// from upstream reaches the client byte for byte (latin1 would double-encode it). No multi-byte
// sequence decodes to CR, LF or ':', so the structure seen is the bytes' structure.

const CR = 13;
const LF = 10;
const SP = 32;
const HT = 9;
const SEMI = 59;
const COLON = 58;

/** Largest response head (status line + header lines) accepted; beyond it: protocol error. */
export const MAX_HEAD_BYTES = 64 * 1024;
/** Largest chunk-size line (size + extensions) and trailer section accepted. */
const MAX_CHUNK_LINE = 4 * 1024;
const MAX_TRAILER_BYTES = 64 * 1024;
/** Chunk sizes above 2^48 are nonsense; refusing them keeps the arithmetic exact. */
const MAX_CHUNK_SIZE_BEFORE_DIGIT = 2 ** 44;

const HEAD_END = Buffer.from('\r\n\r\n', 'latin1');
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
// field-value = *( VCHAR / obs-text / SP / HTAB ): any other control octet is malformed. One scan
// of the whole head for those (a single character class: irregexp's fastest loop) replaces a
// regex per value; CR and LF, which may only end a line, are looked for per line with indexOf.
const BAD_CONTROL = /[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]/;
const DIGITS = /^[0-9]{1,15}$/;
const HEX = new Int8Array(256).fill(-1);
for (let i = 0; i < 10; i++) HEX[48 + i] = i;
for (let i = 0; i < 6; i++) HEX[65 + i] = HEX[97 + i] = 10 + i;

const S_HEAD = 0;
const S_BODY_CL = 1;
const S_BODY_EOF = 2;
const S_CHUNK_SIZE = 3;
const S_CHUNK_EXT = 4;
const S_CHUNK_SIZE_LF = 5;
const S_CHUNK_DATA = 6;
const S_CHUNK_DATA_CR = 7;
const S_CHUNK_DATA_LF = 8;
const S_TRAILER_START = 9;
const S_TRAILER_LINE = 10;
const S_TRAILER_LINE_LF = 11;
const S_TRAILER_END_LF = 12;
const S_DONE = 13;
const S_ERROR = 14;

const HEAD_INTERIM = 1;
const HEAD_FINAL = 2;
const NO_HEADERS: readonly string[] = Object.freeze([]);

/** Body framing of a parsed head. */
const FRAME_LENGTH = 0;
const FRAME_CHUNKED = 1;
const FRAME_EOF = 2;

/** What a response head says, whatever request it answers (HEAD or not is applied after). Shared
 * between the responses of a connection that carry the same head bytes: never mutated. */
interface ParsedHead {
  readonly status: number;
  /** Lower-case names, hop-by-hop fields removed; frozen. */
  readonly headers: readonly string[];
  readonly interim: boolean;
  readonly keepAlive: boolean;
  readonly keepAliveTimeoutMs: number;
  readonly framing: number;
  /** Content-Length, or -1. */
  readonly length: number;
}

/** Receives what the parser finds. Returning false stops `execute` right after that input. */
export interface ResponseHandler {
  /** headers may be shared with other responses of the connection: read, never change them. */
  onResponseHead(status: number, headers: readonly string[]): boolean;
  onResponseData(chunk: Buffer): boolean;
  onResponseComplete(): void;
}

export class ResponseParser {
  /** Why the last `execute` returned -1. */
  error = '';
  /** After a final head: the connection may carry another request once this response is done. */
  keepAlive = false;
  /** `Keep-Alive: timeout=N` from the last head, in ms; 0 when absent. */
  keepAliveTimeoutMs = 0;
  private state = S_DONE;
  private headRequest = false;
  private partial: Buffer | null = null;
  private remaining = 0;
  private digits = 0;
  private lineBytes = 0;
  private status = 0;
  private headers: readonly string[] = NO_HEADERS;
  /** The last head parsed on this connection, byte for byte, and what it parsed to. An upstream
   * answers most requests with the same head (its Date changes once a second), so comparing the
   * bytes (one native call) replaces decoding and parsing them (about 1 µs) for most responses. */
  private lastHeadBytes: Buffer | null = null;
  private lastHead: ParsedHead | null = null;

  constructor(private readonly handler: ResponseHandler) {}

  /** Prepares for the response to a new request; HEAD responses never have a body. */
  reset(headRequest: boolean): void {
    this.state = S_HEAD;
    this.headRequest = headRequest;
    this.partial = null;
    this.error = '';
    this.keepAlive = false;
    this.keepAliveTimeoutMs = 0;
  }

  /** The response has been read whole. */
  get complete(): boolean {
    return this.state === S_DONE;
  }

  /**
   * Parses `buf`. Returns the offset where it stopped: buf.length when all was consumed, less
   * when the handler returned false or the response completed (bytes after a complete response
   * belong to no request), or -1 on a malformed response (see `error`).
   */
  execute(buf: Buffer): number {
    const len = buf.length;
    const h = this.handler;
    let off = 0;
    while (off < len) {
      switch (this.state) {
        case S_HEAD: {
          off = this.readHead(buf, off);
          if (off < 0) return -1;
          if (this.state === S_HEAD) continue; // partial head (off === len) or an interim 1xx
          const headers = this.headers;
          this.headers = NO_HEADERS;
          if (!h.onResponseHead(this.status, headers)) return off;
          if (this.state === S_DONE) {
            h.onResponseComplete();
            return off;
          }
          continue;
        }
        case S_BODY_CL: {
          const n = Math.min(this.remaining, len - off);
          const chunk = buf.subarray(off, off + n);
          off += n;
          this.remaining -= n;
          if (this.remaining === 0) {
            this.state = S_DONE;
            // Complete whatever the handler answers: no more input is needed.
            h.onResponseData(chunk);
            h.onResponseComplete();
            return off;
          }
          if (!h.onResponseData(chunk)) return off;
          continue;
        }
        case S_BODY_EOF: {
          const chunk = off === 0 ? buf : buf.subarray(off);
          off = len;
          if (!h.onResponseData(chunk)) return off;
          continue;
        }
        case S_CHUNK_SIZE: {
          const c = buf[off++];
          const v = HEX[c];
          if (v >= 0) {
            if (this.remaining >= MAX_CHUNK_SIZE_BEFORE_DIGIT) return this.fail('chunk size too large');
            this.remaining = this.remaining * 16 + v;
            this.digits++;
          } else if (this.digits === 0) {
            return this.fail('bad chunk size');
          } else if (c === CR) {
            this.state = S_CHUNK_SIZE_LF;
          } else if (c === SEMI || c === SP || c === HT) {
            this.state = S_CHUNK_EXT; // chunk-ext (and BWS before it) is read and ignored
            this.lineBytes = 1;
          } else {
            return this.fail('bad chunk size');
          }
          continue;
        }
        case S_CHUNK_EXT: {
          const i = buf.indexOf(CR, off);
          const stop = i < 0 ? len : i;
          for (let j = off; j < stop; j++) {
            const c = buf[j];
            if ((c < SP && c !== HT) || c === 127) return this.fail('bad chunk extension');
          }
          this.lineBytes += stop - off;
          if (this.lineBytes > MAX_CHUNK_LINE) return this.fail('chunk extension too long');
          off = stop;
          if (i >= 0) {
            off++;
            this.state = S_CHUNK_SIZE_LF;
          }
          continue;
        }
        case S_CHUNK_SIZE_LF: {
          if (buf[off++] !== LF) return this.fail('bad chunk size line');
          if (this.remaining === 0) {
            this.state = S_TRAILER_START;
            this.lineBytes = 0;
          } else {
            this.state = S_CHUNK_DATA;
          }
          continue;
        }
        case S_CHUNK_DATA: {
          const n = Math.min(this.remaining, len - off);
          const chunk = buf.subarray(off, off + n);
          off += n;
          this.remaining -= n;
          if (this.remaining === 0) this.state = S_CHUNK_DATA_CR;
          if (!h.onResponseData(chunk)) return off;
          continue;
        }
        case S_CHUNK_DATA_CR:
          if (buf[off++] !== CR) return this.fail('chunk data longer than its size');
          this.state = S_CHUNK_DATA_LF;
          continue;
        case S_CHUNK_DATA_LF:
          if (buf[off++] !== LF) return this.fail('chunk data longer than its size');
          this.state = S_CHUNK_SIZE;
          this.digits = 0;
          continue;
        case S_TRAILER_START: {
          // Trailer fields are read and dropped: the edge cannot forward them.
          const c = buf[off++];
          if (c === CR) {
            this.state = S_TRAILER_END_LF;
          } else if (c === LF || c === SP || c === HT || c === COLON) {
            return this.fail('bad trailer line');
          } else {
            this.state = S_TRAILER_LINE;
            if (++this.lineBytes > MAX_TRAILER_BYTES) return this.fail('trailers too large');
          }
          continue;
        }
        case S_TRAILER_LINE: {
          const i = buf.indexOf(CR, off);
          const stop = i < 0 ? len : i;
          for (let j = off; j < stop; j++) {
            const c = buf[j];
            if ((c < SP && c !== HT) || c === 127) return this.fail('bad trailer line');
          }
          this.lineBytes += stop - off;
          if (this.lineBytes > MAX_TRAILER_BYTES) return this.fail('trailers too large');
          off = stop;
          if (i >= 0) {
            off++;
            this.state = S_TRAILER_LINE_LF;
          }
          continue;
        }
        case S_TRAILER_LINE_LF:
          if (buf[off++] !== LF) return this.fail('bad trailer line');
          this.state = S_TRAILER_START;
          continue;
        case S_TRAILER_END_LF:
          if (buf[off++] !== LF) return this.fail('bad end of chunked body');
          this.state = S_DONE;
          h.onResponseComplete();
          return off;
        case S_DONE:
          return off;
        default:
          return -1;
      }
    }
    return off;
  }

  /** The server closed the connection: true when that legitimately ends the response
   * (a body delimited by close), false when the response is cut short. */
  finish(): boolean {
    if (this.state !== S_BODY_EOF) return this.state === S_DONE;
    this.state = S_DONE;
    return true;
  }

  private fail(reason: string): number {
    this.error = reason;
    this.state = S_ERROR;
    this.partial = null;
    return -1;
  }

  /** Finds the end of the head (possibly across calls), parses it and returns the offset after it. */
  private readHead(buf: Buffer, off: number): number {
    const len = buf.length;
    let text: string;
    let next: number;
    const prev = this.partial;
    if (prev === null) {
      const last = this.lastHeadBytes;
      if (last !== null) {
        // The same head as last time, ended by CRLFCRLF right after it: no search, no parse.
        const end = off + last.length;
        if (end + 4 <= len && buf[end] === CR && buf[end + 1] === LF && buf[end + 2] === CR && buf[end + 3] === LF && buf.compare(last, 0, last.length, off, end) === 0) {
          return this.applyHead(this.lastHead!) < 0 ? -1 : end + 4;
        }
      }
      const i = buf.indexOf(HEAD_END, off);
      if (i < 0) {
        if (len - off > MAX_HEAD_BYTES) return this.fail('response head too large');
        this.partial = Buffer.from(buf.subarray(off)); // copy: the caller may reuse buf
        return len;
      }
      if (i + 4 - off > MAX_HEAD_BYTES) return this.fail('response head too large');
      text = buf.toString('utf8', off, i);
      next = i + 4;
      const parsed = this.parseHead(text);
      if (parsed === null) return -1;
      this.lastHeadBytes = Buffer.from(buf.subarray(off, i)); // copy: buf is reused by the next read
      this.lastHead = parsed;
      return this.applyHead(parsed) < 0 ? -1 : next;
    } else {
      // Only as many bytes as a head can still hold are joined, so a large body is never copied.
      const take = Math.min(len - off, MAX_HEAD_BYTES + 4 - prev.length);
      const joined = Buffer.concat([prev, buf.subarray(off, off + take)]);
      const i = joined.indexOf(HEAD_END, Math.max(0, prev.length - 3));
      if (i < 0) {
        if (joined.length > MAX_HEAD_BYTES) return this.fail('response head too large');
        this.partial = joined;
        return len;
      }
      this.partial = null;
      text = joined.toString('utf8', 0, i);
      next = off + i + 4 - prev.length;
    }
    const parsed = this.parseHead(text);
    if (parsed === null || this.applyHead(parsed) < 0) return -1;
    return next;
  }

  /** Sets up status, headers and body framing from a parsed head for the current request.
   * Returns -1, HEAD_INTERIM or HEAD_FINAL. */
  private applyHead(p: ParsedHead): number {
    if (p.interim) return HEAD_INTERIM;
    let headers = p.headers;
    this.status = p.status;
    this.keepAliveTimeoutMs = p.keepAliveTimeoutMs;
    this.keepAlive = p.keepAlive;
    const status = p.status;
    if (this.headRequest || status === 204 || status === 304) {
      this.state = S_DONE;
    } else if (p.framing === FRAME_CHUNKED) {
      if (p.length >= 0) {
        // RFC 9112 §6.3: Transfer-Encoding overrides Content-Length; such a message may be an
        // attempt at smuggling, so the connection is closed after it.
        headers = stripNamed(headers, ['content-length']);
        this.keepAlive = false;
      }
      this.state = S_CHUNK_SIZE;
      this.remaining = 0;
      this.digits = 0;
    } else if (p.framing === FRAME_EOF) {
      this.state = S_BODY_EOF;
      this.keepAlive = false;
    } else if (p.length > 0) {
      this.state = S_BODY_CL;
      this.remaining = p.length;
    } else {
      this.state = S_DONE;
    }
    this.headers = headers;
    return HEAD_FINAL;
  }

  /** Parses status line and fields; null when malformed (see `error`). */
  private parseHead(s: string): ParsedHead | null {
    let lineEnd = s.indexOf('\r\n');
    if (lineEnd < 0) lineEnd = s.length;
    // status-line = HTTP-version SP status-code SP [ reason-phrase ]
    if (lineEnd < 12 || !s.startsWith('HTTP/1.') || s.charCodeAt(8) !== SP) return this.malformed('bad status line');
    const minor = s.charCodeAt(7) - 48;
    const d0 = s.charCodeAt(9) - 48;
    const d1 = s.charCodeAt(10) - 48;
    const d2 = s.charCodeAt(11) - 48;
    if ((minor !== 0 && minor !== 1) || d0 < 1 || d0 > 5 || d1 < 0 || d1 > 9 || d2 < 0 || d2 > 9) {
      return this.malformed('bad status line');
    }
    if (lineEnd > 12 && s.charCodeAt(12) !== SP) return this.malformed('bad status line');
    if (strayLineBreak(s, 0, lineEnd) >= 0) return this.malformed('bad status line');
    const bad = BAD_CONTROL.exec(s);
    if (bad !== null) return this.malformed(badOctetIn(s, bad.index, lineEnd));
    const status = d0 * 100 + d1 * 10 + d2;

    const headers: string[] = [];
    let cl = -1;
    let chunked = false;
    let close = false;
    let keepAlive = false;
    let kaTimeout = 0;
    let dropNamed: string[] | null = null;
    let pos = lineEnd + 2;
    while (pos < s.length) {
      let end = s.indexOf('\r\n', pos);
      if (end < 0) end = s.length;
      const colon = s.indexOf(':', pos);
      if (colon <= pos || colon > end) return this.malformed('bad header line');
      const stray = strayLineBreak(s, pos, end);
      if (stray >= 0) return this.malformed(stray < colon ? 'bad header name' : 'bad header value');
      const name = s.slice(pos, colon);
      // A line starting with SP/HT (obs-fold) fails here too: RFC 9112 lets a proxy reject it.
      if (!TOKEN.test(name)) return this.malformed('bad header name');
      let vs = colon + 1;
      let ve = end;
      let c = s.charCodeAt(vs);
      while (vs < ve && (c === SP || c === HT)) c = s.charCodeAt(++vs);
      c = s.charCodeAt(ve - 1);
      while (ve > vs && (c === SP || c === HT)) c = s.charCodeAt(--ve - 1);
      const value = s.slice(vs, ve);
      pos = end + 2;
      const lname = name.toLowerCase();
      switch (lname) {
        case 'content-length': {
          if (!DIGITS.test(value)) return this.malformed('bad content-length');
          const n = Number(value);
          if (cl >= 0) {
            // RFC 9112 §6.3: identical repeats may be accepted; differing ones are fatal.
            if (n !== cl) return this.malformed('conflicting content-length');
            continue;
          }
          cl = n;
          break;
        }
        case 'transfer-encoding':
          // Only `chunked` is supported; any other coding (or a repeat) cannot be forwarded.
          if (chunked || value.toLowerCase() !== 'chunked') return this.malformed('unsupported transfer-encoding');
          chunked = true;
          continue;
        case 'connection':
          for (const raw of value.split(',')) {
            const t = raw.trim().toLowerCase();
            if (t === 'close') close = true;
            else if (t === 'keep-alive') keepAlive = true;
            else if (t !== '') (dropNamed ??= []).push(t);
          }
          continue;
        case 'keep-alive': {
          const m = /(?:^|[\s,])timeout\s*=\s*(\d{1,9})/i.exec(value);
          if (m !== null) kaTimeout = Number(m[1]) * 1000;
          continue;
        }
        case 'te':
        case 'trailer':
        case 'upgrade':
          continue;
        default:
          if (lname.charCodeAt(0) === 112 && lname.startsWith('proxy-')) continue;
      }
      headers.push(lname, value);
    }

    if (status < 200) {
      // Interim responses (100 Continue, 103 Early Hints) are skipped; ward never asks to upgrade.
      if (status === 101) return this.malformed('unexpected 101 Switching Protocols');
      return { status, headers: NO_HEADERS, interim: true, keepAlive: false, keepAliveTimeoutMs: 0, framing: FRAME_LENGTH, length: -1 };
    }
    // RFC 9112 §6.1: Transfer-Encoding in an HTTP/1.0 message means its framing is faulty.
    if (chunked && minor === 0) return this.malformed('transfer-encoding in an HTTP/1.0 response');
    const kept = dropNamed !== null ? stripNamed(headers, dropNamed) : headers; // RFC 9110 §7.6.1
    return {
      status,
      headers: Object.freeze(kept),
      interim: false,
      // A body delimited by close (no length, not chunked) ends the connection; applyHead says so.
      keepAlive: !close && (minor === 1 || keepAlive),
      keepAliveTimeoutMs: kaTimeout,
      framing: chunked ? FRAME_CHUNKED : cl >= 0 ? FRAME_LENGTH : FRAME_EOF,
      length: cl,
    };
  }

  private malformed(reason: string): null {
    this.fail(reason);
    return null;
  }
}

/** The first CR or LF in s[from, end) (a line's content, its CRLF excluded), or -1. */
function strayLineBreak(s: string, from: number, end: number): number {
  const cr = s.indexOf('\r', from);
  if (cr >= 0 && cr < end) return cr;
  const lf = s.indexOf('\n', from);
  return lf >= 0 && lf < end ? lf : -1;
}

/** Where a control octet found by BAD_CONTROL sits: status line, a field's name, or its value. */
function badOctetIn(s: string, at: number, statusLineEnd: number): string {
  if (at < statusLineEnd) return 'bad status line';
  const lineStart = s.lastIndexOf('\r\n', at - 1) + 2;
  const colon = s.indexOf(':', lineStart);
  return colon < 0 || colon > at ? 'bad header name' : 'bad header value';
}

function stripNamed(headers: readonly string[], names: readonly string[]): string[] {
  const out: string[] = [];
  for (let r = 0; r < headers.length; r += 2) {
    if (names.includes(headers[r])) continue;
    out.push(headers[r], headers[r + 1]);
  }
  return out;
}
