// A real Kamailio SIP-over-WebSocket registrar/proxy for the SIP tests, on a free loopback port,
// with test/fixtures/kamailio/kamailio.cfg. It logs every request it receives as
// "KAMAILIO-SAW <method> <Call-ID> <CSeq>", which is how a test proves an INVITE never reached it.
// Needs `kamailio` and `kamailio-websocket-modules` (Debian); .ci/run installs them.

import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { connect as tcpConnect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const KAMAILIO_BIN = process.env.KAMAILIO_BIN ?? '/usr/sbin/kamailio';

export interface Kamailio {
  readonly port: number;
  /** ws://127.0.0.1:PORT */
  readonly url: string;
  readonly logs: string[];
  /** How many requests of `method` (and Call-ID, when given) Kamailio received. */
  saw(method: string, callId?: string): number;
  stop(): Promise<void>;
}

/** The fixture config, found from this file wherever the tests were compiled to. */
function configPath(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    const p = join(dir, 'test', 'fixtures', 'kamailio', 'kamailio.cfg');
    if (existsSync(p)) return p;
    dir = dirname(dir);
  }
  throw new Error('test/fixtures/kamailio/kamailio.cfg not found above ' + fileURLToPath(import.meta.url));
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const c = tcpConnect(port, '127.0.0.1');
    c.once('connect', () => {
      c.destroy();
      resolve(true);
    });
    c.once('error', () => resolve(false));
  });
}

export async function startKamailio(): Promise<Kamailio> {
  if (!existsSync(KAMAILIO_BIN)) throw new Error(`${KAMAILIO_BIN} not found: apt-get install kamailio kamailio-websocket-modules`);
  let lastError: Error | undefined;
  // The free port can be taken between the probe and Kamailio's bind: try a few.
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      return await startOn(await freePort());
    } catch (err) {
      lastError = err as Error;
    }
  }
  throw lastError!;
}

async function startOn(port: number): Promise<Kamailio> {
  const run = mkdtempSync(join(tmpdir(), 'ward-kamailio-'));
  // -DD: stay in the foreground; -E: log to stderr; small shared/private memory for a test.
  const args = ['-f', configPath(), '-l', `tcp:127.0.0.1:${port}`, '-DD', '-E', '-m', '64', '-M', '8', '-Y', run, '-P', join(run, 'kamailio.pid'), '-w', run];
  // Same process group as the test, so killing the test's group takes Kamailio's workers too.
  const proc: ChildProcess = spawn(KAMAILIO_BIN, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  // SIGTERM makes Kamailio's main process stop its forked workers; SIGKILL would orphan them.
  const terminate = (): void => void proc.kill('SIGTERM');
  process.once('exit', terminate);
  const logs: string[] = [];
  for (const s of [proc.stdout!, proc.stderr!]) {
    let buf = '';
    s.setEncoding('utf8');
    s.on('data', (d: string) => {
      buf += d;
      for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
        logs.push(buf.slice(0, i));
        buf = buf.slice(i + 1);
      }
    });
  }
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  const stop = async (): Promise<void> => {
    if (proc.exitCode === null && proc.signalCode === null) {
      terminate();
      const t = setTimeout(() => proc.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(t);
    }
    process.off('exit', terminate);
    rmSync(run, { recursive: true, force: true });
  };
  const deadline = Date.now() + 10_000;
  while (!(await accepts(port))) {
    if (proc.exitCode !== null || Date.now() > deadline) {
      await stop();
      throw new Error(`kamailio did not start on port ${port}:\n${logs.slice(-20).join('\n')}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    port,
    url: `ws://127.0.0.1:${port}`,
    logs,
    saw: (method, callId) => logs.filter((l) => l.includes(`KAMAILIO-SAW ${method} ${callId ?? ''}`)).length,
    stop,
  };
}
