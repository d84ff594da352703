// Open-loop load generator: each flow (a tenant, or an address flood) offers requests at a fixed
// rate whatever the server does, and each request's latency runs from the moment it was due, not
// from when a connection was free, so queueing in the server shows up (no coordinated omission;
// `latencyFrom: 'sent'` measures from the write instead, when the generator's own lateness must not count).
// Per flow it records offered, admitted (2xx), 429s, other statuses, connections closed with no
// answer (drops), and latency percentiles overall and per second.

import { Histogram, type LatencySummary } from './histogram.js';
import { RawConnection } from './raw-connection.js';

export interface FlowSpec {
  readonly name: string;
  /** Reporting only: a tenant's traffic or an address flood. */
  readonly kind: 'tenant' | 'flood';
  /** Requests per second offered. */
  readonly rate: number;
  readonly path: string;
  readonly method?: string;
  readonly headers?: Readonly<Record<string, string>>;
  /** Source addresses (e.g. 127.0.0.2), used in turn for each new connection. */
  readonly localAddresses?: readonly string[];
  /** Most connections open at once (each carries one request at a time); default 64. */
  readonly maxConnections?: number;
  /** Flows of one group also get merged latency figures (e.g. every well-behaved tenant). */
  readonly group?: string;
}

export interface SecondStats {
  /** Seconds since the start. */
  readonly t: number;
  readonly sent: number;
  readonly ok: number;
  readonly limited: number;
  readonly other: number;
  readonly dropped: number;
  readonly p50_us: number;
  readonly p99_us: number;
}

export interface FlowResult {
  readonly name: string;
  readonly kind: 'tenant' | 'flood';
  readonly rate: number;
  /** Requests that fell due during the run. */
  readonly offered: number;
  readonly sent: number;
  /** 2xx answers. */
  readonly ok: number;
  /** 429 answers. */
  readonly limited: number;
  /** Any other status. */
  readonly other: number;
  readonly statuses: Readonly<Record<string, number>>;
  /** Connections closed by the server with a request outstanding and no answer, or refused at the
   * handshake (how the kernel drops for `ward serve --kernel-bans`). */
  readonly dropped: number;
  /** Connect errors and resets after part of an answer. */
  readonly errors: number;
  /** Due but never sent: the backlog went over one second of traffic, or it was still queued at the end. */
  readonly unsent: number;
  /** Sent more than 5 ms after they were due (no free connection, or a stalled generator). */
  readonly late: number;
  /** Sent but still unanswered when the run ended (after the drain). */
  readonly unanswered: number;
  readonly connections: number;
  /** Latency of every answered request, from the time it was due (or written: `latencyFrom`). */
  readonly latency: LatencySummary;
  /** Latency of 2xx answers only. */
  readonly admittedLatency: LatencySummary;
  readonly timeline: readonly SecondStats[];
}

export interface LoadOptions {
  readonly host: string;
  readonly port: number;
  readonly flows: readonly FlowSpec[];
  readonly durationS: number;
  /** Seconds of traffic before the measured part (connections open, JIT warms up); default 1. */
  readonly warmupS?: number;
  /** `spin` (default) checks for due requests on every event-loop turn: µs-precise, but keeps the core
   * busy. `timer` sleeps between 1 ms ticks, so a lower-priority process on the same core gets the rest. */
  readonly pace?: 'spin' | 'timer';
  /** Latency from the moment a request was due (default: queueing anywhere counts), or from the moment it
   * was written (the generator's own lateness left out; requests that wait for a connection are counted as `late`). */
  readonly latencyFrom?: 'due' | 'sent';
  /** How long to wait for answers after the last request was due; default 2000 ms. */
  readonly drainMs?: number;
  /** Called once a second with the seconds elapsed and the flows so far. */
  readonly onSecond?: (t: number, flows: readonly FlowResult[]) => void;
}

/** Latency of every answered request of a group's flows, overall and per second. */
export interface GroupResult {
  readonly name: string;
  readonly latency: LatencySummary;
  readonly timeline: readonly { readonly t: number; readonly p50_us: number; readonly p99_us: number }[];
  /** The merged histogram, to merge further across runs (not serialised). */
  readonly histogram: Histogram;
}

export interface LoadResult {
  readonly durationS: number;
  readonly flows: readonly FlowResult[];
  readonly groups: readonly GroupResult[];
  /** Per flow: every answered request's latency, to merge across runs (not serialised). */
  readonly histograms: ReadonlyMap<string, Histogram>;
  /** How late the generator itself put requests on the wire queue: the floor of every latency here. */
  readonly generatorLag: LatencySummary;
}

/** A group's merged latency (shared with load-gen-native.ts, which replays its records into it). */
export class GroupRun {
  readonly hist = new Histogram();
  sec = new Histogram();
  readonly timeline: { t: number; p50_us: number; p99_us: number }[] = [];
  constructor(readonly name: string) {}
  record(us: number): void {
    this.hist.record(us);
    this.sec.record(us);
  }
  closeSecond(t: number): void {
    this.timeline.push({ t, p50_us: this.sec.percentile(50), p99_us: this.sec.percentile(99) });
    this.sec = new Histogram();
  }
}

/** One flow's counters and histograms (shared with load-gen-native.ts). */
export class FlowRun {
  readonly request: Buffer;
  readonly queue: number[] = [];
  qHead = 0;
  scheduled = 0;
  offered = 0;
  readonly conns = new Set<RawConnection>();
  readonly idle: RawConnection[] = [];
  inFlight = 0;
  late = 0;
  addrTurn = 0;
  sent = 0;
  ok = 0;
  limited = 0;
  other = 0;
  dropped = 0;
  errors = 0;
  unsent = 0;
  connections = 0;
  statuses: Record<string, number> = {};
  readonly hist = new Histogram();
  readonly okHist = new Histogram();
  sec = { sent: 0, ok: 0, limited: 0, other: 0, dropped: 0, hist: new Histogram() };
  readonly timeline: SecondStats[] = [];

  constructor(readonly spec: FlowSpec, host: string, port: number, readonly group: GroupRun | undefined) {
    const h = { host: `${host}:${port}`, ...spec.headers };
    const lines = [`${spec.method ?? 'GET'} ${spec.path} HTTP/1.1`, ...Object.entries(h).map(([k, v]) => `${k}: ${v}`)];
    this.request = Buffer.from(lines.join('\r\n') + '\r\n\r\n', 'latin1');
  }

  /** Abandons the `n` oldest requests waiting for a connection; those due after `t0` (the warm-up's
   * end) count as unsent. */
  giveUp(n: number, t0: number): void {
    for (let i = 0; i < n; i++) if (this.queue[this.qHead + i]! >= t0) this.unsent++;
    this.qHead += n;
  }

  /** A request due after the warm-up went out, `lateMs` after it was due. */
  sentOne(lateMs: number): void {
    this.sent++;
    this.sec.sent++;
    if (lateMs > 5) this.late++;
  }

  /** A request due after the warm-up was answered with `status`, `us` after it was due (or sent). */
  answered(status: number, us: number): void {
    this.hist.record(us);
    this.sec.hist.record(us);
    this.group?.record(us);
    this.statuses[status] = (this.statuses[status] ?? 0) + 1;
    if (status >= 200 && status < 300) {
      this.ok++;
      this.sec.ok++;
      this.okHist.record(us);
    } else if (status === 429) {
      this.limited++;
      this.sec.limited++;
    } else {
      this.other++;
      this.sec.other++;
    }
  }

  /** A request due after the warm-up lost its connection: with no answer at all it was dropped
   * (closed, or refused at the handshake); anything else is an error. */
  lost(dropped: boolean): void {
    if (dropped) {
      this.dropped++;
      this.sec.dropped++;
    } else this.errors++;
  }

  closeSecond(t: number): void {
    const s = this.sec;
    this.timeline.push({ t, sent: s.sent, ok: s.ok, limited: s.limited, other: s.other, dropped: s.dropped, p50_us: s.hist.percentile(50), p99_us: s.hist.percentile(99) });
    this.sec = { sent: 0, ok: 0, limited: 0, other: 0, dropped: 0, hist: new Histogram() };
  }

  result(unanswered: number): FlowResult {
    const s = this.spec;
    return {
      name: s.name,
      kind: s.kind,
      rate: s.rate,
      offered: this.offered,
      sent: this.sent,
      ok: this.ok,
      limited: this.limited,
      other: this.other,
      statuses: { ...this.statuses },
      dropped: this.dropped,
      errors: this.errors,
      unsent: this.unsent + (this.queue.length - this.qHead),
      late: this.late,
      unanswered,
      connections: this.connections,
      latency: this.hist.summary(),
      admittedLatency: this.okHist.summary(),
      timeline: this.timeline,
    };
  }
}

/** A FlowRun per flow and a GroupRun per group of `o` (shared with load-gen-native.ts). */
export function flowRuns(o: Pick<LoadOptions, 'host' | 'port' | 'flows'>): { runs: FlowRun[]; groups: GroupRun[] } {
  const groups = new Map<string, GroupRun>();
  for (const f of o.flows) if (f.group && !groups.has(f.group)) groups.set(f.group, new GroupRun(f.group));
  const runs = o.flows.map((f) => new FlowRun(f, o.host, o.port, f.group ? groups.get(f.group) : undefined));
  return { runs, groups: [...groups.values()] };
}

/** The result once counting is over; `flows` are the runs' results, taken before any connection closed. */
export function loadResult(durationS: number, runs: readonly FlowRun[], groups: readonly GroupRun[], flows: FlowResult[], lag: Histogram): LoadResult {
  return {
    durationS,
    flows,
    histograms: new Map(runs.map((f) => [f.spec.name, f.hist])),
    groups: groups.map((g) => ({ name: g.name, latency: g.hist.summary(), timeline: g.timeline, histogram: g.hist })),
    generatorLag: lag.summary(),
  };
}

export async function runLoad(o: LoadOptions): Promise<LoadResult> {
  const { runs, groups } = flowRuns(o);
  const lag = new Histogram();
  const start = performance.now();
  // Everything due before t0 is warm-up: sent, but counted nowhere.
  const t0 = start + (o.warmupS ?? 1) * 1000;
  const endAt = t0 + o.durationS * 1000;
  let stopped = false;
  let second = 1;
  const fromSent = o.latencyFrom === 'sent';
  const spin = (o.pace ?? 'spin') === 'spin';

  const dispatch = (f: FlowRun) => {
    while (f.qHead < f.queue.length) {
      let conn: RawConnection | undefined;
      while (f.idle.length) {
        const c = f.idle.pop()!;
        if (c.usable) {
          conn = c;
          break;
        }
      }
      if (!conn) {
        if (f.conns.size >= (f.spec.maxConnections ?? 64)) return;
        conn = open(f);
      }
      const due = f.queue[f.qHead++];
      conn.due = due;
      conn.sentAt = performance.now();
      f.inFlight++;
      if (due >= t0) f.sentOne(conn.sentAt - due);
      conn.send(f.request);
    }
    f.queue.length = 0;
    f.qHead = 0;
  };

  const open = (f: FlowRun): RawConnection => {
    const addrs = f.spec.localAddresses;
    const localAddress = addrs?.length ? addrs[f.addrTurn++ % addrs.length] : undefined;
    f.connections++;
    const conn: RawConnection = new RawConnection(
      { host: o.host, port: o.port, localAddress },
      {
        onResponse(status) {
          const now = performance.now();
          const due = conn.due;
          const from = fromSent ? conn.sentAt : due;
          f.inFlight--;
          if (conn.usable) f.idle.push(conn);
          if (due < t0) {
            if (!stopped) dispatch(f);
            return;
          }
          f.answered(status, (now - from) * 1000);
          if (!stopped) dispatch(f);
        },
        onClose(inFlight, answered, error) {
          f.conns.delete(conn);
          if (inFlight) f.inFlight--;
          if (inFlight && conn.due >= t0) f.lost(!answered && (conn.connected || (error as NodeJS.ErrnoException | undefined)?.code === 'ECONNREFUSED'));
          if (!stopped) dispatch(f);
        },
      },
    );
    f.conns.add(conn);
    return conn;
  };

  await new Promise<void>((resolve) => {
    const tick = () => {
      const now = performance.now();
      const until = Math.min(now, endAt);
      for (const f of runs) {
        const period = 1000 / f.spec.rate;
        let due = start + f.scheduled * period;
        while (due <= until) {
          if (due >= t0) {
            lag.record((now - due) * 1000);
            f.offered++;
          }
          f.queue.push(due);
          f.scheduled++;
          due = start + f.scheduled * period;
        }
        // A client gives up on requests it could not send within a second.
        const backlog = f.queue.length - f.qHead;
        if (backlog > Math.max(f.spec.rate, 100)) {
          f.giveUp(backlog - Math.max(f.spec.rate, 100), t0);
        }
        dispatch(f);
        if (f.qHead > 4096) {
          f.queue.splice(0, f.qHead);
          f.qHead = 0;
        }
      }
      if (now >= t0 + second * 1000 && second <= o.durationS) {
        for (const f of runs) f.closeSecond(second);
        for (const g of groups.values()) g.closeSecond(second);
        o.onSecond?.(second, runs.map((f) => f.result(f.inFlight)));
        second++;
      }
      if (now >= endAt) {
        // Requests still waiting for a connection are never sent (as in openloop.c): the drain
        // below only collects answers, it sends no traffic past the run's end.
        for (const f of runs) {
          f.giveUp(f.queue.length - f.qHead, t0);
          f.queue.length = 0;
          f.qHead = 0;
        }
        resolve();
      } else if (spin) setImmediate(tick);
      else setTimeout(tick, 1);
    };
    setImmediate(tick);
  });

  // Let outstanding answers arrive, then close everything.
  const drainEnd = performance.now() + (o.drainMs ?? 2000);
  while (runs.some((f) => f.inFlight > 0) && performance.now() < drainEnd) await new Promise((r) => setTimeout(r, 10));
  stopped = true;
  const results = runs.map((f) => f.result(f.inFlight));
  for (const f of runs) for (const c of f.conns) c.close();
  return loadResult(o.durationS, runs, groups, results, lag);
}
