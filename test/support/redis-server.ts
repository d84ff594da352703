// Real redis-server processes for tests: one standalone server, or a three-master Redis Cluster,
// each on free loopback ports in a temp dir, with persistence off (a restart starts empty, like a
// replaced Redis). Never the machine's 6379.

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface RedisServer {
  readonly port: number;
  readonly url: string;
  /** Graceful stop (SIGTERM), waits for the exit. */
  stop(): Promise<void>;
  /** SIGKILL, waits for the exit: Redis vanishing under load. */
  kill(): Promise<void>;
  /** Starts it again on the same port (empty: nothing is persisted). */
  restart(): Promise<void>;
}

export interface RedisClusterHandle {
  readonly ports: readonly number[];
  /** `redis://127.0.0.1:PORT` per master, for `store.nodes`. */
  readonly nodes: readonly string[];
  /** SIGKILLs master i (its slots, with no replica, make the cluster fail). */
  kill(i: number): Promise<void>;
  /** Starts master i again with its nodes.conf (same id and slots, empty data); waits for cluster_state:ok. */
  restart(i: number): Promise<void>;
  stop(): Promise<void>;
}

/** A free TCP port on loopback (bound and released; good enough for a test). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/** Sends one inline command over a raw socket and returns the reply text, or null if not connectable. */
function rawCommand(port: number, cmd: string, timeoutMs = 500): Promise<string | null> {
  return new Promise((resolve) => {
    const sock = createConnection({ host: '127.0.0.1', port });
    let buf = '';
    const done = (v: string | null) => {
      clearTimeout(timer);
      sock.destroy();
      resolve(v);
    };
    const timer = setTimeout(() => done(null), timeoutMs);
    sock.on('error', () => done(null));
    sock.on('connect', () => sock.write(cmd + '\r\n'));
    sock.on('data', (d) => {
      buf += d.toString('utf8');
      // Bulk replies: "$len\r\n...\r\n"; simple: "+OK\r\n" / "-ERR ...\r\n".
      if (buf.startsWith('$')) {
        const nl = buf.indexOf('\r\n');
        const len = Number(buf.slice(1, nl));
        if (buf.length >= nl + 2 + len + 2) done(buf.slice(nl + 2, nl + 2 + len));
      } else if (buf.endsWith('\r\n')) done(buf.trim());
    });
  });
}

async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

function spawnRedis(port: number, dir: string, extra: readonly string[]): ChildProcess {
  const child = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'no', '--logfile', '', '--loglevel', 'warning',
      // DEBUG SLEEP lets a test stall the server the way an overloaded Redis would (loopback only).
      '--enable-debug-command', 'local', ...extra],
    { stdio: ['ignore', 'ignore', 'inherit'] },
  );
  return child;
}

async function startOn(port: number, dir: string, extra: readonly string[]): Promise<ChildProcess> {
  const child = spawnRedis(port, dir, extra);
  let spawnError: Error | undefined;
  child.on('error', (err) => (spawnError = err));
  await waitFor(`redis-server on port ${port}`, async () => {
    if (spawnError) throw new Error(`cannot start redis-server (is it on PATH?): ${spawnError.message}`);
    if (child.exitCode !== null) throw new Error(`redis-server on port ${port} exited with ${child.exitCode}`);
    return (await rawCommand(port, 'PING')) === '+PONG';
  }, 5000);
  return child;
}

/** Starts a standalone redis-server on a free port. */
export async function startRedis(): Promise<RedisServer> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'ward-redis-'));
  let child: ChildProcess | undefined = await startOn(port, dir, []);
  const end = async (signal: NodeJS.Signals) => {
    const c = child;
    child = undefined;
    if (!c) return;
    c.kill(signal);
    await exited(c);
  };
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    kill: () => end('SIGKILL'),
    restart: async () => {
      await end('SIGKILL');
      child = await startOn(port, dir, []);
    },
    stop: async () => {
      await end('SIGTERM');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

function run(cmd: string, args: readonly string[]): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d) => (output += d));
    child.stderr.on('data', (d) => (output += d));
    child.on('error', (err) => resolve({ code: null, output: err.message }));
    child.on('close', (code) => resolve({ code, output }));
  });
}

/** Starts three cluster-enabled masters, joins them with `redis-cli --cluster create`, and waits for
 * `cluster_state:ok` on every node. */
export async function startRedisCluster(): Promise<RedisClusterHandle> {
  const dir = mkdtempSync(join(tmpdir(), 'ward-redis-cluster-'));
  const ports: number[] = [];
  const nodeArgs: { dir: string; extra: string[] }[] = [];
  const children: (ChildProcess | undefined)[] = [];
  const stopAll = async (signal: NodeJS.Signals) => {
    const live = children.filter((c): c is ChildProcess => c !== undefined);
    children.fill(undefined);
    for (const c of live) c.kill(signal);
    await Promise.all(live.map(exited));
  };
  const clusterOk = async () => {
    for (const port of ports) {
      await waitFor(`cluster_state:ok on ${port}`, async () => {
        const info = await rawCommand(port, 'CLUSTER INFO');
        return info !== null && info.includes('cluster_state:ok');
      }, 15_000);
    }
  };
  try {
    for (let i = 0; i < 3; i++) {
      const port = await freePort();
      const busPort = await freePort();
      const nodeDir = join(dir, String(port));
      mkdirSync(nodeDir);
      ports.push(port);
      // nodes.conf in the node's own dir lets a restarted node rejoin with its id and slots.
      const extra = ['--cluster-enabled', 'yes', '--cluster-port', String(busPort), '--cluster-config-file', 'nodes.conf', '--cluster-node-timeout', '2000'];
      nodeArgs.push({ dir: nodeDir, extra });
      children.push(await startOn(port, nodeDir, extra));
    }
    const create = await run('redis-cli', [
      '--cluster', 'create', ...ports.map((p) => `127.0.0.1:${p}`), '--cluster-replicas', '0', '--cluster-yes',
    ]);
    if (create.code !== 0) throw new Error(`redis-cli --cluster create failed: ${create.output}`);
    await clusterOk();
  } catch (err) {
    await stopAll('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  return {
    ports,
    nodes: ports.map((p) => `redis://127.0.0.1:${p}`),
    kill: async (i) => {
      const c = children[i];
      children[i] = undefined;
      if (c) {
        c.kill('SIGKILL');
        await exited(c);
      }
    },
    restart: async (i) => {
      if (!children[i]) children[i] = await startOn(ports[i]!, nodeArgs[i]!.dir, nodeArgs[i]!.extra);
      await clusterOk();
    },
    stop: async () => {
      await stopAll('SIGTERM');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
