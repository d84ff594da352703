// End-to-end call keys through a running ward (two listener threads): the SDK publishes bundles
// over HTTP, checks the key log, and completes a call over the /v1/e2e/relay WebSocket. ward only
// ever holds public keys and ciphertext: a plaintext marker is looked for in its logs and memory.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { openSync, readSync, closeSync, readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { connect } from 'node:net';
import WebSocket from 'ws';
import { policyDir, basePolicy, startWard, type WardProcess, type PolicyFiles } from './support/ward-process.js';
import { request, bearer } from './support/http.js';
import { signJwt, standardClaims } from './support/jwt.js';
import { Device, KeyLog, fromBase64url, toBase64url } from '../crypto/sdk/index.js';

let pol: PolicyFiles;
let ward: WardProcess;
const tok = (tenant: string, sub: string) => signJwt(pol.key, standardClaims(tenant, { sub }));

before(async () => {
  pol = policyDir();
  pol.write(
    basePolicy('http://127.0.0.1:9', {
      e2e: { cors_origins: ['https://app.example'] },
      tenants: {
        '*': { buckets: { api: { rate: 100, per_s: 1 }, calls: { rate: 100, per_s: 1 }, e2e: { rate: 100, per_s: 1, burst: 200 } }, concurrency: { calls: 5 } },
        stingy: { buckets: { e2e: { rate: 1, per_s: 60, burst: 2 } } },
      },
    }),
  );
  ward = await startWard(pol.dir, { workers: 2 });
});

after(async () => {
  await ward.stop();
  pol.remove();
});

function e2e(token: string) {
  const h = bearer(token);
  return {
    get: (path: string) => request(`${ward.base}/v1/e2e${path}`, { headers: h }),
    ok: async (path: string) => {
      const r = await request(`${ward.base}/v1/e2e${path}`, { headers: h });
      assert.equal(r.status, 200, `${path}: ${r.body}`);
      return r.json();
    },
    put: (device: string, body: unknown) => request(`${ward.base}/v1/e2e/devices/${device}`, { method: 'PUT', headers: { ...h, 'content-type': 'application/json' }, body: JSON.stringify(body) }),
  };
}

/** A relay connection; the token goes in the query, as a browser must send it. */
async function relay(token: string, device: string) {
  const ws = new WebSocket(`ws://127.0.0.1:${ward.port}/v1/e2e/relay?device=${device}&access_token=${token}`);
  const inbox: any[] = [];
  let wake: (() => void) | undefined;
  ws.on('message', (d) => {
    inbox.push(JSON.parse(String(d)));
    wake?.();
  });
  await new Promise<void>((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  });
  return {
    ws,
    send: (to: string, payload: unknown) => ws.send(JSON.stringify({ to, payload })),
    next: async (ms = 3000): Promise<any> => {
      const end = Date.now() + ms;
      while (inbox.length === 0) {
        if (Date.now() > end) throw new Error('no relay message');
        await new Promise<void>((r) => {
          wake = r;
          setTimeout(r, 25);
        });
      }
      return inbox.shift();
    },
    close: () => ws.close(),
  };
}

test('two devices complete a call through ward: equal SAS, frames both ways, replays refused, no plaintext in ward', async () => {
  const alice = await Device.create({ tenant: 'acme', user: 'alice', device: 'a1' });
  const bob = await Device.create({ tenant: 'acme', user: 'bob', device: 'b1' });
  const A = e2e(tok('acme', 'alice'));
  const B = e2e(tok('acme', 'bob'));
  assert.equal((await A.put('a1', alice.bundle(5))).status, 200);
  assert.equal((await B.put('b1', bob.bundle(5))).status, 200);

  // Alice checks Bob's key against the signed, append-only log before calling.
  const log = new KeyLog((await A.ok('/log/key')).key, { tenant: 'acme' });
  const head = await A.ok('/log/head');
  log.verifyHead(head);
  const bundle = (await A.ok('/users/bob/bundles')).bundles[0];
  const proven = log.verifyInclusion(head, await A.ok(`/log/proof?user=bob&device=${bundle.device}`));
  assert.equal(proven.identity_key, bob.identityKey);

  // Several connections: the kernel spreads them over both threads; the relay spans them.
  const ra = await relay(tok('acme', 'alice'), 'a1');
  const rb = await relay(tok('acme', 'bob'), 'b1');
  const { session, hello } = await alice.call(bundle, { callId: 'call-wire-1' });
  ra.send('b1', { hello });
  const got = await rb.next();
  assert.equal(got.from, 'a1');
  const { session: bobSession, reply } = await bob.answer(got.payload.hello);
  rb.send('a1', { reply });
  const reveal = await session.confirm((await ra.next()).payload.reply);
  ra.send('b1', { reveal });
  await bobSession.confirm((await rb.next()).payload.reveal);
  assert.equal(session.sas, bobSession.sas);

  const marker = `MARKER-${randomBytes(12).toString('hex')}`;
  ra.send('b1', { frame: toBase64url(session.seal(new TextEncoder().encode(marker))) });
  const frame = fromBase64url((await rb.next()).payload.frame)!;
  assert.equal(new TextDecoder().decode(bobSession.open(frame)), marker);
  rb.send('a1', { frame: toBase64url(bobSession.seal(new TextEncoder().encode('pong'))) });
  assert.equal(new TextDecoder().decode(session.open(fromBase64url((await ra.next()).payload.frame)!)), 'pong');

  // Replays: the same frame again, and the same hello again.
  ra.send('b1', { frame: toBase64url(frame) });
  const replayed = fromBase64url((await rb.next()).payload.frame)!;
  assert.throws(() => bobSession.open(replayed), { code: 'ERR_REPLAY' });
  ra.send('b1', { hello });
  await assert.rejects(bob.answer((await rb.next()).payload.hello), { code: 'ERR_REPLAY' });

  // ward never held the plaintext: not in its logs, not in its memory.
  assert.ok(!ward.logs.join('\n').includes(marker), 'marker in ward logs');
  assert.equal(findInMemory(ward.proc.pid!, marker), false, 'marker found in ward process memory');
  ra.close();
  rb.close();
});

/** Scans the process's writable memory for `needle` (as root, via /proc/PID/mem). */
function findInMemory(pid: number, needle: string): boolean {
  const want = Buffer.from(needle);
  const maps = readFileSync(`/proc/${pid}/maps`, 'utf8').split('\n');
  const fd = openSync(`/proc/${pid}/mem`, 'r');
  let scanned = 0;
  try {
    for (const line of maps) {
      const m = /^([0-9a-f]+)-([0-9a-f]+) rw/.exec(line);
      if (!m) continue;
      const start = parseInt(m[1]!, 16);
      const end = parseInt(m[2]!, 16);
      for (let off = start; off < end; off += 1 << 24) {
        const len = Math.min(1 << 24, end - off) + want.length;
        const buf = Buffer.alloc(len);
        let n = 0;
        try {
          n = readSync(fd, buf, 0, len, off);
        } catch {
          break;
        }
        scanned += n;
        if (buf.subarray(0, n).includes(want)) return true;
      }
    }
  } finally {
    closeSync(fd);
  }
  assert.ok(scanned > 1 << 20, 'memory was actually read');
  return false;
}

test('bad bundles get 400 bad_bundle and leave the log unchanged', async () => {
  const carol = await Device.create({ tenant: 'acme', user: 'carol', device: 'c1' });
  const C = e2e(tok('acme', 'carol'));
  const size = (await C.ok('/log/head')).size;
  const good = carol.bundle(2);
  const badSig = structuredClone(good);
  badSig.signed_prekey.sig = toBase64url(new Uint8Array(64));
  const short = structuredClone(good);
  short.identity_key = toBase64url(new Uint8Array(31));
  const tooMany = carol.bundle(100);
  tooMany.one_time_prekeys.push({ ...tooMany.one_time_prekeys[0]!, id: 100_000 });
  for (const [name, body] of [['bad signature', badSig], ['short key', short], ['101 prekeys', tooMany], ['not json', 'nope']] as const) {
    const r = await C.put('c1', body);
    assert.equal(r.status, 400, name);
    assert.equal(r.json().error, 'bad_bundle', name);
    assert.ok(r.json().request_id, name);
  }
  assert.equal((await C.ok('/log/head')).size, size);
});

test('every endpoint needs a token with a sub; tenants never see each other', async () => {
  assert.equal((await request(`${ward.base}/v1/e2e/log/head`)).status, 401);
  const noSub = signJwt(pol.key, (() => { const c = standardClaims('acme'); delete c.sub; return c; })());
  assert.equal((await e2e(noSub).get('/log/head')).status, 401);
  const dave = await Device.create({ tenant: 'acme', user: 'dave', device: 'd1' });
  assert.equal((await e2e(tok('acme', 'dave')).put('d1', dave.bundle(1))).status, 200);
  // Another tenant asking for acme's dave finds nothing, and its log is its own.
  const G = e2e(tok('globex', 'dave'));
  const theirs = await G.get('/users/dave/bundles');
  assert.ok(theirs.status === 404 || theirs.json().bundles.length === 0, theirs.body);
  assert.equal((await G.ok('/log/head')).size, 0);
  // A globex device cannot reach acme's devices over the relay.
  const spy = await relay(tok('globex', 'eve'), 'e1');
  const victim = await relay(tok('acme', 'dave'), 'd1');
  spy.send('d1', { hello: 'hi' });
  assert.deepEqual(await spy.next(), { error: 'not_connected', to: 'd1' });
  await assert.rejects(victim.next(500));
  spy.close();
  victim.close();
});

test('a relay message nested thousands deep gets bad_message; the session and ward carry on', async () => {
  const a = await relay(tok('acme', 'nester'), 'n1');
  const b = await relay(tok('acme', 'nester'), 'n2');
  const depth = 30_000; // ~60 KB, under the relay's 64 KB message limit
  a.ws.send(`{"to":"n2","payload":${'['.repeat(depth)}${']'.repeat(depth)}}`);
  assert.deepEqual(await a.next(), { error: 'bad_message', detail: 'payload nested too deeply' });
  a.send('n2', { hello: 1 });
  assert.deepEqual((await b.next()).payload, { hello: 1 });
  assert.equal((await request(`${ward.admin}/healthz`)).status, 200);
  a.close();
  b.close();
});

test('the relay upgrade is refused without a valid token', async () => {
  const ws = new WebSocket(`ws://127.0.0.1:${ward.port}/v1/e2e/relay?device=x1&access_token=garbage`);
  const status = await new Promise<number>((resolve) => {
    ws.on('unexpected-response', (_req, res) => resolve(res.statusCode!));
    ws.on('open', () => resolve(101));
    ws.on('error', () => {});
  });
  assert.equal(status, 401);
});

test('CORS for listed origins only, and the e2e bucket is charged', async () => {
  const pre = await request(`${ward.base}/v1/e2e/log/head`, { method: 'OPTIONS', headers: { origin: 'https://app.example', 'access-control-request-method': 'GET' } });
  assert.equal(pre.status, 204);
  assert.equal(pre.headers['access-control-allow-origin'], 'https://app.example');
  const other = await request(`${ward.base}/v1/e2e/log/head`, { method: 'OPTIONS', headers: { origin: 'https://evil.example' } });
  assert.equal(other.headers['access-control-allow-origin'], undefined);
  const S = e2e(tok('stingy', 'sam'));
  const statuses = [];
  for (let i = 0; i < 4; i++) statuses.push((await S.get('/log/head')).status);
  assert.deepEqual(statuses, [200, 200, 429, 429]);
});

test('an upload the client abandons mid-body ends: nothing waits for the rest of it', async () => {
  const token = tok('acme', 'quitter');
  const inFlight = async () => Number(/^ward_requests_in_flight (\d+)$/m.exec((await request(`${ward.admin}/metrics`)).body)?.[1]);
  for (let i = 0; i < 5; i++) {
    await new Promise<void>((resolve) => {
      const s = connect(ward.port, '127.0.0.1', () => {
        // Half of a declared 40 KB bundle, then the client is gone.
        s.write(`PUT /v1/e2e/devices/q${i} HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ${token}\r\ncontent-type: application/json\r\ncontent-length: 40000\r\n\r\n{"identity":"${'a'.repeat(20000)}`);
        setTimeout(() => s.destroy(), 100);
      });
      s.on('error', () => {});
      s.on('close', () => resolve());
    });
  }
  const deadline = Date.now() + 3000;
  let n = await inFlight();
  while (n !== 0 && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 50));
    n = await inFlight();
  }
  assert.equal(n, 0, 'abandoned uploads still in flight');
  assert.equal((await e2e(token).get('/log/head')).status, 200);
});

test('the SDK is importable as ward/crypto', async () => {
  const name = 'ward/crypto';
  const sdk = await import(name);
  assert.equal(typeof sdk.Device.create, 'function');
  assert.equal(typeof sdk.KeyLog, 'function');
});
