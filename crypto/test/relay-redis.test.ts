// Two gateway instances, one Redis: devices connected to different instances reach each other
// through RedisRelayBus, still only within a tenant (a real redis-server on a free port).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { startRedis, type RedisServer } from '../../test/support/redis-server.js';
import { RedisRelayBus } from '../directory/redis-relay-bus.js';
import { E2ERelay } from '../directory/relay.js';
import { RelayClient } from './relay-client.js';

describe('E2ERelay across instances over Redis pub/sub', () => {
  let server: RedisServer;
  const conns: Redis[] = [];
  const relays: E2ERelay[] = [];
  const instance = () => {
    const publisher = new Redis(server.url);
    const subscriber = new Redis(server.url);
    conns.push(publisher, subscriber);
    const r = new E2ERelay({ bus: new RedisRelayBus({ publisher, subscriber, prefix: 'relaytest:' }) });
    relays.push(r);
    return r;
  };
  before(async () => {
    server = await startRedis();
  });
  after(async () => {
    await Promise.all(relays.map((r) => r.close()));
    await Promise.all(conns.map((c) => c.quit()));
    await server.stop();
  });

  /** Waits until every subscription is in place, then a little for stray messages to show up. */
  const settle = async () => {
    await Promise.all(relays.map((r) => r.settled()));
    await new Promise((r) => setTimeout(r, 100));
  };

  it('delivers from a device on one instance to a device on another, both ways, and only within the tenant', async () => {
    const one = instance();
    const two = instance();
    const alice = new RelayClient(one, 'acme', 'alice', 'a1');
    const bob = new RelayClient(two, 'acme', 'bob', 'b1');
    const spy = new RelayClient(two, 'globex', 'eve', 'b1');
    await settle(); // subscriptions are in place
    alice.send('b1', { hello: 'x' });
    assert.deepEqual(await bob.next(), { from: 'a1', from_user: 'alice', payload: { hello: 'x' } });
    bob.send('a1', { reply: 'y' });
    assert.deepEqual(await alice.next(), { from: 'b1', from_user: 'bob', payload: { reply: 'y' } });
    await settle();
    assert.deepEqual(spy.drain(), []);
    assert.deepEqual(alice.drain(), [], 'no not_connected when delivered remotely');
    const sameInstance = new RelayClient(one, 'acme', 'bob', 'b1');
    await settle();
    alice.send('b1', 1);
    assert.equal((await bob.next()).payload, 1);
    assert.equal((await sameInstance.next()).payload, 1);
    await settle();
    assert.deepEqual(bob.drain(), [], 'exactly once per connection, not once more through the bus');
    assert.deepEqual(sameInstance.drain(), []);
  });

  it('answers not_connected when the device is on no instance, and stops delivering after detach', async () => {
    const one = instance();
    const two = instance();
    const alice = new RelayClient(one, 'acme', 'alice', 'a1');
    const carol = new RelayClient(two, 'acme', 'carol', 'c1');
    await settle();
    alice.send('nobody', 1);
    assert.deepEqual(await alice.next(), { error: 'not_connected', to: 'nobody' });
    carol.detach();
    await settle();
    alice.send('c1', 2);
    assert.deepEqual(await alice.next(), { error: 'not_connected', to: 'c1' });
  });
});
