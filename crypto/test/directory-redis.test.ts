// The directory contract on Redis: a real redis-server on a free port, and a real three-master
// Redis Cluster (every key of a tenant shares one slot, so the Lua scripts run there too).
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { Cluster, Redis } from 'ioredis';
import { E2EDirectory } from '../directory/directory.js';
import { Device } from '../sdk/device.js';
import { api } from './helpers.js';
import { startRedis, startRedisCluster } from '../../test/support/redis-server.js';
import { RedisDirectoryStore } from '../directory/redis-store.js';
import { directoryContract } from './directory-contract.js';

let ns = 0;

directoryContract('Redis (one redis-server)', async () => {
  const server = await startRedis();
  const conns: Redis[] = [];
  const conn = () => {
    const r = new Redis(server.url, { lazyConnect: false, maxRetriesPerRequest: 1 });
    conns.push(r);
    return r;
  };
  const prefixes = new Map<RedisDirectoryStore, string>();
  return {
    fresh: async (limits) => {
      const prefix = `t${ns++}:`;
      const s = new RedisDirectoryStore(conn(), { prefix, ...limits });
      prefixes.set(s, prefix);
      return s;
    },
    twin: async (store) => new RedisDirectoryStore(conn(), { prefix: prefixes.get(store as RedisDirectoryStore)! }),
    close: async () => {
      await Promise.all(conns.map((c) => c.quit()));
      await server.stop();
    },
  };
});

directoryContract('Redis Cluster (three masters)', async () => {
  const cluster = await startRedisCluster();
  const conns: Cluster[] = [];
  const conn = () => {
    const c = new Cluster(cluster.nodes.map((u) => {
      const url = new URL(u);
      return { host: url.hostname, port: Number(url.port) };
    }));
    conns.push(c);
    return c;
  };
  const prefixes = new Map<RedisDirectoryStore, string>();
  return {
    fresh: async (limits) => {
      const prefix = `c${ns++}:`;
      const s = new RedisDirectoryStore(conn(), { prefix, ...limits });
      prefixes.set(s, prefix);
      return s;
    },
    twin: async (store) => new RedisDirectoryStore(conn(), { prefix: prefixes.get(store as RedisDirectoryStore)! }),
    close: async () => {
      await Promise.all(conns.map((c) => c.quit()));
      await cluster.stop();
    },
  };
});

it('answers 503 while Redis is down, serves again when it is back, and says so when the log was lost', async () => {
  const server = await startRedis();
  const redis = new Redis(server.url, { maxRetriesPerRequest: 1 });
  redis.on('error', () => {});
  try {
    const errors: unknown[] = [];
    const dir = new E2EDirectory({ store: new RedisDirectoryStore(redis), onError: (e) => errors.push(e) });
    const alice = await Device.create({ tenant: 'acme', user: 'alice', device: 'a1' });
    const a = api(dir, 'acme', 'alice');
    assert.equal((await a.put('a1', alice.bundle(1))).status, 200);
    const before = await a.ok('/log/head');
    await server.kill();
    assert.equal((await a.get('/users/alice/bundles')).status, 503);
    await server.restart();
    await new Promise((r) => setTimeout(r, 300));
    const bob = await Device.create({ tenant: 'acme', user: 'bob', device: 'b1' });
    assert.equal((await api(dir, 'acme', 'bob').put('b1', bob.bundle(1))).status, 200, 'the empty Redis after the restart takes bundles again');
    // The log was lost with Redis: this instance notices instead of serving its old tree...
    const after = await a.ok('/log/head');
    assert.equal(after.size, before.size);
    assert.notEqual(after.root, before.root);
    assert.ok(errors.some((e) => /lost or replaced/.test(String(e))));
    assert.equal((await a.ok('/log/proof?user=bob&device=b1')).index, 0);
    // ...and so does every client holding the old head: the new log does not extend it.
    assert.equal((await a.get('/log/proof?user=alice&device=a1')).status, 404);
  } finally {
    redis.disconnect();
    await server.stop();
  }
});
