import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { compileHashKey, type HashKeySource } from './hash-key.js';

const src = (over: Partial<HashKeySource> = {}, headers: Record<string, string> = {}): HashKeySource => ({ tenant: 'acme', sub: 'alice', header: (n) => headers[n], ...over });

describe('hash keys', () => {
  it('hashes on tenant, tenant and subject, a call id or a header', () => {
    assert.equal(compileHashKey({ key: 'tenant', balance_factor: 125 })(src()), 'acme');
    assert.equal(compileHashKey({ key: 'tenant_sub', balance_factor: 125 })(src()), 'acme\u0000alice');
    assert.equal(compileHashKey({ key: 'tenant_sub', balance_factor: 125 })(src({ sub: undefined })), 'acme');
    const call = compileHashKey({ key: 'call_id', balance_factor: 125 });
    assert.equal(call(src({}, { 'x-call-id': 'c1' })), 'c1');
    assert.equal(call(src({}, { 'call-id': 'c2@host' })), 'c2@host');
    assert.equal(call(src({ query: 'a=1&call_id=c3' })), 'c3');
    assert.equal(call(src()), undefined, 'no call id: least_request decides');
    assert.equal(compileHashKey({ key: 'header:X-Session', balance_factor: 125 })(src({}, { 'x-session': 's9' })), 's9');
    assert.equal(compileHashKey(undefined)(src()), 'acme');
    assert.throws(() => compileHashKey({ key: 'cookie:x', balance_factor: 125 }), /tenant, tenant_sub, call_id, header:NAME/);
  });
});
