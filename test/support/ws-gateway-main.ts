// A one-thread ward edge with the WebSocket proxy wired in, run as a child process by
// ws-gateway.ts until `ward serve` carries WebSockets itself. It is built from the real parts
// (policy loader, pipeline, memory store, flood guard, listener, the proxy) the way
// gateway/instance/edge-thread.ts builds them, and prints the same "listening" line.
// Admin port: GET /metrics with the few series the WebSocket tests read.
//
// usage: node ws-gateway-main.js POLICY_DIR

import { createServer } from 'node:http';
import { loadPolicy } from '../../gateway/policy/loader.js';
import { Pipeline } from '../../gateway/pipeline/pipeline.js';
import { EdgeMetrics } from '../../gateway/metrics/edge-metrics.js';
import { FloodGuard } from '../../gateway/stages/admit/flood-guard.js';
import { MemoryLimitStore } from '../../gateway/store/memory/memory-store.js';
import { SimpleUpstreams } from '../../gateway/proxy/upstreams.js';
import { HttpListener } from '../../gateway/server/http-listener.js';
import { createLogger } from '../../gateway/log.js';
import { createWsProxy } from '../../gateway/ws/ws-proxy.js';
import { edgeWsDeps } from '../../gateway/ws/edge-deps.js';
import { WsMetricVecs } from '../../gateway/ws/ws-metrics.js';

const dir = process.argv[2]!;
const log = createLogger({ name: 'ward-ws-harness', level: process.env.WARD_LOG_LEVEL ?? 'warn' });
const loaded = await loadPolicy(dir);
if (!loaded.ok) {
  console.error(JSON.stringify({ msg: 'invalid policy', problems: loaded.problems }));
  process.exit(1);
}
const policy = loaded.policy;
const store = MemoryLimitStore.create();
const flood = FloodGuard.create({ addressSlots: 1 << 12 });
flood.configure(policy.flood);
const edge = new EdgeMetrics();
const pipeline = new Pipeline(policy, { store, flood, metrics: edge });
const upstreams = new SimpleUpstreams();
upstreams.apply(policy);
const wsMetrics = new WsMetricVecs(edge.shadow);
const maxPayloadLength = Math.max(...policy.routes.map((r) => r.max_message_bytes)) + 1;
const proxy = createWsProxy(edgeWsDeps({ current: () => pipeline, upstreams, metrics: wsMetrics, log, maxPayloadLength }));
const listener = new HttpListener({ current: () => pipeline, upstreams, log, websocket: proxy.behavior as never });
const port = await listener.listen(policy.listen.host, policy.listen.port);

const admin = createServer((req, res) => {
  if (req.url !== '/metrics') {
    res.writeHead(404).end();
    return;
  }
  let out = '';
  for (const [tenant, pool, key] of pipeline.touchedPools()) out += `ward_concurrency_in_use{tenant="${tenant}",pool="${pool}"} ${store.inUse(key)}\n`;
  for (const [name, snap] of Object.entries({ ...wsMetrics.snapshot(), ...edge.snapshot() })) {
    const vec = [...wsMetrics.counters(), ...wsMetrics.gauges(), ...edge.all()].find((v) => v.name === name)!;
    for (const [labels, n] of snap) out += `${name}{${labels.map((l, i) => `${vec.labelNames[i]}="${l}"`).join(',')}} ${n}\n`;
  }
  out += `process_resident_memory_bytes ${process.memoryUsage.rss()}\n`;
  res.writeHead(200, { 'content-type': 'text/plain' }).end(out);
});
admin.listen(0, '127.0.0.1', () => {
  const a = admin.address();
  const adminPort = typeof a === 'object' && a !== null ? a.port : 0;
  console.log(JSON.stringify({ level: 30, msg: 'listening', port, admin_port: adminPort }));
});

process.on('SIGTERM', () => {
  proxy.drain();
  proxy.stop();
  admin.close();
  void listener.drain(1000).then(() => process.exit(0));
});
