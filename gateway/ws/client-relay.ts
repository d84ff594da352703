// Client → upstream, in arrival order. A client message may wait for two answers: the message
// bucket's (asked at arrival, so a store round trip per message does not serialise the session)
// and the SIP guard's (asked at the head of the line, since a call's state depends on the
// messages before it). With a synchronous store and nothing queued, a message is relayed at once
// from uWS's buffer, with no copy.
//
// uWS cannot stop reading a WebSocket, so what waits here or in the upstream socket is bounded:
// past `highWater` bytes the session is closed with 1013 (try again later).

import type { Logger } from 'pino';
import type { Admission, AdmitPlan, LimitStore } from '../store/types.js';
import type { SipDecision, SipGuard } from '../sip/sip-guard.js';
import type { WsRouteCells } from './types.js';

export interface ClientRelaySink {
  isOpen(): boolean;
  /** Sends to the upstream. */
  forward(data: ArrayBuffer | Buffer, isBinary: boolean): void;
  /** ward's own answer to the client (a SIP 503). */
  reply(text: string): void;
  close(code: number, reason: string): void;
  /** Bytes the upstream socket has not taken yet. */
  upstreamBuffered(): number;
}

export interface ClientRelayOptions {
  readonly store: LimitStore;
  /** The route's message_bucket plan (enforce:false = shadow), if it has one. */
  readonly msgPlan: AdmitPlan | undefined;
  readonly sip: SipGuard | undefined;
  readonly highWater: number;
  readonly cells: WsRouteCells;
  readonly shadow: (reason: string) => void;
  readonly log: Logger;
}

const PENDING = Symbol('pending');

interface Queued {
  readonly data: Buffer;
  readonly isBinary: boolean;
  /** Message-bucket answer: PENDING while the store answers, undefined once checked (or none). */
  charge: Admission | typeof PENDING | undefined;
  decision: SipDecision | typeof PENDING | undefined;
}

export class ClientRelay {
  private queue: Queued[] = [];
  private queuedBytes = 0;
  private readonly closeReason: string;

  constructor(
    private readonly o: ClientRelayOptions,
    private readonly sink: ClientRelaySink,
  ) {
    this.closeReason = `rate_limited:${o.msgPlan?.bucket?.name ?? ''}`;
  }

  /** A client message; `ab` is valid only during this call. */
  push(ab: ArrayBuffer, isBinary: boolean, nowMs: number): void {
    let charge: Admission | Promise<Admission> | undefined;
    if (this.o.msgPlan !== undefined) {
      try {
        charge = this.o.store.admit(this.o.msgPlan, nowMs);
      } catch (err) {
        this.o.log.warn({ err }, 'message bucket admission failed; message relayed');
      }
    }
    if (this.queue.length === 0 && !(charge instanceof Promise)) {
      if (charge !== undefined && !this.charged(charge)) return;
      if (this.o.sip === undefined) return this.forward(ab, isBinary);
      const d = this.o.sip.fromClient(new Uint8Array(ab), nowMs);
      if (!(d instanceof Promise)) return this.apply(d, ab, isBinary);
      const q = this.enqueue(ab, isBinary);
      if (q === undefined) return;
      q.decision = PENDING;
      void d.then((r) => this.settle(q, 'decision', r));
      return;
    }
    const q = this.enqueue(ab, isBinary);
    if (q === undefined) return;
    if (charge instanceof Promise) {
      q.charge = PENDING;
      charge.then(
        (a) => this.settle(q, 'charge', a),
        (err: unknown) => {
          this.o.log.warn({ err }, 'message bucket admission failed; message relayed');
          this.settle(q, 'charge', undefined);
        },
      );
    } else q.charge = charge;
    this.pump();
  }

  /** The session ended: what still waits is dropped. */
  clear(): void {
    this.queue = [];
    this.queuedBytes = 0;
  }

  private enqueue(ab: ArrayBuffer, isBinary: boolean): Queued | undefined {
    const q: Queued = { data: Buffer.copyBytesFrom(new Uint8Array(ab)), isBinary, charge: undefined, decision: undefined };
    this.queue.push(q);
    this.queuedBytes += q.data.length;
    return this.overBound() ? undefined : q;
  }

  private settle<K extends 'charge' | 'decision'>(q: Queued, k: K, v: Queued[K]): void {
    q[k] = v;
    this.pump();
  }

  /** Relays queued messages in arrival order, each once its admissions have answered. */
  private pump(): void {
    while (this.queue.length > 0 && this.sink.isOpen()) {
      const q = this.queue[0]!;
      if (q.charge === PENDING) return;
      if (q.charge !== undefined) {
        if (!this.charged(q.charge)) return;
        q.charge = undefined;
      }
      if (this.o.sip !== undefined && q.decision === undefined) {
        const d = this.o.sip.fromClient(q.data, Date.now());
        if (d instanceof Promise) {
          q.decision = PENDING;
          void d.then((r) => this.settle(q, 'decision', r));
          return;
        }
        q.decision = d;
      }
      if (q.decision === PENDING) return;
      this.queue.shift();
      this.queuedBytes -= q.data.length;
      if (q.decision === undefined) this.forward(q.data, q.isBinary);
      else this.apply(q.decision, q.data, q.isBinary);
    }
  }

  /** The message bucket's answer: false (and the session closed with 1008) when over it. */
  private charged(a: Admission): boolean {
    if (!a.ok) {
      this.o.cells.droppedFromClient.n++;
      this.sink.close(1008, this.closeReason);
      return false;
    }
    if (a.refused !== undefined) this.o.shadow('message_rate_limited');
    return true;
  }

  private apply(d: SipDecision, data: ArrayBuffer | Buffer, isBinary: boolean): void {
    if (d.act === 'forward') return this.forward(data, isBinary);
    this.o.cells.droppedFromClient.n++;
    if (d.act === 'reply') this.sink.reply(d.text);
  }

  private forward(data: ArrayBuffer | Buffer, isBinary: boolean): void {
    this.sink.forward(data, isBinary);
    this.overBound();
  }

  /** Closes the session (1013) when more than highWater bytes wait for the upstream. */
  private overBound(): boolean {
    if (this.sink.upstreamBuffered() + this.queuedBytes <= this.o.highWater) return false;
    this.sink.close(1013, 'upstream_backpressure');
    return true;
  }
}
