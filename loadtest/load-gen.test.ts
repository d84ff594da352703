import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:net';
import { runLoad } from './load-gen.js';
import { runLoadNative } from './load-gen-native.js';
import { runConnectFlood } from './connect-flood.js';
import { prioritized, startLoadInChild } from './load-gen-child.js';
import { readFileSync } from 'node:fs';
import { startUpstream } from './upstream.js';

/** A raw TCP server answering each request with `answer(n)` (or closing when it returns null). */
function rawServer(answer: (n: number) => string | null): Promise<{ port: number; server: Server }> {
  let n = 0;
  const server = createServer((s) => {
    s.on('data', (d) => {
      for (let i = 0; i < d.toString().split('\r\n\r\n').length - 1; i++) {
        const a = answer(n++);
        if (a === null) return void s.destroy();
        s.write(a);
      }
    });
    s.on('error', () => {});
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ port: (server.address() as { port: number }).port, server })));
}

for (const [generator, run] of [
  ['Node.js', runLoad],
  ['C', runLoadNative],
] as const) {
  test(`a 1-second open-loop run against the uWS upstream answers every request it offers, per second and per group (the ${generator} generator)`, async () => {
    const up = await startUpstream(0);
    try {
      const seconds: number[] = [];
      const r = await run({
        host: '127.0.0.1',
        port: up.port,
        durationS: 1,
        warmupS: 0.2,
        drainMs: 500,
        flows: [
          { name: 'tenant', kind: 'tenant', rate: 500, path: '/v1/x', headers: { authorization: 'Bearer t' }, group: 'good' },
          { name: 'from 127.0.0.2', kind: 'flood', rate: 100, path: '/v1/y', localAddresses: ['127.0.0.2'] },
        ],
        onSecond: (t) => seconds.push(t),
      });
      const [t, f] = r.flows;
      assert.ok(t.offered >= 495 && t.offered <= 502, `offered ${t.offered} at 500/s for 1 s`);
      assert.equal(t.ok, t.offered);
      assert.equal(t.sent, t.offered);
      assert.equal(t.unsent + t.unanswered + t.dropped + t.errors, 0);
      assert.equal(f.ok, f.offered);
      assert.ok(f.ok >= 95, `${f.ok} from 127.0.0.2`);
      assert.ok(t.latency.p99_us > 0 && t.latency.p99_us < 1_000_000);
      assert.equal(r.groups[0].latency.count, t.ok);
      assert.equal(t.timeline.length, 1);
      assert.ok(t.timeline[0].ok >= 490, `second 1 counted ${t.timeline[0].ok} answers`);
      assert.equal(r.generatorLag.count, t.offered + f.offered);
      // Only the Node.js generator runs in this process and can report each second as it ends.
      assert.deepEqual(seconds, generator === 'C' ? [] : [1]);
    } finally {
      up.close();
    }
  });

  test(`requests still queued when the run ends are never sent: the drain only collects answers (the ${generator} generator)`, async () => {
    // One connection, answers 40 ms late: most of the 200/s offered waits in the queue.
    const seen: number[] = [];
    const server = createServer((s) => {
      s.on('data', (d) => {
        for (let i = 0; i < d.toString().split('\r\n\r\n').length - 1; i++) {
          seen.push(performance.now());
          setTimeout(() => s.write('HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n'), 40);
        }
      });
      s.on('error', () => {});
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const start = performance.now();
      const r = await run({ host: '127.0.0.1', port: (server.address() as { port: number }).port, durationS: 0.5, warmupS: 0, drainMs: 1000, flows: [{ name: 'a', kind: 'tenant', rate: 200, path: '/', maxConnections: 1 }] });
      const a = r.flows[0];
      const end = start + 500;
      assert.deepEqual(seen.filter((t) => t > end + 30), [], 'requests arrived after the run had ended');
      assert.ok(a.unsent > 50, `${a.unsent} unsent`);
      assert.equal(a.sent + a.unsent, a.offered);
      assert.equal(a.ok, a.sent);
    } finally {
      server.close();
    }
  });
}

test('counts 429s apart from admitted requests, and parses chunked answers', async () => {
  const chunked = 'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n';
  const limited = 'HTTP/1.1 429 Too Many Requests\r\ncontent-length: 2\r\n\r\n{}';
  const { port, server } = await rawServer((n) => (n % 2 ? limited : chunked));
  try {
    const r = await runLoad({ host: '127.0.0.1', port, durationS: 0.5, warmupS: 0, drainMs: 500, flows: [{ name: 'a', kind: 'tenant', rate: 200, path: '/', maxConnections: 1 }] });
    const a = r.flows[0];
    // Requests still waiting for the one connection when the run ends are never sent.
    assert.equal(a.ok + a.limited + a.unsent, a.offered);
    assert.ok(a.unsent < a.offered / 10, `${a.unsent} of ${a.offered} unsent`);
    assert.ok(Math.abs(a.ok - a.limited) <= 1, `${a.ok} ok vs ${a.limited} limited`);
    assert.deepEqual(Object.keys(a.statuses).sort(), ['200', '429']);
  } finally {
    server.close();
  }
});

test('a connection closed with no answer counts as dropped, for runs and for connection floods', async () => {
  const { port, server } = await rawServer(() => null);
  try {
    const r = await runLoad({ host: '127.0.0.1', port, durationS: 0.3, warmupS: 0, drainMs: 300, flows: [{ name: 'banned', kind: 'flood', rate: 100, path: '/', localAddresses: ['127.0.0.3'] }] });
    const b = r.flows[0];
    assert.ok(b.dropped > 0 && b.dropped === b.sent, `${b.dropped} dropped of ${b.sent}`);
    assert.equal(b.ok, 0);
    const f = await runConnectFlood({ host: '127.0.0.1', port, addresses: ['127.0.0.3', '127.0.0.4'], durationS: 0.3, concurrency: 4 });
    assert.ok(f.dropped > 10);
    assert.equal(f.answered, 0);
  } finally {
    server.close();
  }
});

test('connections refused at the handshake (a reset answers the SYN) are refusals to a connection flood and drops to a fixed-rate flow', async () => {
  // Nothing listens on a port just released: the kernel resets every SYN, as --kernel-bans does.
  const { port, server } = await rawServer(() => null);
  await new Promise((r) => server.close(r));
  const f = await runConnectFlood({ host: '127.0.0.1', port, addresses: ['127.0.0.3'], durationS: 5, count: 20, concurrency: 2 });
  assert.equal(f.refused, 20);
  assert.equal(f.dropped + f.answered + f.failed, 0);
  // A fixed-rate flow counts them as dropped: no answer came.
  const r = await runLoad({ host: '127.0.0.1', port, durationS: 0.3, warmupS: 0, drainMs: 300, flows: [{ name: 'banned', kind: 'flood', rate: 100, path: '/', localAddresses: ['127.0.0.3'] }] });
  const b = r.flows[0];
  assert.ok(b.dropped > 0 && b.dropped === b.sent, `${b.dropped} dropped of ${b.sent}`);
  assert.equal(b.errors, 0);
});

test('a connection flood against a server that answers counts answers, not drops', async () => {
  const up = await startUpstream(0);
  try {
    const f = await runConnectFlood({ host: '127.0.0.1', port: up.port, addressAt: (i) => `127.0.9.${1 + (i % 200)}`, durationS: 5, count: 50, concurrency: 5 });
    assert.equal(f.connections, 50);
    assert.equal(f.answered, 50);
    assert.equal(f.dropped + f.refused + f.failed, 0);
  } finally {
    up.close();
  }
});

test('a child generator runs under nice and SCHED_IDLE when asked', () => {
  assert.deepEqual(prioritized(['node', 'x.js'], {}), ['node', 'x.js']);
  assert.deepEqual(prioritized(['node', 'x.js'], { nice: 19, idle: true }), ['chrt', '--idle', '0', 'nice', '-n', '19', 'node', 'x.js']);
});

test('a run in a child process reports the same way as one in this process', async () => {
  const up = await startUpstream(0);
  try {
    const child = await startLoadInChild({ host: '127.0.0.1', port: up.port, durationS: 0.5, warmupS: 0, drainMs: 300, flows: [{ name: 'c', kind: 'tenant', rate: 200, path: '/' }] }, { nice: 10, idle: true });
    // It really runs at the placement's priority: SCHED_IDLE is policy 5 in /proc/PID/stat (field 41).
    const policy = readFileSync(`/proc/${child.pid}/stat`, 'utf8').split(') ')[1]!.split(' ')[38];
    assert.equal(policy, '5');
    const r = await child.result;
    assert.ok(r.flows[0].offered >= 95, `offered ${r.flows[0].offered}`);
    assert.equal(r.flows[0].ok, r.flows[0].offered);
  } finally {
    up.close();
  }
});
