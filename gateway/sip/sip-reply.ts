// The answer ward sends itself to an INVITE it refuses, built per RFC 3261 §8.2.6: the Via
// headers, From, To, Call-ID and CSeq copied from the request, a To tag added (a final response
// from a UAS carries one), and Retry-After so the UA knows when to try again.

import { randomBytes } from 'node:crypto';
import type { SipRequest } from './sip-message.js';

export interface SipRefusal {
  readonly status: number;
  /** Reason phrase naming the limit, e.g. `Call Limit Reached`. */
  readonly reason: string;
  readonly retryAfterS: number;
  /** Free text for the Warning header (RFC 3261 §20.43, code 399: miscellaneous). */
  readonly warning: string;
}

export function refusalResponse(req: SipRequest, r: SipRefusal): string {
  const to = req.toTag === undefined ? `${req.to};tag=${randomBytes(8).toString('hex')}` : req.to;
  let out = `SIP/2.0 ${r.status} ${r.reason}\r\n`;
  for (const v of req.via) out += `Via: ${v}\r\n`;
  out += `From: ${req.from}\r\n`;
  out += `To: ${to}\r\n`;
  out += `Call-ID: ${req.callId}\r\n`;
  out += `CSeq: ${req.cseqRaw}\r\n`;
  out += `Retry-After: ${r.retryAfterS}\r\n`;
  out += `Warning: 399 ward "${r.warning.replace(/["\\]/g, '')}"\r\n`;
  out += 'Server: ward\r\n';
  out += 'Content-Length: 0\r\n\r\n';
  return out;
}
