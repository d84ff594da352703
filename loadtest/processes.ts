// Child processes of a run (upstream, ward, references, wrk): spawned pinned to cores with taskset,
// awaited until ready, and always stopped, even when the run is interrupted.

import { spawn, type ChildProcess } from 'node:child_process';
import { createServer, connect } from 'node:net';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface ChildOptions {
  readonly name: string;
  readonly cmd: string;
  readonly args: readonly string[];
  /** taskset CPU list ("0", "1", "0,1"); undefined = not pinned. */
  readonly cpus?: string;
  readonly env?: NodeJS.ProcessEnv;
  readonly cwd?: string;
  /** Ready when a stdout/stderr line passes this test... */
  readonly readyLine?: (line: string) => boolean;
  /** ...or when this port accepts a TCP connection. */
  readonly readyPort?: number;
  readonly timeoutMs?: number;
}

export interface Child {
  readonly name: string;
  readonly pid: number;
  readonly proc: ChildProcess;
  /** Every line printed so far (stdout and stderr), for error messages. */
  readonly lines: string[];
  stop(): Promise<void>;
}

const live = new Set<Child>();
const tempDirs: string[] = [];
let hooked = false;

/** A fresh directory under the OS temp dir, removed when this process exits. */
export function tempDir(prefix: string): string {
  hookExit();
  const dir = mkdtempSync(join(tmpdir(), prefix));
  tempDirs.push(dir);
  return dir;
}

function hookExit(): void {
  if (hooked) return;
  hooked = true;
  const killAll = () => {
    for (const c of live) c.proc.kill('SIGKILL');
    for (const d of tempDirs) rmSync(d, { recursive: true, force: true });
  };
  process.on('exit', killAll);
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.on(sig, () => {
      killAll();
      process.exit(130);
    });
  }
}

let tasksetOk: boolean | undefined;

/** true when `taskset` exists and this machine has more than one CPU to place things on. */
export function canPin(): boolean {
  if (tasksetOk === undefined) tasksetOk = existsSync('/usr/bin/taskset') || existsSync('/bin/taskset');
  return tasksetOk;
}

export async function startChild(o: ChildOptions): Promise<Child> {
  hookExit();
  const pinned = o.cpus !== undefined && canPin();
  const proc = spawn(pinned ? 'taskset' : o.cmd, pinned ? ['-c', o.cpus!, o.cmd, ...o.args] : [...o.args], {
    env: o.env ?? process.env,
    cwd: o.cwd,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  let exited = false;
  const exit = new Promise<void>((resolve) => proc.once('exit', () => ((exited = true), resolve())));
  const child: Child = {
    name: o.name,
    pid: proc.pid ?? -1,
    proc,
    lines,
    async stop() {
      live.delete(child);
      if (exited) return;
      proc.kill('SIGTERM');
      const t = setTimeout(() => proc.kill('SIGKILL'), 3000);
      await exit;
      clearTimeout(t);
    },
  };
  live.add(child);
  let onLine: ((l: string) => void) | undefined;
  for (const stream of [proc.stdout!, proc.stderr!]) {
    let buf = '';
    stream.setEncoding('utf8');
    stream.on('data', (d: string) => {
      buf += d;
      let i: number;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        if (lines.length < 2000) lines.push(line);
        onLine?.(line);
      }
    });
  }
  const timeoutMs = o.timeoutMs ?? 15000;
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${o.name} not ready after ${timeoutMs} ms`)), timeoutMs);
      const done = (err?: Error) => {
        clearTimeout(timer);
        onLine = undefined;
        if (err) reject(err);
        else resolve();
      };
      proc.once('error', (e) => done(new Error(`${o.name} did not start: ${e.message}`)));
      proc.once('exit', (code, sig) => done(new Error(`${o.name} exited (${code ?? sig}) before it was ready`)));
      if (o.readyLine) {
        onLine = (l) => {
          if (o.readyLine!(l)) done();
        };
      } else if (o.readyPort !== undefined) {
        void waitPort(o.readyPort, timeoutMs).then(() => done(), (e: Error) => done(e));
      } else {
        done();
      }
    });
  } catch (e) {
    await child.stop();
    const tail = lines.slice(-5).join('\n  ');
    throw new Error(`${(e as Error).message}${tail ? `\n  ${tail}` : ''}`);
  }
  return child;
}

/** Runs a command to completion and returns its stdout (rejects on a non-zero exit). */
export interface ListeningChild {
  readonly port: number;
  readonly pid: number;
  readonly child: Child;
  stop(): Promise<void>;
}

/** A Node.js script of this folder run as its own process (pinned to `cpus`) that prints
 * {"msg":"listening","port":N} when ready; resolves with that port. */
export async function spawnListening(name: string, script: string, args: readonly string[], cpus?: string): Promise<ListeningChild> {
  const child = await startChild({ name, cmd: process.execPath, args: [script, ...args], cpus, readyLine: (l) => l.includes('"listening"') });
  const port = (JSON.parse(child.lines.find((l) => l.includes('"listening"'))!) as { port: number }).port;
  return { port, pid: child.pid, child, stop: () => child.stop() };
}

export function runToEnd(cmd: string, args: readonly string[], cpus?: string): Promise<string> {
  const pinned = cpus !== undefined && canPin();
  return new Promise((resolve, reject) => {
    const p = spawn(pinned ? 'taskset' : cmd, pinned ? ['-c', cpus!, cmd, ...args] : [...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    p.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    p.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
    p.once('error', reject);
    p.once('exit', (code) =>
      code === 0 ? resolve(out) : reject(new Error(`${cmd} exited ${code}: ${err.trim() || out.trim()}`)),
    );
  });
}

export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, host, () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

export async function waitPort(port: number, timeoutMs: number, host = '127.0.0.1'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect({ port, host }, () => (s.destroy(), resolve(true)));
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`nothing listens on ${host}:${port} after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
