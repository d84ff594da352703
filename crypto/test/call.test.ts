// Whole calls between SDK devices through ward's directory and relay (in-process, memory store):
// what a tenant's users do, what an attacker on the wire can try, and what ward itself can try.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { E2EDirectory } from '../directory/directory.js';
import { MemoryDirectoryStore } from '../directory/memory-store.js';
import { E2ERelay } from '../directory/relay.js';
import { Device } from '../sdk/device.js';
import { KeyLog } from '../sdk/key-log.js';
import { fromB64, randomBytes, toB64 } from '../sdk/primitives.js';
import type { CalleeSession, CallerSession } from '../sdk/session.js';
import { api, rejectsWith, throwsWith, wire } from './helpers.js';
import { RelayClient } from './relay-client.js';

async function world() {
  const store = new MemoryDirectoryStore();
  const dir = new E2EDirectory({ store });
  const relay = new E2ERelay();
  const seen: string[] = [];
  const user = async (name: string, device: string) => {
    const d = await Device.create({ tenant: 'acme', user: name, device });
    const http = api(dir, 'acme', name);
    assert.equal((await http.put(device, d.bundle(5))).status, 200);
    return { d, http, ws: new RelayClient(relay, 'acme', name, device, seen) };
  };
  return { store, dir, relay, seen, user };
}

/** Alice calls Bob over the relay, checking the key log first, as an app should. */
async function call(alice: Awaited<ReturnType<Awaited<ReturnType<typeof world>>['user']>>, bob: typeof alice, callId: string) {
  const log = new KeyLog((await alice.http.ok('/log/key')).key, { tenant: 'acme' });
  const bundle = (await alice.http.ok('/users/bob/bundles')).bundles[0];
  log.verifyBundle(await alice.http.ok('/log/head'), await alice.http.ok(`/log/proof?user=bob&device=${bundle.device}`), bundle);
  const { session, hello } = await alice.d.call(bundle, { callId });
  alice.ws.send(bundle.device, { hello });
  const got = await bob.ws.next();
  assert.deepEqual([got.from, got.from_user], ['a1', 'alice']);
  const { session: bobSession, reply } = await bob.d.answer(got.payload.hello);
  bob.ws.send(got.from, { reply });
  const reveal = await session.confirm((await alice.ws.next()).payload.reply);
  alice.ws.send(bundle.device, { reveal });
  await bobSession.confirm((await bob.ws.next()).payload.reveal);
  return { session, bobSession, hello };
}

const sendFrame = (from: RelayClient, to: string, s: CallerSession | CalleeSession, data: Uint8Array) => from.send(to, { frame: toB64(s.seal(data)) });
const frameOf = (msg: any) => fromB64(msg.payload.frame)!;

describe('a call through ward (directory + relay)', () => {
  it('equal SAS, frames both ways, and ward never sees the plaintext', async () => {
    const w = await world();
    const alice = await w.user('alice', 'a1');
    const bob = await w.user('bob', 'b1');
    const { session, bobSession } = await call(alice, bob, 'call-1');
    assert.equal(session.sas, bobSession.sas);
    const marker = toB64(randomBytes(24));
    sendFrame(alice.ws, 'b1', session, new TextEncoder().encode(`secret ${marker}`));
    assert.equal(new TextDecoder().decode(bobSession.open(frameOf(await bob.ws.next()))), `secret ${marker}`);
    sendFrame(bob.ws, 'a1', bobSession, new TextEncoder().encode('and back'));
    assert.equal(new TextDecoder().decode(session.open(frameOf(await alice.ws.next()))), 'and back');
    const hexMarker = Buffer.from(marker).toString('hex');
    for (const where of [w.seen.join('\n'), w.store.dump()]) {
      assert.ok(!where.includes(marker) && !where.includes(hexMarker) && !where.includes(Buffer.from(marker).toString('base64')));
    }
  });

  it('refuses a replayed hello, and tampered, replayed and reordered frames relayed by ward', async () => {
    const w = await world();
    const alice = await w.user('alice', 'a1');
    const bob = await w.user('bob', 'b1');
    const { session, bobSession, hello } = await call(alice, bob, 'call-2');
    // Ward (or anyone on the wire) sends the same hello again.
    alice.ws.send('b1', { hello });
    await rejectsWith(bob.d.answer((await bob.ws.next()).payload.hello), 'ERR_REPLAY');
    const frames = [0, 1, 2].map((i) => toB64(session.seal(new Uint8Array([i]))));
    const tampered = fromB64(frames[0])!;
    tampered[tampered.length - 3]! ^= 0x20;
    for (const f of [toB64(tampered), frames[0], frames[0], frames[2], frames[1]]) alice.ws.send('b1', { frame: f });
    const got = await Promise.all([0, 1, 2, 3, 4].map(() => bob.ws.next()));
    throwsWith(() => bobSession.open(frameOf(got[0])), 'ERR_DECRYPT');
    assert.deepEqual(bobSession.open(frameOf(got[1])), new Uint8Array([0]));
    throwsWith(() => bobSession.open(frameOf(got[2])), 'ERR_REPLAY');
    assert.deepEqual(bobSession.open(frameOf(got[3])), new Uint8Array([2]));
    throwsWith(() => bobSession.open(frameOf(got[4])), 'ERR_REORDERED');
  });

  it('a second call to the same device uses a new one-time prekey, and calls to a device with none left still work', async () => {
    const w = await world();
    const alice = await w.user('alice', 'a1');
    const bob = await w.user('bob', 'b1');
    for (let i = 0; i < 7; i++) {
      const { session, bobSession } = await call(alice, bob, `c${i}`);
      assert.equal(session.sas, bobSession.sas);
    }
    assert.equal(bob.d.oneTimePrekeysLeft, 0);
  });
});

describe('a man in the middle (ward swaps the callee bundle)', () => {
  it('gives two different SAS, fails the key-log inclusion check, and is flagged by the victim\'s monitoring', async () => {
    const w = await world();
    const alice = await w.user('alice', 'a1');
    const bob = await w.user('bob', 'b1');
    const http = alice.http;
    const log = new KeyLog((await http.ok('/log/key')).key, { tenant: 'acme' });
    const bobKnows = [bob.d.identityKey];
    const headBefore = await http.ok('/log/head');
    assert.deepEqual(log.monitor(await bob.http.ok('/log/entries?user=bob'), await bob.http.ok('/log/head'), bobKnows), []);

    // Mallory's devices: one posing as bob/b1 to Alice, one posing as alice/a1 to Bob. Their bundles
    // are validly signed by Mallory's own identity keys.
    const asBob = await Device.create({ tenant: 'acme', user: 'bob', device: 'b1' });
    const asAlice = await Device.create({ tenant: 'acme', user: 'alice', device: 'a1' });
    const fake = asBob.bundle(1);
    const swapped = { user: 'bob', device: 'b1', identity_key: fake.identity_key, signed_prekey: fake.signed_prekey, one_time_prekey: fake.one_time_prekeys[0] };

    // 1. The key log does not hold the swapped key: Alice's check fails, whatever proof ward serves.
    const honestProof = await http.ok('/log/proof?user=bob&device=b1');
    throwsWith(() => log.verifyBundle(headBefore, honestProof, swapped), 'ERR_LOG_MISMATCH');
    throwsWith(() => log.verifyInclusion(headBefore, { ...honestProof, identity_key: fake.identity_key }), 'ERR_LOG_PROOF');

    // 2. If Alice calls anyway, each leg works but the two people read different SAS.
    const legA = await alice.d.call(swapped, { callId: 'mitm' });
    const mB = await asBob.answer(wire(legA.hello));
    const realBundle = (await http.ok('/users/bob/bundles')).bundles[0];
    const legB = await asAlice.call(realBundle, { callId: 'mitm' });
    const bobSide = await bob.d.answer(wire(legB.hello));
    await bobSide.session.confirm(await legB.session.confirm(bobSide.reply));
    await mB.session.confirm(await legA.session.confirm(mB.reply));
    assert.equal(legA.session.sas, mB.session.sas, 'Mallory completes the leg with Alice');
    assert.equal(legB.session.sas, bobSide.session.sas, 'and the leg with Bob');
    assert.notEqual(legA.session.sas, bobSide.session.sas, 'but Alice and Bob read different SAS aloud');
    // Mallory can read this call: exactly why the checks above matter.
    assert.deepEqual(mB.session.open(legA.session.seal(new Uint8Array([42]))), new Uint8Array([42]));

    // 3. To pass Alice's inclusion check ward must log the key under bob's name...
    assert.equal((await bob.http.put('b1', asBob.bundle(1))).status, 200);
    const headAfter = await http.ok('/log/head');
    log.verifyBundle(headAfter, await http.ok('/log/proof?user=bob&device=b1'), swapped);
    log.verifyConsistency(headBefore, headAfter, await http.ok(`/log/consistency?from=${headBefore.size}&to=${headAfter.size}`));
    // ...and Bob's own-key monitoring flags it.
    const flagged = log.monitor(await bob.http.ok('/log/entries?user=bob'), await bob.http.ok('/log/head'), bobKnows);
    assert.deepEqual(flagged.map((e) => [e.device, e.identity_key]), [['b1', asBob.identityKey]]);
    // Hiding it from Bob's list is caught too.
    const hidden = await bob.http.ok('/log/entries?user=bob');
    hidden.entries = hidden.entries.filter((e: { identity_key: string }) => e.identity_key !== asBob.identityKey);
    throwsWith(() => log.monitor(hidden, headAfter, bobKnows), 'ERR_LOG_INCOMPLETE');

    // 4. After a first good call, Alice's device also remembers Bob's key: a swap is identity_changed.
    const w2 = await world();
    const a2 = await w2.user('alice', 'a1');
    const b2 = await w2.user('bob', 'b1');
    await call(a2, b2, 'first');
    await rejectsWith(a2.d.call(swapped, { callId: 'second' }), 'identity_changed');
  });
});

describe('the relay', () => {
  it('delivers within a tenant only, with the sender authenticated and the payload unchanged', async () => {
    const relay = new E2ERelay();
    const alice = new RelayClient(relay, 'acme', 'alice', 'a1');
    const bob = new RelayClient(relay, 'acme', 'bob', 'b1');
    const spy = new RelayClient(relay, 'globex', 'eve', 'b1');
    const payload = { any: ['json', 1, null, { deep: true }], frame: toB64(randomBytes(40)) };
    alice.send('b1', payload);
    assert.deepEqual(await bob.next(), { from: 'a1', from_user: 'alice', payload });
    assert.deepEqual(spy.drain(), []);
    spy.send('a1', { hi: 1 });
    assert.deepEqual(await spy.next(), { error: 'not_connected', to: 'a1' });
    assert.deepEqual(alice.drain(), []);
    bob.detach();
    alice.send('b1', payload);
    assert.deepEqual(await alice.next(), { error: 'not_connected', to: 'b1' });
    assert.deepEqual(spy.drain(), [], 'globex b1 never receives acme traffic');
  });

  it('narrows to one user with to_user, reaches every connection of a device, and refuses malformed or oversized messages', async () => {
    const relay = new E2ERelay({ maxMessageBytes: 1000 });
    const alice = new RelayClient(relay, 'acme', 'alice', 'a1');
    const bobPhone = new RelayClient(relay, 'acme', 'bob', 'phone');
    const bobPhone2 = new RelayClient(relay, 'acme', 'bob', 'phone');
    const carolPhone = new RelayClient(relay, 'acme', 'carol', 'phone');
    alice.send('phone', 1, 'bob');
    assert.equal((await bobPhone.next()).payload, 1);
    assert.equal((await bobPhone2.next()).payload, 1);
    assert.deepEqual(carolPhone.drain(), []);
    for (const bad of ['not json', '[]', '{"payload":1}', '{"to":"phone"}', '{"to":"","payload":1}', '{"to":"phone","to_user":5,"payload":1}']) {
      alice.raw(bad);
      assert.equal((await alice.next()).error, 'bad_message', bad);
    }
    alice.raw(JSON.stringify({ to: 'phone', payload: 'x'.repeat(1000) }));
    assert.equal((await alice.next()).error, 'too_large');
    assert.equal(relay.connections, 4);
    assert.deepEqual(E2ERelay.refuse(new URLSearchParams('device=a1')), null);
    assert.equal(E2ERelay.refuse(new URLSearchParams(''))?.status, 400);
    assert.throws(() => relay.attach({ tenant: 'acme', user: 'x', device: '' }, () => true), TypeError);
  });
});
