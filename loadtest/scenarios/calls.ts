// calls: WebSocket sessions per second (upgrade through ward with a bearer token, one message echoed,
// close) and SIP calls per second over WebSocket (INVITE → 200, BYE → 200 on long-lived sessions,
// each call holding a lease of the tenant's call pool while it lasts). When ward's WebSocket side
// does not answer the upgrade yet, the report says so instead of failing.

import WebSocket from 'ws';
import { Histogram } from '../histogram.js';
import { machineInfo, type Report, type Table } from '../report.js';
import { spawnUpstream } from '../upstream.js';
import { mintToken, startWard, writeWardPolicy } from '../ward.js';
import { pinSelf, placementNotes, requireWard, SERVER_CPUS, wardCpus, type ScenarioOptions } from './scenario.js';
import { cpuBetween, sampleCpu } from '../cpu.js';

const SESSION_LOOPS = 32;
const SIP_SESSIONS = 16;
const STEP_TIMEOUT_MS = 3000;

interface Phase {
  readonly done: number;
  readonly failed: number;
  readonly perSecond: number;
  readonly hist: Histogram;
  readonly cpuUs: number;
  readonly reasons: Readonly<Record<string, number>>;
}

/** Opens one session: resolves on open, rejects with the HTTP status (or error) of a refused upgrade. */
function openSession(url: string, token: string, protocol?: string): Promise<WebSocket> {
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

function nextMessage(ws: WebSocket): Promise<string> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no answer in time')), STEP_TIMEOUT_MS);
    ws.once('message', (d) => (clearTimeout(timer), resolve(d.toString())));
    ws.once('close', (code) => (clearTimeout(timer), reject(new Error(`closed ${code}`))));
  });
}

function closed(ws: WebSocket): Promise<void> {
  return new Promise((resolve) => {
    if (ws.readyState === WebSocket.CLOSED) return resolve();
    ws.once('close', () => resolve());
    ws.close(1000);
  });
}

async function timed(label: string, o: ScenarioOptions, pid: number, loops: number, step: (i: number) => Promise<void>): Promise<Phase> {
  const hist = new Histogram();
  const reasons: Record<string, number> = {};
  let done = 0;
  let failed = 0;
  const before = sampleCpu(pid);
  const t0 = performance.now();
  const end = t0 + o.durationS * 1000;
  const timer = setInterval(() => o.progress.update(`${label} ${Math.round((performance.now() - t0) / 1000)}/${o.durationS} s · ${done} done, ${failed} failed`), 1000);
  await Promise.all(
    Array.from({ length: loops }, async (_, i) => {
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
  const used = cpuBetween(before, sampleCpu(pid));
  const secs = (performance.now() - t0) / 1000;
  return { done, failed, perSecond: done / secs, hist, cpuUs: done ? (used.cpuMs * 1000) / done : NaN, reasons };
}

function sip(method: string, callId: string, cseq: number, toTag?: string): string {
  return [
    `${method} sip:bob@loadtest.invalid SIP/2.0`,
    `Via: SIP/2.0/WS client.invalid;branch=z9hG4bK${callId}${cseq}`,
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

export async function calls(o: ScenarioOptions): Promise<Report> {
  requireWard();
  const startedAt = new Date().toISOString();
  const machine = machineInfo();
  const notes = placementNotes(o.workers);
  await pinSelf();
  const up = await spawnUpstream(SERVER_CPUS);
  const policy = await writeWardPolicy({
    upstreams: { ws: { targets: [`ws://127.0.0.1:${up.port}`] } },
    routes: [
      { name: 'signal', prefix: '/v1/signal', websocket: true, upstream: 'ws', bucket: 'api', concurrency: 'sessions' },
      { name: 'sip', prefix: '/v1/sip', websocket: true, sip: true, upstream: 'ws', concurrency: 'sessions', call_pool: 'calls' },
    ],
    tenants: { '*': { buckets: { api: { rate: 100_000_000, per_s: 1, burst: 100_000_000 } }, concurrency: { sessions: 100_000, calls: 100_000 } } },
  });
  const ward = await startWard(policy, { workers: o.workers, cpus: wardCpus(o.workers) });
  const token = await mintToken(policy.keys, 'calls');
  const base = `ws://127.0.0.1:${policy.port}`;
  const tables: Table[] = [];
  const data: Record<string, unknown> = {};
  let available = true;
  try {
    try {
      const probe = await openSession(`${base}/v1/signal`, token);
      probe.send('probe');
      await nextMessage(probe);
      await closed(probe);
    } catch (e) {
      available = false;
      notes.unshift(`not available yet: ward's WebSocket route did not carry a session (${(e as Error).message}); nothing was measured`);
    }
    if (available) {
      const sessions = await timed('WebSocket sessions', o, ward.pid, SESSION_LOOPS, async () => {
        const ws = await openSession(`${base}/v1/signal`, token);
        ws.send('hello');
        await nextMessage(ws);
        await closed(ws);
      });
      o.progress.log(`WebSocket sessions: ${Math.round(sessions.perSecond)}/s, p99 ${sessions.hist.percentile(99)} µs, ${sessions.failed} failed`);
      const socks = await Promise.all(Array.from({ length: SIP_SESSIONS }, () => openSession(`${base}/v1/sip`, token, 'sip')));
      let n = 0;
      const calls = await timed('SIP calls', o, ward.pid, SIP_SESSIONS, async (i) => {
        const ws = socks[i];
        const id = `lt${process.pid}x${n++}`;
        ws.send(sip('INVITE', id, 1));
        const ok = await nextMessage(ws);
        if (!ok.startsWith('SIP/2.0 200')) throw new Error(`INVITE answered ${ok.split('\r\n')[0]}`);
        const tag = /^To:.*;tag=([^;\s]+)/im.exec(ok)?.[1];
        ws.send(sip('BYE', id, 2, tag));
        const bye = await nextMessage(ws);
        if (!bye.startsWith('SIP/2.0 200')) throw new Error(`BYE answered ${bye.split('\r\n')[0]}`);
      });
      await Promise.all(socks.map(closed));
      o.progress.log(`SIP calls: ${Math.round(calls.perSecond)}/s, p99 ${calls.hist.percentile(99)} µs, ${calls.failed} failed`);
      const row = (name: string, p: Phase) => [name, p.perSecond, p.done, p.failed, p.hist.percentile(50), p.hist.percentile(99), p.cpuUs];
      tables.push({
        title: `Through ward (${o.durationS} s each)`,
        columns: ['what', 'per second', 'completed', 'failed', 'p50 µs', 'p99 µs', 'ward CPU µs each'],
        rows: [row(`WebSocket session (upgrade + 1 echo + close), ${SESSION_LOOPS} at once`, sessions), row(`SIP call (INVITE/200 + BYE/200) on ${SIP_SESSIONS} sessions`, calls)],
      });
      for (const [k, p] of [
        ['sessions', sessions],
        ['sip', calls],
      ] as const) {
        data[k] = { done: p.done, failed: p.failed, per_second: p.perSecond, latency: p.hist.summary(), cpu_us: p.cpuUs, failures: p.reasons };
        for (const [why, c] of Object.entries(p.reasons)) notes.push(`${k}: ${c} × ${why}`);
      }
    }
  } finally {
    await ward.stop();
    await up.stop();
  }
  return { scenario: 'calls', title: 'WebSocket sessions and SIP calls through ward', startedAt, machine, tables, charts: [], notes, data: { available, ...data } };
}
