// Reads just enough of a SIP message (RFC 3261 §7) to track calls: the start line, Call-ID, CSeq,
// the To tag, and the raw Via/From/To/Call-ID/CSeq values ward needs to answer an INVITE itself.
// Over WebSocket each frame carries exactly one whole message (RFC 7118 §5.1), so a message that
// does not parse is dropped or passed alone; it can never shift the framing of the next one.
//
// The parser is strict where leniency would let a request slip past the call limit: a request
// with two Call-IDs, two CSeqs, or a CSeq method that is not the request's method is malformed,
// since another SIP stack could read it differently from ward.

export interface SipRequest {
  readonly kind: 'request';
  /** As sent (SIP methods are case-sensitive: `INVITE`, not `invite`). */
  readonly method: string;
  readonly callId: string;
  readonly cseq: number;
  readonly cseqMethod: string;
  /** The To header's tag parameter: present on in-dialog requests. */
  readonly toTag: string | undefined;
  readonly fromTag: string | undefined;
  /** Raw header values, in order, for building a response. */
  readonly via: readonly string[];
  readonly from: string;
  readonly to: string;
  readonly cseqRaw: string;
}

export interface SipResponse {
  readonly kind: 'response';
  readonly status: number;
  readonly callId: string;
  readonly cseq: number;
  readonly cseqMethod: string;
  readonly toTag: string | undefined;
}

/** CRLF-only frames: keep-alives (RFC 5626 §4.4.1 style), not SIP messages. */
export interface SipKeepAlive {
  readonly kind: 'keepalive';
}

export type SipMessage = SipRequest | SipResponse | SipKeepAlive;

/** Why a message is malformed, for logs and tests. */
export type SipParseError =
  | 'no_header_end'
  | 'bad_start_line'
  | 'missing_call_id'
  | 'duplicate_call_id'
  | 'bad_cseq'
  | 'duplicate_cseq'
  | 'cseq_method_mismatch'
  | 'missing_from'
  | 'missing_to'
  | 'duplicate_to'
  | 'missing_via'
  | 'bad_header';

export type SipParse = { readonly ok: true; readonly msg: SipMessage } | { readonly ok: false; readonly error: SipParseError };

const KEEPALIVE: SipParse = Object.freeze({ ok: true, msg: Object.freeze({ kind: 'keepalive' }) });
const fail = (error: SipParseError): SipParse => ({ ok: false, error });

// RFC 3261 §7.3.3 compact forms of the headers ward reads.
const COMPACT: Record<string, string> = { i: 'call-id', t: 'to', f: 'from', v: 'via' };

const TOKEN = /^[A-Za-z0-9.!%*_+`'~-]+$/;
const REQUEST_LINE = /^([A-Za-z0-9.!%*_+`'~-]+) (\S+) SIP\/2\.0$/i;
const STATUS_LINE = /^SIP\/2\.0 ([1-6][0-9]{2})(?: .*)?$/i;
const CSEQ = /^([0-9]{1,10})[ \t]+([A-Za-z0-9.!%*_+`'~-]+)$/;
/** Headers above this size are not SIP a UA sends: reading them costs more than refusing them. */
const MAX_HEAD_BYTES = 64 * 1024;

/** Parses one SIP message from a WebSocket frame (text or binary). Never throws. */
export function parseSip(frame: Uint8Array): SipParse {
  if (isBlank(frame)) return KEEPALIVE;
  // RFC 3261 §7.5: leading CRLFs before the start line are ignored.
  let start = 0;
  while (frame[start] === 13 || frame[start] === 10) start++;
  const end = indexOfBlankLine(frame, start);
  if (end < 0) return fail('no_header_end');
  if (end - start > MAX_HEAD_BYTES) return fail('bad_header');
  const head = Buffer.from(frame.buffer, frame.byteOffset + start, end - start).toString('utf8');
  const lines = unfold(head.split(/\r?\n/));
  const startLine = lines[0]!;

  let callId: string | undefined;
  let cseqRaw: string | undefined;
  let from: string | undefined;
  let to: string | undefined;
  const via: string[] = [];
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i]!;
    const colon = line.indexOf(':');
    if (colon <= 0) return fail('bad_header');
    // HCOLON allows whitespace before the colon (RFC 3261 §25.1).
    let name = line.slice(0, colon).trimEnd().toLowerCase();
    if (!TOKEN.test(name)) return fail('bad_header');
    name = COMPACT[name] ?? name;
    const value = line.slice(colon + 1).trim();
    switch (name) {
      case 'call-id':
        if (callId !== undefined) return fail('duplicate_call_id');
        callId = value;
        break;
      case 'cseq':
        if (cseqRaw !== undefined) return fail('duplicate_cseq');
        cseqRaw = value;
        break;
      case 'from':
        from = value;
        break;
      case 'to':
        if (to !== undefined) return fail('duplicate_to');
        to = value;
        break;
      case 'via':
        via.push(value);
        break;
    }
  }
  if (!callId) return fail('missing_call_id');
  if (cseqRaw === undefined) return fail('bad_cseq');
  const cs = CSEQ.exec(cseqRaw);
  if (cs === null) return fail('bad_cseq');
  const cseq = Number(cs[1]);
  // RFC 3261 §8.1.1.5: the sequence number is below 2**31.
  if (cseq >= 2 ** 31) return fail('bad_cseq');
  const cseqMethod = cs[2]!;
  if (to === undefined) return fail('missing_to');
  const toTag = tagOf(to);

  const req = REQUEST_LINE.exec(startLine);
  if (req !== null) {
    const method = req[1]!;
    if (method !== cseqMethod) return fail('cseq_method_mismatch');
    if (from === undefined) return fail('missing_from');
    if (via.length === 0) return fail('missing_via');
    return { ok: true, msg: { kind: 'request', method, callId, cseq, cseqMethod, toTag, fromTag: tagOf(from), via, from, to, cseqRaw } };
  }
  const res = STATUS_LINE.exec(startLine);
  if (res !== null) return { ok: true, msg: { kind: 'response', status: Number(res[1]), callId, cseq, cseqMethod, toTag } };
  return fail('bad_start_line');
}

function indexOfBlankLine(b: Uint8Array, from: number): number {
  // The header section ends at the first empty line: CRLF CRLF (or LF LF from lenient senders).
  for (let i = from; i < b.length - 1; i++) {
    if (b[i] !== 10) continue;
    if (b[i + 1] === 10) return i;
    if (b[i + 1] === 13 && b[i + 2] === 10) return i;
  }
  return -1;
}

function isBlank(b: Uint8Array): boolean {
  for (let i = 0; i < b.length; i++) if (b[i] !== 13 && b[i] !== 10 && b[i] !== 32 && b[i] !== 9) return false;
  return true;
}

/** Joins folded header lines (a line starting with SP/HTAB continues the previous one). */
function unfold(lines: string[]): string[] {
  const out: string[] = [];
  for (const l of lines) {
    if ((l.startsWith(' ') || l.startsWith('\t')) && out.length > 1) out[out.length - 1] += ' ' + l.trim();
    else out.push(l);
  }
  // A trailing CR left by a bare-LF split is not part of the value.
  return out.map((l) => (l.endsWith('\r') ? l.slice(0, -1) : l));
}

/**
 * The `tag` parameter of a To/From value: `"Bob" <sip:bob@x;transport=ws>;tag=abc`. Parameters
 * inside `<...>` belong to the URI; a quoted display name may contain `<`, `>` or `;`.
 */
export function tagOf(value: string): string | undefined {
  let i = 0;
  let params = -1;
  let angle = false;
  for (; i < value.length; i++) {
    const c = value[i];
    if (c === '"' && !angle) {
      for (i++; i < value.length && value[i] !== '"'; i++) if (value[i] === '\\') i++;
    } else if (c === '<') angle = true;
    else if (c === '>') {
      params = value.indexOf(';', i);
      break;
    } else if (c === ';' && !angle) {
      params = i;
      break;
    }
  }
  if (params < 0) return undefined;
  for (const p of value.slice(params + 1).split(';')) {
    const eq = p.indexOf('=');
    if (eq < 0) continue;
    if (p.slice(0, eq).trim().toLowerCase() === 'tag') {
      const tag = p.slice(eq + 1).trim();
      return tag.length > 0 ? tag : undefined;
    }
  }
  return undefined;
}
