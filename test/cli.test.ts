// The `ward` command as an operator runs it: `policy check` (a summary, or FILE:LINE:COL lines),
// `serve` refusing an invalid policy, `token`, the SIGTERM drain, and the admin port's
// /healthz, /readyz and /metrics (loopback-only unless the policy says otherwise).

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { once } from 'node:events';
import { cpSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';
import { networkInterfaces, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Agent, type ServerResponse } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { parse, stringify } from 'yaml';
import { policyDir, basePolicy, startWard, runCli, type PolicyFiles, type WardProcess, stopAll } from './support/ward-process.js';
import { startUpstream, request, bearer, type TestUpstream } from './support/http.js';
import { signJwt, standardClaims } from './support/jwt.js';
import { until } from './support/observe.js';

const POLICIES = fileURLToPath(new URL('../../policies/', import.meta.url));
const INVALID = join(POLICIES, 'fixtures', 'invalid');

/** Resolves with the connect error code ('connected' if a connection was made). */
function tryConnect(port: number, host: string): Promise<string> {
  return new Promise((resolve) => {
    const s = connect(port, host);
    s.setTimeout(3000, () => (s.destroy(), resolve('timeout')));
    s.once('connect', () => (s.destroy(), resolve('connected')));
    s.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? String(e)));
  });
}

const decode = (part: string) => JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));

describe('ward policy check', () => {
  // Every fixture's check runs at once (one node process each); the tests then read the results.
  const fixtures = readdirSync(INVALID).sort();
  const results = new Map<string, ReturnType<typeof runCli>>();
  before(() => {
    for (const name of fixtures) results.set(name, runCli(['policy', 'check', join(INVALID, name)]));
  });

  for (const dir of ['', 'fixtures/valid-minimal', 'fixtures/valid-full']) {
    it(`exits 0 with a one-line summary on policies/${dir}`, async () => {
      const r = await runCli(['policy', 'check', join(POLICIES, dir)]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stderr, '');
      const lines = r.stdout.trimEnd().split('\n');
      assert.equal(lines.length, 1, r.stdout);
      assert.match(lines[0]!, /ok/);
    });
  }

  for (const name of fixtures) {
    it(`exits 1 with FILE:LINE:COL lines on fixtures/invalid/${name}`, async () => {
      const dir = join(INVALID, name);
      const r = await results.get(name)!;
      assert.equal(r.code, 1, r.stdout);
      assert.equal(r.stdout, '');
      const lines = r.stderr.trimEnd().split('\n');
      for (const l of lines) assert.match(l, /^\S+:\d+:\d+: \S/);
      // Files are named from the directory as given on the command line; expected.txt has them relative to it.
      const expected = readFileSync(join(dir, 'expected.txt'), 'utf8').trimEnd().split('\n');
      assert.deepEqual(lines.map((l) => l.replaceAll(dir + '/', '')), expected);
    });
  }

  it('exits 1 naming gateway.yaml when the directory has none', async () => {
    const empty = mkdtempSync(join(tmpdir(), 'ward-empty-'));
    try {
      const r = await runCli(['policy', 'check', empty]);
      assert.equal(r.code, 1);
      assert.match(r.stderr.trimEnd(), /^\S*gateway\.yaml:1:1: \S.*$/);
    } finally {
      rmSync(empty, { recursive: true, force: true });
    }
  });
});

describe('ward serve on an invalid policy', () => {
  for (const name of ['unknown-upstream', 'yaml-syntax']) {
    it(`exits non-zero with a one-line reason (${name})`, async () => {
      const dir = join(INVALID, name);
      const r = await runCli(['serve', '--policies', dir, '--workers', '1']);
      assert.notEqual(r.code, 0);
      assert.doesNotMatch(r.stdout, /"msg":"listening"/);
      const lines = r.stderr.trimEnd().split('\n');
      assert.equal(lines.length, 1, r.stderr);
      const first = readFileSync(join(dir, 'expected.txt'), 'utf8').split('\n')[0]!;
      assert.ok(lines[0]!.replaceAll(dir + '/', '').includes(first), `${lines[0]} should name ${first}`);
    });
  }

  for (const workers of ['1', '2'])
  it(`exits 1 with a one-line reason when the admin port is taken (--workers ${workers})`, async () => {
    const busy = createServer();
    await new Promise<void>((r) => busy.listen(0, '127.0.0.1', r));
    const port = (busy.address() as AddressInfo).port;
    const pd = policyDir();
    try {
      pd.write(basePolicy('http://127.0.0.1:9', { admin: { host: '127.0.0.1', port } }));
      const r = await runCli(['serve', '--policies', pd.dir, '--workers', workers]);
      assert.equal(r.code, 1, r.stderr);
      assert.doesNotMatch(r.stdout, /"msg":"listening"/);
      assert.match(r.stderr, new RegExp(`^ward: .*admin port.*127\\.0\\.0\\.1:${port}.*\\n$`));
    } finally {
      pd.remove();
      busy.close();
    }
  });

  it('exits 1 with usage when --policies is missing, or the command is unknown', async () => {
    for (const args of [['serve'], ['frobnicate'], ['serve', '--policies', POLICIES, '--workers', 'many'], ['serve', '--policies', POLICIES, '--drain-timeout', 'soon']]) {
      const r = await runCli(args);
      assert.equal(r.code, 1, args.join(' '));
      assert.match(r.stderr, /^ward: /, args.join(' '));
    }
  });
});

describe('ward token', () => {
  let up: TestUpstream;
  let p: PolicyFiles;

  before(async () => {
    up = await startUpstream();
    p = policyDir();
    const pol = basePolicy(up.url);
    pol.auth = { ...(pol.auth as object), dev_signing_key: 'keys/dev-private.jwk' };
    p.write(pol);
  });
  after(async () => {
    await up?.close();
    p?.remove();
  });

  it('prints only a JWT for the tenant and subject, valid for the ttl, that ward accepts', async () => {
    const r = await runCli(['token', '--tenant', 'acme', '--sub', 'alice', '--ttl', '1h', '--policies', p.dir]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^[\w-]+\.[\w-]+\.[\w-]+\n$/);
    const token = r.stdout.trim();
    const [h, c] = token.split('.');
    const claims = decode(c!);
    assert.equal(decode(h!).alg, 'EdDSA');
    assert.equal(claims.tenant, 'acme');
    assert.equal(claims.sub, 'alice');
    assert.equal(claims.iss, 'https://id.test');
    assert.equal(claims.aud, 'ward');
    assert.ok(Math.abs(claims.exp - (Date.now() / 1000 + 3600)) < 120, `exp ${claims.exp}`);

    const w = await startWard(p.dir);
    try {
      const res = await request(w.base + '/v1/hello', { headers: bearer(token) });
      assert.equal(res.status, 200, res.body);
      assert.equal(res.json().headers['x-ward-tenant'], 'acme');
    } finally {
      await w.stop();
    }
  });

  it('refuses without --tenant, with a bad --ttl, or when the policy names no development key', async () => {
    const other = policyDir();
    try {
      other.write(basePolicy(up.url));
      const cases: Array<[string[], RegExp]> = [
        [['token', '--policies', p.dir], /--tenant/],
        [['token', '--tenant', 'acme', '--ttl', '1 hour', '--policies', p.dir], /--ttl/],
        [['token', '--tenant', 'acme', '--policies', other.dir], /dev_signing_key/],
      ];
      for (const [args, why] of cases) {
        const r = await runCli(args);
        assert.equal(r.code, 1, args.join(' '));
        assert.equal(r.stdout, '', args.join(' '));
        assert.match(r.stderr, why);
      }
    } finally {
      other.remove();
    }
  });
});

describe('admin port', () => {
  let up: TestUpstream;
  let p: PolicyFiles;
  let w: WardProcess;

  before(async () => {
    up = await startUpstream();
    p = policyDir();
    p.write(basePolicy(up.url, { admin: { port: 0 } })); // host left to its default
    w = await startWard(p.dir);
  });
  after(() => stopAll(w, up, p));

  it('answers /healthz 200 and /readyz 200 {"status":"ok"}', async () => {
    const h = await request(w.admin + '/healthz');
    assert.equal(h.status, 200);
    const r = await request(w.admin + '/readyz');
    assert.equal(r.status, 200);
    assert.deepEqual(r.json(), { status: 'ok' });
  });

  it('serves the contract’s metrics in Prometheus text', async () => {
    const token = signJwt(p.key, standardClaims('acme'));
    assert.equal((await request(w.base + '/v1/calls', { method: 'POST', headers: bearer(token), body: '{}' })).status, 200);
    const m = await request(w.admin + '/metrics');
    assert.equal(m.status, 200);
    assert.match(String(m.headers['content-type']), /^text\/plain/);
    assert.match(m.body, /^ward_requests_total\{tenant="acme",route="calls",outcome="ok"\} 1$/m);
    assert.match(m.body, /^# TYPE ward_dropped_total counter$/m);
    assert.match(m.body, /^ward_concurrency_in_use\{tenant="acme",pool="calls"\} 0$/m);
    assert.match(m.body, /^ward_policy_reloads_total\{result="success"\} \d+$/m);
    assert.match(m.body, /^ward_policy_reloads_total\{result="failure"\} \d+$/m);
  });

  const external = Object.values(networkInterfaces())
    .flat()
    .find((a) => a && a.family === 'IPv4' && !a.internal)?.address;

  it('binds to loopback when the policy leaves admin.host out', { skip: external ? false : 'no non-loopback IPv4 address to try' }, async () => {
    assert.equal(await tryConnect(w.adminPort, '127.0.0.1'), 'connected');
    assert.equal(await tryConnect(w.adminPort, external!), 'ECONNREFUSED');
  });

  it('binds to loopback with the example policy', { skip: external ? false : 'no non-loopback IPv4 address to try' }, async () => {
    // The example as shipped, with its fixed ports swapped for free ones.
    const dir = mkdtempSync(join(tmpdir(), 'ward-example-'));
    try {
      cpSync(POLICIES, dir, { recursive: true, filter: (src) => !src.includes('fixtures') });
      const doc = parse(readFileSync(join(dir, 'gateway.yaml'), 'utf8'));
      doc.listen.port = 0;
      doc.admin.port = 0;
      writeFileSync(join(dir, 'gateway.yaml'), stringify(doc));
      const ex = await startWard(dir);
      try {
        assert.equal(await tryConnect(ex.adminPort, '127.0.0.1'), 'connected');
        assert.equal(await tryConnect(ex.adminPort, external!), 'ECONNREFUSED');
        // ... while the listen port (0.0.0.0 in the example) is reachable from outside.
        assert.equal(await tryConnect(ex.port, external!), 'connected');
      } finally {
        await ex.stop();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('fault containment', () => {
  it('a bug met by one request closes that connection only: ward keeps serving everyone else', async () => {
    const up = await startUpstream();
    const p = policyDir();
    p.write(basePolicy(up.url));
    // WARD_FAULT_THROW_PATH: a request for exactly this path throws inside ward's request handler.
    const w = await startWard(p.dir, { workers: 2, env: { WARD_FAULT_THROW_PATH: '/v1/boom' } });
    try {
      const token = signJwt(p.key, standardClaims('acme'));
      for (let i = 0; i < 4; i++) {
        await assert.rejects(request(w.base + '/v1/boom', { headers: bearer(token) }), /socket hang up|ECONNRESET/);
      }
      // The same for a WebSocket upgrade.
      const upgrade = await new Promise<string>((resolve) => {
        const s = connect(w.port, '127.0.0.1', () =>
          s.write(`GET /v1/boom HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nAuthorization: Bearer ${token}\r\n\r\n`),
        );
        let got = '';
        s.on('data', (d) => (got += d));
        s.on('error', () => {});
        s.on('close', () => resolve(got));
      });
      assert.equal(upgrade, '');
      assert.equal((await request(w.base + '/v1/ok', { headers: bearer(token) })).status, 200);
      assert.equal((await request(w.admin + '/healthz')).status, 200);
      assert.equal(w.proc.exitCode, null);
      await w.waitForLog(/"level":50.*injected fault \(WARD_FAULT_THROW_PATH\).*its connection is closed/, 5000);
    } finally {
      await stopAll(w, up, p);
    }
  });
});

describe('fault containment at the end of a turn', () => {
  it('a bug writing one held answer closes that connection only, even with one worker', async () => {
    const up = await startUpstream();
    // A small answer with Content-Length arrives whole: ward holds it to the end of the turn.
    up.handle = (req, res) => res.end(JSON.stringify({ url: req.url }));
    const p = policyDir();
    p.write(basePolicy(up.url));
    // WARD_FAULT_THROW_ANSWER_PATH: writing the (small, whole, held) answer to this path throws.
    const w = await startWard(p.dir, { workers: 1, env: { WARD_FAULT_THROW_ANSWER_PATH: '/v1/boom-answer' } });
    try {
      const token = signJwt(p.key, standardClaims('acme'));
      // Others' answers held in the same turns are written all the same.
      const results = await Promise.allSettled([
        request(w.base + '/v1/boom-answer', { headers: bearer(token) }),
        ...Array.from({ length: 6 }, (_, i) => request(w.base + `/v1/ok/${i}`, { headers: bearer(token) })),
      ]);
      assert.equal(results[0]!.status, 'rejected');
      assert.match(String((results[0] as PromiseRejectedResult).reason), /socket hang up|ECONNRESET/);
      for (const r of results.slice(1)) assert.equal(r.status === 'fulfilled' && r.value.status, 200);
      assert.equal((await request(w.base + '/v1/ok', { headers: bearer(token) })).status, 200);
      assert.equal(w.proc.exitCode, null);
      // pino writes asynchronously: the line may come a moment after the connection closed.
      await w.waitForLog(/"level":50.*injected fault \(WARD_FAULT_THROW_ANSWER_PATH\).*writing an answer; its connection is closed/, 5000);
      const metrics = (await request(w.admin + '/metrics')).body;
      assert.match(metrics, /ward_requests_total\{tenant="acme",route="api",outcome="error"\} 1\b/);
      for (const l of metrics.split('\n').filter((x) => x.startsWith('ward_concurrency_in_use{'))) assert.match(l, / 0$/, 'no lease left behind');
    } finally {
      await stopAll(w, up, p);
    }
  });
});

describe('SIGTERM drain', () => {
  let up: TestUpstream;
  let p: PolicyFiles;
  const held: ServerResponse[] = [];

  before(async () => {
    up = await startUpstream();
    up.handle = (req, res) => {
      if (req.url === '/v1/hold') return void held.push(res);
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"ok":true}');
    };
    p = policyDir();
    p.write(basePolicy(up.url));
  });
  after(async () => {
    for (const r of held) r.destroy();
    await up?.close();
    p?.remove();
  });

  for (const workers of [1, 2])
  it(`stops accepting, answers readyz 503, lets the in-flight request finish with 200, then exits 0 (--workers ${workers})`, async () => {
    held.length = 0;
    const w = await startWard(p.dir, { workers });
    const exited = once(w.proc, 'exit') as Promise<[number | null, string | null]>;
    try {
      const token = signJwt(p.key, standardClaims('acme'));
      const keepAlive = new Agent({ keepAlive: true, maxSockets: 1 });
      assert.equal((await request(w.base + '/v1/ok', { headers: bearer(token), agent: keepAlive })).status, 200);
      const inFlight = request(w.base + '/v1/hold', { headers: bearer(token) });
      await until('the upstream to hold the request', () => held.length === 1);

      w.proc.kill('SIGTERM');
      await until('the listen port to refuse connections', async () => (await tryConnect(w.port, '127.0.0.1')) === 'ECONNREFUSED');
      const ready = await request(w.admin + '/readyz');
      assert.equal(ready.status, 503);
      assert.equal(ready.json().status, 'unavailable');
      // A kept-alive client asking again is told, not dropped.
      const late = await request(w.base + '/v1/ok', { headers: bearer(token), agent: keepAlive });
      assert.equal(late.status, 503);
      assert.equal(late.json().error, 'shutting_down');
      keepAlive.destroy();
      assert.equal(w.proc.exitCode, null, 'ward exited with a request in flight');

      held[0]!.writeHead(200, { 'content-type': 'application/json' }).end('{"finished":true}');
      const r = await inFlight;
      assert.equal(r.status, 200);
      assert.deepEqual(r.json(), { finished: true });
      const [code, signal] = await exited;
      assert.equal(signal, null);
      assert.equal(code, 0);
    } finally {
      if (w.proc.exitCode === null) w.proc.kill('SIGKILL');
    }
  });

  it('exits 0 with clients still connected when the drain ends: idle keep-alive connections and stalled uploads (--workers 2)', async () => {
    const w = await startWard(p.dir, { workers: 2, args: ['--drain-timeout', '1'] });
    const exited = once(w.proc, 'exit') as Promise<[number | null, string | null]>;
    const sockets: Socket[] = [];
    try {
      const token = signJwt(p.key, standardClaims('acme', { sub: 'drainer' }));
      const open = (first: string) =>
        new Promise<Socket>((resolve) => {
          const s = connect(w.port, '127.0.0.1', () => (s.write(first), resolve(s)));
          s.on('error', () => {});
          sockets.push(s);
        });
      // Several of each, so both threads hold some (the kernel spreads connections between them).
      for (let i = 0; i < 4; i++) {
        const idle = await open(`GET /v1/ok HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ${token}\r\n\r\n`);
        await new Promise((r) => idle.once('data', r)); // answered, and kept alive
        await open(`PUT /v1/e2e/devices/d${i} HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ${token}\r\ncontent-length: 5000\r\n\r\n{"half":`);
      }
      w.proc.kill('SIGTERM');
      const [code, signal] = await exited;
      assert.equal(signal, null, w.logs.slice(-5).join('\n'));
      assert.equal(code, 0, w.logs.slice(-5).join('\n'));
    } finally {
      for (const s of sockets) s.destroy();
      if (w.proc.exitCode === null) w.proc.kill('SIGKILL');
    }
  });

  it('a listener thread that dies makes ward say why, drain the others and exit 1 (not hang, not abort)', async () => {
    // WARD_FAULT_CRASH_THREAD=1: thread 1 throws an uncaught error 300 ms after it started.
    const r = await runCli(['serve', '--policies', p.dir, '--workers', '2'], { env: { WARD_FAULT_CRASH_THREAD: '1' }, killAfterMs: 20_000 });
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(r.stdout, /"level":60.*"reason":"listener thread 1 threw: injected fault/);
  });

  it('a listener thread that dies while ward is still starting: the start finishes, then ward drains and exits 1', async () => {
    // Thread 1 throws as soon as it is up, before the second thread, the admin port and the watcher.
    const r = await runCli(['serve', '--policies', p.dir, '--workers', '2'], { env: { WARD_FAULT_CRASH_THREAD: '1', WARD_FAULT_CRASH_AFTER_MS: '0' }, killAfterMs: 20_000 });
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(r.stdout, /"reason":"listener thread 1 threw: injected fault/);
    assert.doesNotMatch(r.stderr, /TypeError|Assertion failed/, r.stderr);
  });

  it('a SIGTERM as soon as ward says it listens (its start still finishing) drains and exits 0, not killed by the signal', async () => {
    for (let i = 0; i < 3; i++) {
      const w = await startWard(p.dir);
      const exited = once(w.proc, 'exit') as Promise<[number | null, string | null]>;
      w.proc.kill('SIGTERM');
      const [code, signal] = await exited;
      assert.equal(signal, null, `run ${i + 1}: killed by ${signal}`);
      assert.equal(code, 0, w.logs.slice(-5).join('\n'));
    }
  });

  it('a close that never finishes after the drain: ward says so and exits 1 once the drain timeout plus 5 s are up', async () => {
    // WARD_FAULT_DRAIN_HANG: the supervisor's closes after the drain never finish.
    const w = await startWard(p.dir, { args: ['--drain-timeout', '1'], env: { WARD_FAULT_DRAIN_HANG: '1' } });
    const exited = once(w.proc, 'exit') as Promise<[number | null, string | null]>;
    try {
      const t0 = Date.now();
      w.proc.kill('SIGTERM');
      const [code, signal] = await exited;
      const took = Date.now() - t0;
      assert.equal(signal, null);
      assert.equal(code, 1, w.logs.slice(-5).join('\n'));
      assert.ok(took >= 5_500 && took < 9_000, `exited ${took} ms after SIGTERM (drain timeout 1 s + 5 s)`);
      const line = w.logs.find((l) => l.includes('shutdown did not finish in time'));
      assert.ok(line, w.logs.slice(-5).join('\n'));
      assert.equal(JSON.parse(line).limit_ms, 6000);
    } finally {
      if (w.proc.exitCode === null) w.proc.kill('SIGKILL');
    }
  });

  it('bounds the drain: a request that never finishes does not keep ward from exiting 0', async () => {
    held.length = 0;
    // An upstream timeout longer than the drain's bound (--drain-timeout 2 s), so only the bound can end it.
    const slow = policyDir();
    slow.write(basePolicy(up.url, { upstreams: { api: { targets: [up.url], timeout_ms: 60_000 } } }));
    const w = await startWard(slow.dir, { args: ['--drain-timeout', '2'] });
    const exited = once(w.proc, 'exit') as Promise<[number | null, string | null]>;
    try {
      const token = signJwt(slow.key, standardClaims('acme'));
      const stuck = request(w.base + '/v1/hold', { headers: bearer(token) }).then(
        (r) => `answered ${r.status}`,
        (e: NodeJS.ErrnoException) => e.code ?? e.message,
      );
      await until('the upstream to hold the request', () => held.length === 1);
      const t0 = Date.now();
      w.proc.kill('SIGTERM');
      const [code, signal] = await exited;
      assert.equal(signal, null);
      assert.equal(code, 0);
      const took = Date.now() - t0;
      assert.ok(took > 1_500 && took < 10_000, `drain took ${took} ms`);
      // The client is not left waiting on a connection to a process that is gone.
      assert.match(await stuck, /^(ECONNRESET|answered 5\d\d)$/);
    } finally {
      if (w.proc.exitCode === null) w.proc.kill('SIGKILL');
      slow.remove();
    }
  });
});
