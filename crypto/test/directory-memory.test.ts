import assert from 'node:assert/strict';
import { it } from 'node:test';
import { E2EDirectory } from '../directory/directory.js';
import { MemoryDirectoryStore } from '../directory/memory-store.js';
import { directoryContract } from './directory-contract.js';
import { api } from './helpers.js';

directoryContract('the memory store', async () => ({
  fresh: async (limits) => new MemoryDirectoryStore(limits),
  twin: async (store) => store,
  close: async () => {},
}));

it('answers 503 e2e_unavailable (and tells onError) when the store fails, 400 bad_bundle before touching it', async () => {
  const store = new MemoryDirectoryStore();
  const errors: unknown[] = [];
  const dir = new E2EDirectory({ store, onError: (e) => errors.push(e) });
  const down = () => Promise.reject(new Error('store down'));
  Object.assign(store, { takeBundles: down, logSize: down, publish: down, logSigningKey: down });
  const a = api(dir, 'acme', 'alice');
  assert.deepEqual(await a.get('/users/bob/bundles'), { status: 503, body: { error: 'e2e_unavailable' } });
  assert.equal((await a.get('/log/head')).status, 503);
  assert.equal((await a.put('a1', '{}')).status, 400);
  assert.ok(errors.length >= 2);
});
