// The test client's own guard: a request nobody answers fails its test with the request named,
// instead of stalling the whole file until the runner's timeout.

import assert from 'node:assert/strict';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { it } from 'node:test';
import { request } from './http.js';

it('request() rejects, naming the request, when no answer comes in time, and closes its connection', async () => {
  const sockets: Socket[] = [];
  const server = createServer((s) => {
    sockets.push(s);
    s.resume(); // reads (and so sees the close), never answers
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/never`;
  try {
    const started = performance.now();
    await assert.rejects(request(url, { timeoutMs: 200 }), new RegExp(`^Error: no answer to GET ${url} within 200 ms$`));
    assert.ok(performance.now() - started < 2000, 'it gave up at its timeout');
    assert.equal(sockets.length, 1);
    await new Promise((r) => (sockets[0]!.closed ? r(undefined) : sockets[0]!.once('close', r)));
  } finally {
    for (const s of sockets) s.destroy();
    server.close();
  }
});
