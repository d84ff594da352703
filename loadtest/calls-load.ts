// Load for WebSocket and SIP-over-WebSocket routes: sessions opened and closed as fast as a number of
// concurrent loops can (upgrade with a bearer token, one echoed message, close), and SIP calls
// (INVITE → 200, BYE → 200) on long-lived sessions. Counts, latency and the server's CPU per unit.

import WebSocket from 'ws';
import { cpuBetween, sampleCpu } from './cpu.js';
import { Histogram } from './histogram.js';

const STEP_TIMEOUT_MS = 3000;

export interface CallsPhase {
  readonly done: number;
  readonly failed: number;
  readonly perSecond: number;
  readonly hist: Histogram;
  /** Server CPU µs per completed session or call (NaN without a pid). */
  readonly cpuUs: number;
  /** Failure reasons, counted. */
  readonly reasons: Readonly<Record<string, number>>;
}

export interface CallsLoadOptions {
  /** ws://host:port */
  readonly base: string;
  readonly path: string;
  readonly token: string;
  readonly durationS: number;
  readonly loops: number;
  /** Server process whose CPU is counted. */
  readonly pid?: number;
  readonly onSecond?: (t: number, done: number, failed: number) => void;
}

/** Opens one session: resolves on open, rejects with the HTTP status (or error) of a refused upgrade. */
export function openSession(url: string, token: string, protocol?: string): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, protocol ? [protocol] : [], { headers: { authorization: `Bearer ${token}` }, perMessageDeflate: false });
    const timer = setTimeout(() => (ws.terminate(), reject(new Error('upgrade timed out'))), STEP_TIMEOUT_MS);
    ws.once('open', () => (clearTimeout(timer), resolve(ws)));
    ws.once('unexpected-response', (_req, res) => {
      clearTimeout(timer);
      reject(new Error(`upgrade answered HTTP ${res.statusCode}`));
      ws.terminate();
    });
    ws.once('error', (e) => (clearTimeout(timer), reject(e)));
  });
}

export function nextMessage(ws: WebSocket): Promise<string> {
  return new Promise((resolve, reject) => {
    const done = () => {
      clearTimeout(timer);
      ws.off('message', onMessage);
      ws.off('close', onClose);
    };
    const onMessage = (d: WebSocket.RawData) => (done(), resolve(d.toString()));
    const onClose = (code: number) => (done(), reject(new Error(`closed ${code}`)));
    const timer = setTimeout(() => (done(), reject(new Error('no answer in time'))), STEP_TIMEOUT_MS);
    ws.on('message', onMessage);
    ws.on('close', onClose);
  });
}

export function closeSession(ws: WebSocket): Promise<void> {
  return new Promise((resolve) => {
    if (ws.readyState === WebSocket.CLOSED) return resolve();
    ws.once('close', () => resolve());
    ws.close(1000);
  });
}

/** A SIP request as sent over WebSocket (RFC 7118): one whole message per frame. */
export function sipRequest(method: string, callId: string, cseq: number, toTag?: string): string {
  return [
    `${method} sip:bob@loadtest.invalid SIP/2.0`,
    `Via: SIP/2.0/WS client.invalid;branch=z9hG4bK${callId}x${cseq}`,
    'Max-Forwards: 70',
    `From: <sip:alice@loadtest.invalid>;tag=a${callId}`,
    `To: <sip:bob@loadtest.invalid>${toTag ? `;tag=${toTag}` : ''}`,
    `Call-ID: ${callId}`,
    `CSeq: ${cseq} ${method}`,
    'Contact: <sip:alice@client.invalid;transport=ws>',
    'Content-Length: 0',
    '',
    '',
  ].join('\r\n');
}

/** Runs `step` in `loops` concurrent loops for the duration, timing each completed step. */
async function timed(o: CallsLoadOptions, step: (loop: number) => Promise<void>): Promise<CallsPhase> {
  const hist = new Histogram();
  const reasons: Record<string, number> = {};
  let done = 0;
  let failed = 0;
  const before = o.pid ? sampleCpu(o.pid) : undefined;
  const t0 = performance.now();
  const end = t0 + o.durationS * 1000;
  let second = 0;
  const timer = setInterval(() => o.onSecond?.(++second, done, failed), 1000);
  await Promise.all(
    Array.from({ length: o.loops }, async (_, i) => {
      while (performance.now() < end) {
        const s = performance.now();
        try {
          await step(i);
          hist.record((performance.now() - s) * 1000);
          done++;
        } catch (e) {
          failed++;
          const why = (e as Error).message;
          reasons[why] = (reasons[why] ?? 0) + 1;
          await new Promise((r) => setTimeout(r, 20));
        }
      }
    }),
  );
  clearInterval(timer);
  const secs = (performance.now() - t0) / 1000;
  const cpuMs = before && o.pid ? cpuBetween(before, sampleCpu(o.pid)).cpuMs : NaN;
  return { done, failed, perSecond: done / secs, hist, cpuUs: done ? (cpuMs * 1000) / done : NaN, reasons };
}

/** Sessions: open (authenticated upgrade), one message echoed, close; in `loops` concurrent loops. */
export function runSessions(o: CallsLoadOptions): Promise<CallsPhase> {
  return timed(o, async () => {
    const ws = await openSession(`${o.base}${o.path}`, o.token);
    try {
      ws.send('hello');
      await nextMessage(ws);
    } finally {
      await closeSession(ws);
    }
  });
}

/** SIP calls (INVITE/200, BYE/200), one at a time on each of `loops` sessions opened with subprotocol "sip". */
export async function runSipCalls(o: CallsLoadOptions): Promise<CallsPhase> {
  const socks = await Promise.all(Array.from({ length: o.loops }, () => openSession(`${o.base}${o.path}`, o.token, 'sip')));
  let n = 0;
  try {
    return await timed(o, async (i) => {
      const ws = socks[i];
      if (ws.readyState !== WebSocket.OPEN) socks[i] = await openSession(`${o.base}${o.path}`, o.token, 'sip');
      const id = `lt${process.pid}c${n++}`;
      socks[i].send(sipRequest('INVITE', id, 1));
      const ok = await nextMessage(socks[i]);
      if (!ok.startsWith('SIP/2.0 200')) throw new Error(`INVITE answered ${ok.split('\r\n')[0]}`);
      const tag = /^To:.*;tag=([^;\s]+)/im.exec(ok)?.[1];
      socks[i].send(sipRequest('BYE', id, 2, tag));
      const bye = await nextMessage(socks[i]);
      if (!bye.startsWith('SIP/2.0 200')) throw new Error(`BYE answered ${bye.split('\r\n')[0]}`);
    });
  } finally {
    await Promise.all(socks.map(closeSession));
  }
}
