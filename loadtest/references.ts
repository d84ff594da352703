// The reference servers ward is measured against, configured like an edge would be for the same
// job: keep-alive proxy to the same upstream, a rate limit keyed per tenant (the Authorization
// header: neither can verify a JWT without add-ons, so they key on the raw header), one tenant whose
// limit is exhausted (the 429 path), and banned source addresses whose connections are dropped.
// Configs are written into a temp dir; nothing under /etc is read or changed.

import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { freePort, startChild, tempDir, type Child } from './processes.js';

export interface ReferenceSetup {
  readonly upstreamPort: number;
  /** The tenant whose limit never refuses (sent as `Bearer <token>`). */
  readonly tenantToken: string;
  /** The tenant whose limit is spent after one request. */
  readonly tinyToken: string;
  /** Source addresses whose connections are dropped unanswered. */
  readonly banned: readonly string[];
  /** Every other tenant's limit (nginx only; default: one that never refuses). */
  readonly tenantRate?: { readonly perSecond: number; readonly burst: number };
  /** nginx worker_processes / haproxy nbthread. */
  readonly workers: number;
  readonly cpus?: string;
}

export interface RunningServer {
  readonly name: string;
  readonly port: number;
  /** Root of the process tree whose CPU is counted. */
  readonly pid: number;
  stop(): Promise<void>;
}

export function findBinary(name: string): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(delimiter), '/usr/sbin', '/usr/local/sbin', '/sbin'];
  for (const d of dirs) if (d && existsSync(join(d, name))) return join(d, name);
  return undefined;
}

/** Installs wrk, nginx-light and haproxy from the OS packages when some are missing and we are root.
 * Returns a line per tool it could not provide. */
export function ensureTools(): string[] {
  const want: Record<string, string> = { wrk: 'wrk', nginx: 'nginx-light', haproxy: 'haproxy' };
  const missing = Object.keys(want).filter((b) => !findBinary(b));
  if (missing.length && process.getuid?.() === 0 && findBinary('apt-get')) {
    const pkgs = missing.map((b) => want[b]);
    console.error(`installing ${pkgs.join(' ')} from the OS packages...`);
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    let r = spawnSync('apt-get', ['install', '-y', '-qq', ...pkgs], { stdio: 'inherit', env });
    if (r.status !== 0) {
      spawnSync('apt-get', ['update', '-qq'], { stdio: 'inherit', env });
      r = spawnSync('apt-get', ['install', '-y', '-qq', ...pkgs], { stdio: 'inherit', env });
    }
  }
  return Object.keys(want)
    .filter((b) => !findBinary(b))
    .map((b) => `${b} is not installed (apt-get install ${want[b]} as root) and was skipped`);
}

export function nginxConfig(s: ReferenceSetup, dir: string, port: number): string {
  const geo = s.banned.map((a) => `    ${a}/32 1;`).join('\n');
  return `# written by loadtest/references.ts
${process.getuid?.() === 0 ? 'user root;' : ''}
daemon off;
master_process on;
worker_processes ${s.workers};
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 16384; }
http {
  access_log off;
  client_body_temp_path ${dir}/tmp/body;
  proxy_temp_path ${dir}/tmp/proxy;
  fastcgi_temp_path ${dir}/tmp/fastcgi;
  uwsgi_temp_path ${dir}/tmp/uwsgi;
  scgi_temp_path ${dir}/tmp/scgi;
  keepalive_requests 10000000;
  keepalive_timeout 120s;
  map_hash_bucket_size 1024;
  # One zone per limit: the exhausted tenant has its own tiny rate, every other tenant a rate that never refuses.
  map $http_authorization $tiny_key { "Bearer ${s.tinyToken}" $http_authorization; default ""; }
  map $http_authorization $tenant_key { "Bearer ${s.tinyToken}" ""; default $http_authorization; }
  limit_req_zone $tenant_key zone=tenants:64m rate=${s.tenantRate?.perSecond ?? 1000000}r/s;
  limit_req_zone $tiny_key zone=tiny:1m rate=1r/m;
  limit_req_status 429;
  geo $banned {
    default 0;
${geo}
  }
  upstream app {
    server 127.0.0.1:${s.upstreamPort};
    keepalive 128;
  }
  server {
    listen 127.0.0.1:${port} backlog=4096;
    if ($banned) { return 444; }
    location / {
      limit_req zone=tenants burst=${s.tenantRate?.burst ?? 1000000} nodelay;
      limit_req zone=tiny;
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header X-Forwarded-For $remote_addr;
      proxy_set_header X-Request-Id $request_id;
    }
  }
}
`;
}

export function haproxyConfig(s: ReferenceSetup, dir: string, port: number): string {
  return `# written by loadtest/references.ts
global
  nbthread ${s.workers}
  maxconn 8000
  pidfile ${dir}/haproxy.pid
defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  timeout http-keep-alive 60s
  option http-keep-alive
  http-reuse always
  unique-id-format %{+X}o%ci:%cp_%fi:%fp_%Ts_%rt:%pid
  unique-id-header X-Request-Id
frontend fe
  bind 127.0.0.1:${port}
  tcp-request connection reject if { src ${s.banned.join(' ')} }
  http-request track-sc0 req.hdr(authorization) table tenants
  acl tiny req.hdr(authorization) -m str "Bearer ${s.tinyToken}"
  http-request deny deny_status 429 if tiny { sc_http_req_rate(0) gt 1 }
  http-request deny deny_status 429 if { sc_http_req_rate(0) gt 100000000 }
  option forwardfor
  default_backend app
backend tenants
  stick-table type string len 512 size 100k expire 60s store http_req_rate(1s)
backend app
  server s1 127.0.0.1:${s.upstreamPort}
`;
}

async function launch(name: string, cmd: string, args: (dir: string, port: number) => string[], config: (dir: string, port: number) => string, file: string, s: ReferenceSetup): Promise<RunningServer> {
  const dir = tempDir(`ward-bench-${name}-`);
  mkdirSync(join(dir, 'tmp'));
  const port = await freePort();
  writeFileSync(join(dir, file), config(dir, port));
  const child: Child = await startChild({ name, cmd, args: args(dir, port), cpus: s.cpus, readyPort: port, timeoutMs: 10000 });
  return { name, port, pid: child.pid, stop: () => child.stop() };
}

export function startNginx(s: ReferenceSetup): Promise<RunningServer> {
  const bin = findBinary('nginx');
  if (!bin) return Promise.reject(new Error('nginx is not installed'));
  return launch('nginx', bin, (dir) => ['-p', dir, '-c', join(dir, 'nginx.conf'), '-e', join(dir, 'error.log')], (d, p) => nginxConfig(s, d, p), 'nginx.conf', s);
}

export function startHaproxy(s: ReferenceSetup): Promise<RunningServer> {
  const bin = findBinary('haproxy');
  if (!bin) return Promise.reject(new Error('haproxy is not installed'));
  return launch('haproxy', bin, (dir) => ['-db', '-f', join(dir, 'haproxy.cfg')], (d, p) => haproxyConfig(s, d, p), 'haproxy.cfg', s);
}
