#!/usr/bin/env node
// The `ward` command: serve, policy check, token, and demo (what `npm start` runs).

import { parseArgs } from 'node:util';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createLogger } from './log.js';

const USAGE = `usage:
  ward serve --policies DIR [--workers N] [--drain-timeout S] [--kernel-bans]
  ward policy check DIR
  ward token --tenant T [--sub S] [--ttl 1h] --policies DIR
  ward demo            (the example policy in policies/ plus its demo upstream: what npm start runs)
  ward demo-upstream [--port 9001] [--host 127.0.0.1]   (the demo upstream alone, for multi-instance demos)`;

/** How long the closes after a drain may take before a stopping ward exits anyway. */
const CLOSE_GRACE_MS = 5_000;

function fail(msg: string): never {
  process.stderr.write(`ward: ${msg}\n`);
  process.exit(1);
}

async function serve(dir: string, workers: number | undefined, extra?: () => Promise<void>, drainTimeoutMs?: number, kernelBans?: boolean): Promise<void> {
  const log = createLogger();
  // Loaded lazily so `ward policy check` and `ward token` never need the native server.
  let sup: import('./instance/supervisor.js').Supervisor;
  /** Drains, then exits with `code`. The drain is bounded, but the closes after it (threads, stores,
   * servers) await their peers: one that never finishes must not keep a stopping ward alive until the
   * orchestrator's SIGKILL with no word of why. Past the drain timeout plus a grace, ward says so and
   * exits 1. */
  const shutdown = (code: number): void => {
    const limitMs = sup.drainTimeoutMs + CLOSE_GRACE_MS;
    setTimeout(() => {
      log.error({ limit_ms: limitMs }, 'shutdown did not finish in time: exiting anyway');
      process.exit(1);
    }, limitMs);
    void sup.drain().then(() => process.exit(code));
  };
  try {
    const { tuneGcForCpus } = await import('./instance/gc-tuning.js');
    if (tuneGcForCpus()) log.info({ cpus: 1 }, 'one CPU: young-generation collections run without parallel helper tasks');
    const { Supervisor } = await import('./instance/supervisor.js');
    sup = new Supervisor({ dir, workers, log, drainTimeoutMs, kernelBans, onThreadDied: () => shutdown(1) });
    // Before the start, not after: ward logs that it listens before the start has finished, and a
    // SIGTERM in between must drain (the drain waits for the start), not kill it outright.
    const stop = () => shutdown(0);
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
    await extra?.();
    await sup.start();
  } catch (err) {
    fail((err as Error).message);
  }
  process.on('SIGHUP', () => void sup.reload('SIGHUP'));
}

async function main(argv: string[]): Promise<void> {
  const [cmd, ...rest] = argv;
  switch (cmd) {
    case 'serve': {
      const { values } = parseArgs({ args: rest, options: { policies: { type: 'string' }, workers: { type: 'string' }, 'drain-timeout': { type: 'string' }, 'kernel-bans': { type: 'boolean' } } });
      if (!values.policies) fail(`serve needs --policies DIR\n${USAGE}`);
      const workers = values.workers !== undefined ? Number(values.workers) : undefined;
      if (workers !== undefined && !(Number.isInteger(workers) && workers >= 1)) fail(`--workers must be a whole number ≥ 1, got "${values.workers}"`);
      // How long SIGTERM waits for in-flight requests (default 10 s): fit it to the orchestrator's grace period.
      const drain = values['drain-timeout'] !== undefined ? Number(values['drain-timeout']) : undefined;
      if (drain !== undefined && !(Number.isFinite(drain) && drain >= 0)) fail(`--drain-timeout must be a number of seconds ≥ 0, got "${values['drain-timeout']}"`);
      // Denied and banned addresses refused by nftables before ward sees a connection (root or CAP_NET_ADMIN).
      return serve(values.policies, workers, undefined, drain !== undefined ? drain * 1000 : undefined, values['kernel-bans']);
    }
    case 'policy': {
      if (rest[0] !== 'check' || !rest[1]) fail(`usage: ward policy check DIR`);
      const { policyCheck } = await import('./policy/check.js');
      const r = await policyCheck(rest[1]);
      for (const l of r.lines) (r.code === 0 ? process.stdout : process.stderr).write(l + '\n');
      process.exit(r.code);
    }
    // eslint-disable-next-line no-fallthrough
    case 'token': {
      const { values } = parseArgs({ args: rest, options: { tenant: { type: 'string' }, sub: { type: 'string' }, ttl: { type: 'string' }, policies: { type: 'string' } } });
      if (!values.tenant || !values.policies) fail(`token needs --tenant T and --policies DIR\n${USAGE}`);
      const { loadPolicy } = await import('./policy/loader.js');
      const res = await loadPolicy(values.policies);
      if (!res.ok) fail(`invalid policy: ${res.problems.map((p) => `${p.file}:${p.line}:${p.col}: ${p.message}`)[0]}`);
      const { mintToken } = await import('./cli/token.js');
      try {
        process.stdout.write((await mintToken(res.policy, { tenant: values.tenant, sub: values.sub, ttl: values.ttl })) + '\n');
      } catch (err) {
        fail((err as Error).message);
      }
      return;
    }
    case 'demo': {
      const dir = resolve(fileURLToPath(new URL('../../policies', import.meta.url)));
      const { startDemoUpstream } = await import('./demo/demo-upstream.js');
      return serve(dir, undefined, async () => {
        const up = await startDemoUpstream(9001);
        createLogger({ name: 'demo-upstream' }).info({ port: up.port }, 'demo upstream listening');
      });
    }
    case 'demo-upstream': {
      const { values } = parseArgs({ args: rest, options: { port: { type: 'string' }, host: { type: 'string' } } });
      const port = Number(values.port ?? 9001);
      if (!(Number.isInteger(port) && port >= 0 && port <= 65535)) fail(`--port must be a port number, got "${values.port}"`);
      const { startDemoUpstream } = await import('./demo/demo-upstream.js');
      const up = await startDemoUpstream(port, values.host ?? '127.0.0.1').catch((err: Error) => fail(err.message));
      createLogger({ name: 'demo-upstream' }).info({ port: up.port }, 'demo upstream listening');
      // Stateless: nothing to drain.
      process.once('SIGTERM', () => process.exit(0));
      process.once('SIGINT', () => process.exit(0));
      return;
    }
    default:
      fail(cmd ? `unknown command "${cmd}"\n${USAGE}` : USAGE);
  }
}

void main(process.argv.slice(2));
