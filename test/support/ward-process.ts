// Starts a real `ward serve` process on a policy directory the test writes, and waits for its
// "listening" log line. Everything on loopback, ports chosen by the kernel (port 0).

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, mkdirSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { ed25519Key, type TestKey } from './jwt.js';

export const CLI = fileURLToPath(new URL('../../gateway/cli.js', import.meta.url));

export interface PolicyFiles {
  readonly dir: string;
  readonly key: TestKey;
  write(gateway: Record<string, unknown>): void;
  writeRaw(relPath: string, text: string): void;
  remove(): void;
}

/** A temp policy directory with a fresh Ed25519 signing key in keys/jwks.json. */
export function policyDir(): PolicyFiles {
  const dir = mkdtempSync(join(tmpdir(), 'ward-policy-'));
  mkdirSync(join(dir, 'keys'));
  const key = ed25519Key('test-key');
  writeFileSync(join(dir, 'keys', 'jwks.json'), JSON.stringify({ keys: [key.publicJwk] }));
  writeFileSync(join(dir, 'keys', 'dev-private.jwk'), JSON.stringify(key.privateJwk));
  return {
    dir,
    key,
    write(gateway) {
      writeFileSync(join(dir, 'gateway.yaml'), stringify(gateway));
    },
    writeRaw(rel, text) {
      writeFileSync(join(dir, rel), text);
    },
    remove() {
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A typical test policy: loopback, ports 0, memory store, the test key; override what you need. */
export function basePolicy(upstreamUrl: string, over: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    listen: { host: '127.0.0.1', port: 0 },
    admin: { host: '127.0.0.1', port: 0 },
    store: { kind: 'memory' },
    auth: { jwks_file: 'keys/jwks.json', issuer: 'https://id.test', audience: 'ward', algorithms: ['EdDSA', 'ES256'], tenant_claim: 'tenant' },
    upstreams: { api: { targets: [upstreamUrl], timeout_ms: 2000 } },
    routes: [
      { name: 'calls', prefix: '/v1/calls', methods: ['POST'], upstream: 'api', bucket: 'calls', concurrency: 'calls' },
      { name: 'public', prefix: '/v1/status', public: true, upstream: 'api' },
      { name: 'api', prefix: '/v1/', upstream: 'api', bucket: 'api' },
    ],
    flood: { max_body_bytes: 65536 },
    tenants: {
      '*': { buckets: { api: { rate: 1000, per_s: 1, burst: 1000 }, calls: { rate: 1000, per_s: 1, burst: 1000 } }, concurrency: { calls: 5 } },
    },
    ...over,
  };
}

export interface WardProcess {
  readonly proc: ChildProcess;
  readonly port: number;
  readonly adminPort: number;
  readonly base: string;
  readonly admin: string;
  /** Every log line so far (stdout + stderr). */
  readonly logs: string[];
  /** Signals ward (SIGTERM by default) and resolves with its exit code; rejects if ward logged that
   * its shutdown outlived its bound. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
  waitForLog(re: RegExp, timeoutMs?: number): Promise<string>;
}

/** `cpus` pins ward with taskset (e.g. "0"); `nodeFlags` go to node before the script. */
export function startWard(dir: string, opts: { workers?: number; env?: Record<string, string>; args?: string[]; cpus?: string; nodeFlags?: string[] } = {}): Promise<WardProcess> {
  const args = [...(opts.nodeFlags ?? []), CLI, 'serve', '--policies', dir, '--workers', String(opts.workers ?? 1), ...(opts.args ?? [])];
  const [cmd, ...argv] = opts.cpus !== undefined ? ['taskset', '-c', opts.cpus, process.execPath, ...args] : [process.execPath, ...args];
  const proc = spawn(cmd!, argv, { env: { ...process.env, ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const logs: string[] = [];
  const waiters: Array<{ re: RegExp; resolve: (l: string) => void }> = [];
  const onLine = (line: string) => {
    logs.push(line);
    for (let i = waiters.length - 1; i >= 0; i--) {
      if (waiters[i]!.re.test(line)) {
        waiters[i]!.resolve(line);
        waiters.splice(i, 1);
      }
    }
  };
  for (const stream of [proc.stdout!, proc.stderr!]) {
    let buf = '';
    stream.setEncoding('utf8');
    stream.on('data', (d: string) => {
      buf += d;
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        onLine(buf.slice(0, i));
        buf = buf.slice(i + 1);
      }
    });
  }
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
  const waitForLog = (re: RegExp, timeoutMs = 10_000) =>
    new Promise<string>((resolve, reject) => {
      const hit = logs.find((l) => re.test(l));
      if (hit) return resolve(hit);
      const t = setTimeout(() => reject(new Error(`no log line matching ${re} within ${timeoutMs} ms; logs:\n${logs.join('\n')}`)), timeoutMs);
      waiters.push({
        re,
        resolve: (l) => {
          clearTimeout(t);
          resolve(l);
        },
      });
    });
  return new Promise((resolve, reject) => {
    exited.then((code) => reject(new Error(`ward exited with ${code} before listening:\n${logs.join('\n')}`)));
    waitForLog(/"msg":"listening"/, 15_000).then((line) => {
      const j = JSON.parse(line) as { port: number; admin_port: number };
      resolve({
        proc,
        port: j.port,
        adminPort: j.admin_port,
        base: `http://127.0.0.1:${j.port}`,
        admin: `http://127.0.0.1:${j.admin_port}`,
        logs,
        waitForLog,
        stop: (signal = 'SIGTERM') => {
          if (proc.exitCode !== null) return Promise.resolve(proc.exitCode);
          proc.kill(signal);
          return exited.then((code) => {
            // A shutdown that outlived its bound is a hang in ward (cli.ts exits it and says so):
            // the test that stopped it fails with ward's last words rather than passing.
            const overran = logs.find((l) => l.includes('shutdown did not finish in time'));
            if (overran !== undefined) throw new Error(`ward did not finish shutting down:\n${logs.slice(-10).join('\n')}`);
            return code;
          });
        },
      });
    }, reject);
  });
}

/** Runs the ward CLI to completion: exit code, stdout, stderr. */
export function runCli(args: string[], opts: { env?: Record<string, string>; killAfterMs?: number } = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...opts.env } });
    if (opts.killAfterMs !== undefined) {
      const t = setTimeout(() => p.kill('SIGKILL'), opts.killAfterMs);
      p.once('exit', () => clearTimeout(t));
    }
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => (stderr += d));
    // 'close', not 'exit': the process can exit before its output has been read from the pipes.
    p.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** Ends what a test started, whichever of them it got to start: ward, then its upstream, then the policy dir. */
export async function stopAll(ward?: WardProcess, upstream?: { close(): Promise<void> }, policy?: PolicyFiles): Promise<void> {
  await ward?.stop();
  await upstream?.close();
  policy?.remove();
}
