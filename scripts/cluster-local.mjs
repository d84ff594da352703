#!/usr/bin/env node
// docker/compose.yaml's topology without Docker: a redis-server, two `ward serve` instances that
// share it (docker/policies/gateway.yaml, with loopback addresses and their own ports), and the
// demo upstream. Prints the URLs; Ctrl-C stops everything. Needs a build (npm ci) and
// redis-server on PATH.
//
//   node scripts/cluster-local.mjs
//   REDIS_PORT=6390 WARD_PORTS=8081,8082 ADMIN_PORTS=9911,9912 UPSTREAM_PORT=9101 WORKERS=2 node scripts/cluster-local.mjs

import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse, stringify } from 'yaml';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const CLI = join(ROOT, 'dist', 'gateway', 'cli.js');
const POLICY = join(ROOT, 'docker', 'policies');
const env = process.env;
const ports = (v, d) => (v ?? d).split(',').map(Number);
const REDIS_PORT = Number(env.REDIS_PORT ?? 6390);
const WARD_PORTS = ports(env.WARD_PORTS, '8081,8082');
const ADMIN_PORTS = ports(env.ADMIN_PORTS, '9911,9912');
const UPSTREAM_PORT = Number(env.UPSTREAM_PORT ?? 9101);
const WORKERS = env.WORKERS ?? '1';

if (!existsSync(CLI)) die(`${CLI} is missing: run npm ci (or npm run build) first`);
if (WARD_PORTS.length !== ADMIN_PORTS.length) die('WARD_PORTS and ADMIN_PORTS need as many ports each');

const work = mkdtempSync(join(tmpdir(), 'ward-cluster-'));
const children = [];
let stopping = false;

function die(msg) {
  process.stderr.write(`cluster-local: ${msg}\n`);
  process.exit(1);
}

/** Runs a child, its output prefixed with its name; if it dies while we are not stopping, stop all
 * (or call onExit instead). */
function run(name, cmd, args, onExit) {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  child.name = name;
  const waiters = [];
  for (const stream of [child.stdout, child.stderr]) {
    let buf = '';
    stream.setEncoding('utf8');
    stream.on('data', (d) => {
      buf += d;
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        process.stdout.write(`[${name}] ${line}\n`);
        for (const w of waiters.splice(0)) if (!w(line)) waiters.push(w);
      }
    });
  }
  child.waitFor = (re) => new Promise((resolve) => waiters.push((l) => re.test(l) && (resolve(l), true)));
  child.on('error', (err) => {
    process.stderr.write(`[${name}] cannot start ${cmd}: ${err.message}\n`);
    void stop(1);
  });
  child.on('exit', (code, signal) => {
    children.splice(children.indexOf(child), 1);
    if (stopping) return;
    if (onExit) return onExit(code, signal);
    process.stderr.write(`[${name}] exited (${signal ?? code}); stopping everything\n`);
    void stop(1);
  });
  children.push(child);
  return child;
}

function redisPing(port) {
  return new Promise((resolve) => {
    const s = createConnection({ host: '127.0.0.1', port });
    const done = (ok) => (s.destroy(), resolve(ok));
    s.setTimeout(500, () => done(false));
    s.on('error', () => done(false));
    s.on('connect', () => s.write('PING\r\n'));
    s.on('data', (d) => done(d.toString().startsWith('+PONG')));
  });
}

async function stop(code) {
  if (stopping) return;
  stopping = true;
  // Wards first (they drain and give their leases back), then the upstream and Redis.
  const byOrder = [...children.filter((c) => c.name.startsWith('ward')), ...children.filter((c) => !c.name.startsWith('ward'))];
  for (const c of byOrder) {
    if (c.exitCode !== null || c.signalCode !== null) continue;
    c.kill('SIGTERM');
    await new Promise((r) => {
      const t = setTimeout(() => (c.kill('SIGKILL'), r()), 15_000);
      c.once('exit', () => (clearTimeout(t), r()));
    });
  }
  rmSync(work, { recursive: true, force: true });
  process.exit(code);
}

process.once('SIGINT', () => void stop(0));
process.once('SIGTERM', () => void stop(0));

// 1. Redis, in its own temp dir, nothing persisted.
if (await redisPing(REDIS_PORT)) die(`something already answers PING on 127.0.0.1:${REDIS_PORT}; set REDIS_PORT`);
mkdirSync(join(work, 'redis'));
function startRedis() {
  run('redis', 'redis-server', ['--port', String(REDIS_PORT), '--bind', '127.0.0.1', '--dir', join(work, 'redis'), '--save', '', '--appendonly', 'no'], (code, signal) => {
    // A Redis outage is part of the demo: the wards go on alone; Redis comes back 5 s later.
    process.stdout.write(`[redis] exited (${signal ?? code}); starting it again in 5 s\n`);
    setTimeout(() => stopping || startRedis(), 5000);
  });
}
startRedis();
for (let i = 0; !(await redisPing(REDIS_PORT)); i++) {
  if (stopping) await new Promise(() => {}); // stop() exits
  if (i > 100) {
    process.stderr.write(`cluster-local: redis-server did not answer on port ${REDIS_PORT}\n`);
    await stop(1);
  }
  await new Promise((r) => setTimeout(r, 50));
}

// 2. The demo upstream.
const upstream = run('upstream', process.execPath, [CLI, 'demo-upstream', '--port', String(UPSTREAM_PORT)]);
await upstream.waitFor(/demo upstream listening/);

// 3. One policy directory per instance (each has its own ports), both on the one Redis and prefix.
const base = parse(readFileSync(join(POLICY, 'gateway.yaml'), 'utf8'));
const abs = (rel) => join(POLICY, rel);
const wards = WARD_PORTS.map((port, i) => {
  const dir = join(work, `ward-${i}`);
  mkdirSync(dir);
  const p = structuredClone(base);
  p.listen = { host: '127.0.0.1', port };
  p.admin = { ...p.admin, host: '127.0.0.1', port: ADMIN_PORTS[i], console: { tokens_file: abs(p.admin.console.tokens_file) } };
  p.store = { ...p.store, url: `redis://127.0.0.1:${REDIS_PORT}` };
  p.auth = { ...p.auth, jwks_file: abs(p.auth.jwks_file), dev_signing_key: abs(p.auth.dev_signing_key) };
  p.upstreams.api.targets = [`http://127.0.0.1:${UPSTREAM_PORT}`];
  writeFileSync(join(dir, 'gateway.yaml'), stringify(p));
  const name = `ward-${String.fromCharCode(97 + i)}`;
  return { name, port, admin: ADMIN_PORTS[i], child: run(name, process.execPath, [CLI, 'serve', '--policies', dir, '--workers', WORKERS]) };
});
await Promise.all(wards.map((w) => w.child.waitFor(/"msg":"listening"/)));

const portsList = wards.map((w) => w.port).join(' ');
const lines = [
  '',
  `ward: ${wards.length} instances sharing redis://127.0.0.1:${REDIS_PORT} (prefix "${base.store.prefix}")`,
  ...wards.map((w) => `  ${w.name}: http://127.0.0.1:${w.port}   admin: http://127.0.0.1:${w.admin}/readyz  /metrics  /admin/`),
  `  upstream: http://127.0.0.1:${UPSTREAM_PORT}`,
  '',
  'try (a tenant gets a burst of 20 requests, then 10/s, across all instances together):',
  `  TOKEN=$(node ${CLI} token --tenant demo --policies ${POLICY})`,
  `  for i in $(seq 30); do for p in ${portsList}; do curl -s -o /dev/null -w "%{http_code} " -H "Authorization: Bearer $TOKEN" http://127.0.0.1:$p/v1/hello; done; done; echo`,
  `  redis-cli -p ${REDIS_PORT} shutdown nosave   # each instance goes on alone at outage_share; /readyz says degraded;`,
  '                                               # this script starts Redis again 5 s later and both return to ok',
  '',
  'Ctrl-C stops everything.',
  '',
];
process.stdout.write(lines.join('\n'));
