import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { findBinary, haproxyConfig, nginxConfig, type ReferenceSetup } from './references.js';

const setup: ReferenceSetup = { upstreamPort: 9, tenantToken: 'eyJ.ok.sig', tinyToken: 'eyJ.tiny.sig', banned: ['127.0.0.3', '127.0.0.4'], workers: 2 };

test('the nginx config keys limit_req on the tenant, answers 429 and drops banned addresses', { skip: findBinary('nginx') || process.env.CI ? false : 'nginx is not installed' }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'ward-nginx-test-'));
  try {
    mkdirSync(join(dir, 'tmp'));
    const conf = nginxConfig(setup, dir, 1);
    assert.match(conf, /limit_req_status 429;/);
    assert.match(conf, /worker_processes 2;/);
    assert.match(conf, /127\.0\.0\.3\/32 1;/);
    assert.match(conf, /return 444;/);
    assert.match(conf, /zone=tenants:64m rate=1000000r\/s;/);
    assert.match(nginxConfig({ ...setup, tenantRate: { perSecond: 500, burst: 500 } }, dir, 1), /rate=500r\/s;[\s\S]*limit_req zone=tenants burst=500 nodelay;/);
    writeFileSync(join(dir, 'nginx.conf'), conf);
    const r = spawnSync(findBinary('nginx')!, ['-t', '-p', dir, '-c', join(dir, 'nginx.conf'), '-e', join(dir, 'error.log')], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the haproxy config tracks tenants in a stick table and rejects banned addresses', { skip: findBinary('haproxy') || process.env.CI ? false : 'haproxy is not installed' }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'ward-haproxy-test-'));
  try {
    const conf = haproxyConfig(setup, dir, 1);
    assert.match(conf, /track-sc0 req\.hdr\(authorization\)/);
    assert.match(conf, /tcp-request connection reject if \{ src 127\.0\.0\.3 127\.0\.0\.4 \}/);
    writeFileSync(join(dir, 'haproxy.cfg'), conf);
    const r = spawnSync(findBinary('haproxy')!, ['-c', '-f', join(dir, 'haproxy.cfg')], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stdout + r.stderr);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
