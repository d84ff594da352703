// calls: WebSocket sessions per second (upgrade through ward with a bearer token, one message echoed,
// close) and SIP calls per second over WebSocket (INVITE → 200, BYE → 200 on long-lived sessions,
// each call holding a lease of the tenant's call pool while it lasts). When ward's WebSocket side
// does not carry a session yet, the report says "not available yet" instead of failing.

import { closeSession, nextMessage, openSession, runSessions, runSipCalls, type CallsPhase } from '../calls-load.js';
import { type Report, type Table } from '../report.js';
import { spawnUpstream } from '../upstream.js';
import { mintToken, startWard, writeWardPolicy } from '../ward.js';
import { SERVER_CPUS, wardCpus, type ScenarioOptions, beginScenario } from './scenario.js';

const SESSION_LOOPS = 32;
const SIP_SESSIONS = 16;

export async function calls(o: ScenarioOptions): Promise<Report> {
  const { startedAt, machine, notes } = await beginScenario(o);
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
      await closeSession(probe);
    } catch (e) {
      available = false;
      notes.unshift(`not available yet: ward's WebSocket route did not carry a session (${(e as Error).message}); nothing was measured`);
    }
    if (available) {
      const common = { base, token, durationS: o.durationS, pid: ward.pid };
      const sessions = await runSessions({ ...common, path: '/v1/signal', loops: SESSION_LOOPS, onSecond: (t, d, f) => o.progress.update(`WebSocket sessions ${t}/${o.durationS} s · ${d} done, ${f} failed`) });
      o.progress.log(`WebSocket sessions: ${Math.round(sessions.perSecond)}/s, p99 ${sessions.hist.percentile(99)} µs, ${sessions.failed} failed`);
      const sip = await runSipCalls({ ...common, path: '/v1/sip', loops: SIP_SESSIONS, onSecond: (t, d, f) => o.progress.update(`SIP calls ${t}/${o.durationS} s · ${d} done, ${f} failed`) });
      o.progress.log(`SIP calls: ${Math.round(sip.perSecond)}/s, p99 ${sip.hist.percentile(99)} µs, ${sip.failed} failed`);
      const row = (name: string, p: CallsPhase) => [name, p.perSecond, p.done, p.failed, p.hist.percentile(50), p.hist.percentile(99), p.cpuUs];
      tables.push({
        title: `Through ward (${o.durationS} s each)`,
        columns: ['what', 'per second', 'completed', 'failed', 'p50 µs', 'p99 µs', 'ward CPU µs each'],
        rows: [row(`WebSocket session (upgrade + 1 echo + close), ${SESSION_LOOPS} at once`, sessions), row(`SIP call (INVITE/200 + BYE/200) on ${SIP_SESSIONS} sessions`, sip)],
      });
      for (const [k, p] of [
        ['sessions', sessions],
        ['sip', sip],
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
