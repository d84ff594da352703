// The SIP side of one WebSocket session: reads each message, takes a call-pool lease for each
// call the client places, answers INVITEs over the limit itself, and frees leases as calls end.
//
// Malformed messages: one from the client is dropped (not forwarded) and counted, because a
// message ward cannot read is one whose INVITE it cannot count, and the upstream's parser might
// read it differently; the session goes on, since each WebSocket message is one SIP message.
// One from the upstream is passed to the client unchanged and counted: the upstream is trusted
// and the client's stack decides what to do with it.

import type { Logger } from 'pino';
import type { Cell } from '../metrics/hot-counters.js';
import type { Admission, AdmitPlan, LimitStore } from '../store/types.js';
import { CallTracker, type CallEnd, type TrackedCall } from './call-tracker.js';
import { parseSip, type SipRequest } from './sip-message.js';
import { refusalResponse, type SipRefusal } from './sip-reply.js';

export type SipDecision =
  | { readonly act: 'forward' }
  | { readonly act: 'drop'; readonly why: 'malformed' | 'absorbed' }
  | { readonly act: 'reply'; readonly text: string };

export interface SipGuardOptions {
  readonly store: LimitStore;
  /** Lease plan of the route's call_pool for this tenant (enforce:false = shadow); undefined = no call limit. */
  readonly callPlan: AdmitPlan | undefined;
  readonly poolName: string;
  /** 0 = no maximum. */
  readonly maxCallMs: number;
  readonly cells: { readonly callsInProgress: Cell; readonly callsRefused: Cell; readonly sipMalformed: Cell };
  readonly shadow: (reason: string) => void;
  readonly log: Logger;
}

const FORWARD: SipDecision = Object.freeze({ act: 'forward' });
const MALFORMED: SipDecision = Object.freeze({ act: 'drop', why: 'malformed' });
const ABSORBED: SipDecision = Object.freeze({ act: 'drop', why: 'absorbed' });
/** Seconds a refused UA should wait: calls last minutes, so a slot rarely frees sooner. */
export const CALL_RETRY_AFTER_S = 5;

export class SipGuard {
  private readonly tracker: CallTracker;
  private closed = false;

  constructor(private readonly o: SipGuardOptions) {
    this.tracker = new CallTracker((call, why) => this.ended(call, why));
  }

  /** Calls holding a lease now. */
  get calls(): number {
    return this.tracker.size;
  }

  /** A client message, in order. Returns a Promise only while a lease is being taken. */
  fromClient(frame: Uint8Array, nowMs: number): SipDecision | Promise<SipDecision> {
    const p = parseSip(frame);
    if (!p.ok) {
      this.o.cells.sipMalformed.n++;
      this.o.log.debug({ sip_error: p.error }, 'malformed SIP message from client dropped');
      return MALFORMED;
    }
    const m = p.msg;
    if (m.kind === 'keepalive') return FORWARD;
    if (this.o.callPlan === undefined) return FORWARD;
    const step = this.tracker.fromClient(m, nowMs);
    if (step === 'forward') return FORWARD;
    if (step === 'absorb') return ABSORBED;
    return this.charge(m as SipRequest, nowMs);
  }

  /** An upstream message: tracked, always passed on. */
  fromUpstream(frame: Uint8Array, nowMs: number): void {
    const p = parseSip(frame);
    if (!p.ok) {
      this.o.cells.sipMalformed.n++;
      return;
    }
    if (p.msg.kind !== 'keepalive' && this.o.callPlan !== undefined) this.tracker.fromUpstream(p.msg, nowMs);
  }

  sweep(nowMs: number): void {
    this.tracker.sweep(nowMs, this.o.maxCallMs);
  }

  /** The session ended: free every lease, now and for admissions still on their way. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.tracker.endAll();
  }

  private charge(m: SipRequest, nowMs: number): SipDecision | Promise<SipDecision> {
    if (this.tracker.full) return this.refuse(m, nowMs, 'session call table full');
    let a: Admission | Promise<Admission>;
    try {
      a = this.o.store.admit(this.o.callPlan!, nowMs);
    } catch (err) {
      return this.failOpen(m, nowMs, err);
    }
    if (a instanceof Promise) return a.then((adm) => this.decide(m, adm, nowMs), (err: unknown) => this.failOpen(m, nowMs, err));
    return this.decide(m, a, nowMs);
  }

  private decide(m: SipRequest, a: Admission, nowMs: number): SipDecision {
    if (this.closed) {
      // The session ended while the store answered: the lease is nobody's.
      if (a.lease) this.o.store.release(a.lease);
      return ABSORBED;
    }
    if (!a.ok) return this.refuse(m, nowMs, `call pool ${this.o.poolName} full`);
    if (a.refused !== undefined) this.o.shadow('call_limited');
    this.tracker.started(m, a.lease, nowMs);
    this.o.cells.callsInProgress.n++;
    return FORWARD;
  }

  private refuse(m: SipRequest, nowMs: number, warning: string): SipDecision {
    this.tracker.refusedInvite(m, nowMs);
    this.o.cells.callsRefused.n++;
    const r: SipRefusal = { status: 503, reason: 'Call Limit Reached', retryAfterS: CALL_RETRY_AFTER_S, warning };
    return { act: 'reply', text: refusalResponse(m, r) };
  }

  /** The store never should fail (it degrades to local limits itself); if it does, the call goes on. */
  private failOpen(m: SipRequest, nowMs: number, err: unknown): SipDecision {
    this.o.log.warn({ err }, 'call pool admission failed; INVITE forwarded without a lease');
    return this.decide(m, { ok: true, retryAfterMs: 0, remaining: 0, resetMs: 0 }, nowMs);
  }

  private ended(call: TrackedCall, why: CallEnd): void {
    if (call.lease) this.o.store.release(call.lease);
    this.o.cells.callsInProgress.n--;
    this.o.log.debug({ call_id: call.callId, why }, 'call ended');
  }
}
