// The floor proxy is a measuring stick, but the bench only means something if it really proxies:
// every answer must be the upstream's, over kept-alive connections, many requests at once.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { request, Agent } from 'node:http';
import { startUpstream, UPSTREAM_BODY } from './upstream.js';
import { spawnFloorProxy } from './floor-proxy.js';

function get(port: number, agent: Agent): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    request({ host: '127.0.0.1', port, path: '/v1/bench', agent, headers: { authorization: 'Bearer t' } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode!, body }));
    })
      .on('error', reject)
      .end();
  });
}

test("the floor proxy answers with the upstream's status and body, 200 requests over 8 kept-alive connections", async () => {
  const up = await startUpstream();
  const floor = await spawnFloorProxy(up.port);
  const agent = new Agent({ keepAlive: true, maxSockets: 8 });
  try {
    const answers = await Promise.all(Array.from({ length: 200 }, () => get(floor.port, agent)));
    for (const a of answers) assert.deepEqual(a, { status: 200, body: UPSTREAM_BODY });
  } finally {
    agent.destroy();
    await floor.stop();
    up.close();
  }
});

test('the floor proxy opens new upstream connections when the upstream closed its idle ones', async () => {
  const { createServer } = await import('node:http');
  // An upstream that closes every connection after one answer, as an idle timeout would later.
  const up = createServer((_req, res) => res.writeHead(200, { connection: 'close', 'content-length': '2' }).end('ok'));
  await new Promise<void>((r) => up.listen(0, '127.0.0.1', r));
  const floor = await spawnFloorProxy((up.address() as { port: number }).port);
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  try {
    for (let i = 0; i < 5; i++) {
      assert.deepEqual(await get(floor.port, agent), { status: 200, body: 'ok' });
      await new Promise((r) => setTimeout(r, 20)); // let the close reach the floor
    }
  } finally {
    agent.destroy();
    await floor.stop();
    up.close();
  }
});
