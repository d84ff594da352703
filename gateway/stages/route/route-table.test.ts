import { test } from 'node:test';
import assert from 'node:assert/strict';
import { hasDotSegment } from './route-table.js';

test('dot segments are found however they are spelled', () => {
  for (const p of ['/v1/status/../calls', '/v1/./x', '/v1/..', '/v1/.', '/..', '/v1/status/%2e%2e/calls', '/v1/status/.%2E/calls', '/v1/%2E/x', '/v1/status/..%2fcalls', '/v1/status/..%2Fcalls', '/v1/status/..\\calls', '/v1/status/..%5ccalls', '/v1\\..\\admin', '/v1/status/..;/calls', '/v1/status/..;jsessionid=1/calls', '/v1/status/%2e%2e;/calls']) {
    assert.equal(hasDotSegment(p), true, p);
  }
});

test('ordinary paths, dots inside names and escaped characters elsewhere pass', () => {
  for (const p of ['/', '/v1/calls', '/v1/calls/7', '/v1/files/report.pdf', '/v1/status/...', '/v1/a..b', '/v1/.well-known/x', '/v1/x.', '/v1/name%20with%20spaces', '/v1/id%2Fwith%2Fslashes', '/v1/%2e%2e%2e', '/v1/items;page=2', '/v1/a..;b']) {
    assert.equal(hasDotSegment(p), false, p);
  }
});
