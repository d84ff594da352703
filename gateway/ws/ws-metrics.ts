// The WebSocket and SIP counters, as hot cells (see metrics/hot-counters.ts): a session looks its
// cells up once, a message pays `cell.n++`. Two of them are gauges (they go down as well as up):
// ward_ws_sessions_open and ward_sip_calls_in_progress.

import { HotCounterVec, type CounterSnapshot } from '../metrics/hot-counters.js';
import type { WsMetrics, WsRouteCells } from './types.js';

export class WsMetricVecs implements WsMetrics {
  readonly sessionsOpen = new HotCounterVec('ward_ws_sessions_open', 'WebSocket sessions open now (gauge)', ['tenant', 'route']);
  readonly messages = new HotCounterVec('ward_ws_messages_total', 'WebSocket messages by direction and outcome', ['tenant', 'route', 'direction', 'outcome']);
  readonly callsInProgress = new HotCounterVec('ward_sip_calls_in_progress', 'SIP calls holding a call_pool lease now (gauge)', ['tenant', 'route']);
  readonly callsRefused = new HotCounterVec('ward_sip_calls_refused_total', 'INVITEs ward answered 503 (call limit reached)', ['tenant', 'route']);
  readonly sipMalformed = new HotCounterVec('ward_sip_malformed_total', 'SIP messages ward could not read', ['tenant', 'route']);
  private readonly cache = new Map<string, WsRouteCells>();

  /** `shadowVec`: the edge's ward_shadow_refusals_total{rule,reason}. */
  constructor(private readonly shadowVec?: HotCounterVec) {}

  cells(tenant: string, route: string): WsRouteCells {
    const key = `${tenant}\u0000${route}`;
    let c = this.cache.get(key);
    if (c === undefined) {
      c = Object.freeze({
        sessionsOpen: this.sessionsOpen.cell(tenant, route),
        fromClient: this.messages.cell(tenant, route, 'client_to_upstream', 'relayed'),
        fromUpstream: this.messages.cell(tenant, route, 'upstream_to_client', 'relayed'),
        droppedFromClient: this.messages.cell(tenant, route, 'client_to_upstream', 'dropped'),
        droppedFromUpstream: this.messages.cell(tenant, route, 'upstream_to_client', 'dropped'),
        callsInProgress: this.callsInProgress.cell(tenant, route),
        callsRefused: this.callsRefused.cell(tenant, route),
        sipMalformed: this.sipMalformed.cell(tenant, route),
      });
      this.cache.set(key, c);
    }
    return c;
  }

  shadow(rule: string, reason: string): void {
    this.shadowVec?.inc(rule, reason);
  }

  /** Counters (monotonic). */
  counters(): HotCounterVec[] {
    return [this.messages, this.callsRefused, this.sipMalformed];
  }

  /** Gauges: export with prom-client Gauge, summed over threads like the counters. */
  gauges(): HotCounterVec[] {
    return [this.sessionsOpen, this.callsInProgress];
  }

  snapshot(): Record<string, CounterSnapshot> {
    const out: Record<string, CounterSnapshot> = {};
    for (const v of [...this.counters(), ...this.gauges()]) out[v.name] = v.snapshot();
    return out;
  }
}
