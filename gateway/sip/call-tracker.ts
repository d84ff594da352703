// The calls of one SIP-over-WebSocket session, seen from ward between a client UA and its
// upstream proxy. Only calls the client places (its initial INVITEs) hold a lease of the tenant's
// call pool: a call into the client was placed, and is counted, by someone else.
//
// A lease ends when the call provably ends, never on the client's say-so alone, so a client cannot
// free its lease while its call goes on:
//   - a BYE from the upstream, or a client BYE that carries the dialog's tags (RFC 3261 §12.2.1.1);
//   - a 2xx answer from the upstream to any client BYE of the call;
//   - a non-2xx final answer to the initial INVITE (busy, declined, 487 after a CANCEL...);
//   - 32 s (Timer B, 64*T1) after a client CANCEL if no 2xx arrived: a 200 that crosses the CANCEL
//     keeps the call counted;
//   - the route's max_call_s, so a lost BYE cannot hold the pool forever;
//   - the session's end.

import type { Lease } from '../store/types.js';
import type { SipRequest, SipResponse } from './sip-message.js';

export type CallEnd = 'bye' | 'rejected' | 'cancel' | 'max_duration' | 'session_end';

export interface TrackedCall {
  readonly callId: string;
  /** CSeq number of the INVITE that took the lease: answers to it decide the call's fate. */
  readonly cseq: number;
  readonly fromTag: string | undefined;
  readonly lease: Lease | undefined;
  readonly startedMs: number;
  /** To tags of the 2xx answers: the dialogs this call established. */
  readonly remoteTags: Set<string>;
  cancelledMs: number;
}

/** What to do with a client message, before any lease is taken. */
export type ClientStep = 'forward' | 'charge' | 'absorb';

/** RFC 3261 Timer B / Timer H: 64 * T1 (500 ms). */
export const TIMER_B_MS = 32_000;
/** Caps per session, so neither side can grow ward's memory by inventing Call-IDs. */
const MAX_CALLS = 1024;
const MAX_INCOMING = 1024;
const MAX_REFUSED = 256;

export class CallTracker {
  private readonly calls = new Map<string, TrackedCall>();
  /** Call-IDs of calls the upstream placed to the client, with when they began. */
  private readonly incoming = new Map<string, number>();
  /** `callId cseq` of INVITEs ward answered itself → expiry: their ACKs stop at ward. */
  private readonly refused = new Map<string, number>();

  constructor(private readonly onEnd: (call: TrackedCall, why: CallEnd) => void) {}

  get size(): number {
    return this.calls.size;
  }

  get full(): boolean {
    return this.calls.size >= MAX_CALLS;
  }

  fromClient(m: SipRequest | SipResponse, nowMs: number): ClientStep {
    if (m.kind === 'response') {
      // The client answering a call placed to it: a final refusal ends that incoming call.
      if (m.cseqMethod === 'INVITE' && m.status >= 300) this.incoming.delete(m.callId);
      return 'forward';
    }
    const call = this.calls.get(m.callId);
    switch (m.method) {
      case 'INVITE':
        if (call !== undefined) return 'forward'; // retransmission, re-INVITE, or retry with credentials
        // A tagged INVITE is in-dialog only for a dialog ward saw begin; anything else is charged as new.
        if (m.toTag !== undefined && this.incoming.has(m.callId)) return 'forward';
        return 'charge';
      case 'ACK': {
        const key = `${m.callId} ${m.cseq}`;
        if (this.refused.delete(key)) return 'absorb';
        return 'forward';
      }
      case 'BYE':
        this.incoming.delete(m.callId);
        if (call !== undefined && m.toTag !== undefined && call.remoteTags.has(m.toTag) && m.fromTag === call.fromTag) {
          this.end(call, 'bye');
        }
        return 'forward';
      case 'CANCEL':
        if (call !== undefined && call.remoteTags.size === 0 && call.cancelledMs === 0) call.cancelledMs = nowMs;
        return 'forward';
      default:
        return 'forward';
    }
  }

  /** An INVITE the store admitted: it holds `lease` until the call ends. */
  started(m: SipRequest, lease: Lease | undefined, nowMs: number): void {
    const call: TrackedCall = { callId: m.callId, cseq: m.cseq, fromTag: m.fromTag, lease, startedMs: nowMs, remoteTags: new Set(), cancelledMs: 0 };
    this.calls.set(m.callId, call);
  }

  /** An INVITE ward answered itself: the ACK for that answer is not forwarded. */
  refusedInvite(m: SipRequest, nowMs: number): void {
    if (this.refused.size >= MAX_REFUSED) this.refused.delete(this.refused.keys().next().value!);
    this.refused.set(`${m.callId} ${m.cseq}`, nowMs + TIMER_B_MS);
  }

  fromUpstream(m: SipRequest | SipResponse, nowMs: number): void {
    const call = this.calls.get(m.callId);
    if (m.kind === 'response') {
      if (call === undefined) return;
      if (m.cseqMethod === 'INVITE' && m.cseq === call.cseq) {
        if (m.status >= 200 && m.status < 300) {
          if (m.toTag !== undefined && call.remoteTags.size < 16) call.remoteTags.add(m.toTag);
        } else if (m.status >= 300 && call.remoteTags.size === 0) {
          this.end(call, call.cancelledMs > 0 ? 'cancel' : 'rejected');
        }
      } else if (m.cseqMethod === 'BYE' && m.status >= 200 && m.status < 300) {
        this.end(call, 'bye');
      }
      return;
    }
    switch (m.method) {
      case 'INVITE':
        if (m.toTag === undefined && call === undefined) {
          if (this.incoming.size >= MAX_INCOMING) this.incoming.delete(this.incoming.keys().next().value!);
          this.incoming.set(m.callId, nowMs);
        }
        return;
      case 'BYE':
        this.incoming.delete(m.callId);
        if (call !== undefined) this.end(call, 'bye');
        return;
      case 'CANCEL':
        this.incoming.delete(m.callId);
        return;
    }
  }

  /** Timers: max call duration, CANCELs never answered, stale refusals and incoming calls. */
  sweep(nowMs: number, maxCallMs: number): void {
    for (const call of this.calls.values()) {
      if (maxCallMs > 0 && nowMs - call.startedMs >= maxCallMs) this.end(call, 'max_duration');
      else if (call.cancelledMs > 0 && call.remoteTags.size === 0 && nowMs - call.cancelledMs >= TIMER_B_MS) this.end(call, 'cancel');
    }
    for (const [key, expiry] of this.refused) if (expiry <= nowMs) this.refused.delete(key);
    if (maxCallMs > 0) for (const [id, t] of this.incoming) if (nowMs - t >= maxCallMs) this.incoming.delete(id);
  }

  /** The session ended: every call ends with it. */
  endAll(): void {
    for (const call of this.calls.values()) this.end(call, 'session_end');
    this.incoming.clear();
    this.refused.clear();
  }

  private end(call: TrackedCall, why: CallEnd): void {
    if (this.calls.get(call.callId) !== call) return;
    this.calls.delete(call.callId);
    this.onEnd(call, why);
  }
}
