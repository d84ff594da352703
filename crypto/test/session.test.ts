// Two SDK devices completing calls directly (no network): the handshake, the SAS, frames, and every
// refusal a user (or an attacker) can trigger.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Device, HELLO_WINDOW_MS } from '../sdk/device.js';
import { IdentityChangedError } from '../sdk/errors.js';
import type { Hello, Reply, Reveal } from '../sdk/handshake.js';
import { fromB64, toB64 } from '../sdk/primitives.js';
import { MemoryStorage } from '../sdk/storage.js';
import { bytes, fetched, rejectsWith, text, throwsWith, wire } from './helpers.js';

async function pair(tenant = 'acme') {
  const alice = await Device.create({ tenant, user: 'alice', device: 'a1' });
  const bob = await Device.create({ tenant, user: 'bob', device: 'b1' });
  return { alice, bob };
}

async function connect(alice: Device, bob: Device, callId = 'call-1', opk: number | null = 0) {
  const bundle = bob.bundle(3);
  const { session, hello } = await alice.call(wire(fetched(bob, bundle, opk)), { callId });
  const { session: bobSession, reply } = await bob.answer(wire(hello));
  const reveal = await session.confirm(wire(reply));
  await bobSession.confirm(wire(reveal));
  return { session, bobSession, hello, reply, reveal };
}

describe('a call between two devices', () => {
  it('ends with the same 6-digit SAS on both sides and frames that open both ways', async () => {
    const { alice, bob } = await pair();
    const { session, bobSession } = await connect(alice, bob);
    assert.match(session.sas, /^\d{6}$/);
    assert.equal(session.sas, bobSession.sas);
    assert.equal(text(bobSession.open(session.seal(bytes('hello bob')))), 'hello bob');
    assert.equal(text(session.open(bobSession.seal(bytes('hello alice')))), 'hello alice');
    assert.deepEqual(session.peer, { user: 'bob', device: 'b1', identityKey: bob.identityKey });
    assert.deepEqual(bobSession.peer, { user: 'alice', device: 'a1', identityKey: alice.identityKey });
  });

  it('works without a one-time prekey (the directory ran out), and SAS differ from call to call', async () => {
    const { alice, bob } = await pair();
    const one = await connect(alice, bob, 'c1', null);
    const two = await connect(alice, bob, 'c2', null);
    assert.equal(one.session.sas, one.bobSession.sas);
    assert.equal(two.session.sas, two.bobSession.sas);
    assert.notEqual(toB64(one.session.seal(new Uint8Array(8))), toB64(two.session.seal(new Uint8Array(8))));
  });

  it('keeps the SAS undefined (ERR_STATE) until confirm, and refuses frames before it', async () => {
    const { alice, bob } = await pair();
    const { session, hello } = await alice.call(fetched(bob, bob.bundle(1)), { callId: 'c' });
    throwsWith(() => session.sas, 'ERR_STATE');
    throwsWith(() => session.seal(bytes('x')), 'ERR_STATE');
    const { session: bs, reply } = await bob.answer(hello);
    throwsWith(() => bs.sas, 'ERR_STATE');
    const reveal = await session.confirm(reply);
    assert.match(session.sas, /^\d{6}$/);
    await rejectsWith(session.confirm(reply), 'ERR_STATE');
    await bs.confirm(reveal);
    await rejectsWith(bs.confirm(reveal), 'ERR_STATE');
  });

  it('close() erases the keys: the session refuses further use', async () => {
    const { alice, bob } = await pair();
    const { session } = await connect(alice, bob);
    session.close();
    throwsWith(() => session.seal(bytes('x')), 'ERR_STATE');
  });
});

describe('frames', () => {
  it('refuses a tampered frame (any bit, header or body)', async () => {
    const { alice, bob } = await pair();
    const { session, bobSession } = await connect(alice, bob);
    const frame = session.seal(bytes('the quick brown fox'));
    for (const at of [0, 3, 8, 9, 20, frame.length - 1]) {
      const bad = frame.slice();
      bad[at]! ^= 0x01;
      assert.throws(() => bobSession.open(bad), (e: { code?: string }) => ['ERR_DECRYPT', 'ERR_BAD_MESSAGE'].includes(e.code!));
    }
    throwsWith(() => bobSession.open(frame.slice(0, 20)), 'ERR_BAD_MESSAGE');
    assert.equal(text(bobSession.open(frame)), 'the quick brown fox', 'the genuine frame still opens after the forgeries');
  });

  it('refuses a replayed frame and a frame that arrives after a newer one; lost frames are fine', async () => {
    const { alice, bob } = await pair();
    const { session, bobSession } = await connect(alice, bob);
    const f = [0, 1, 2, 3, 4].map((i) => session.seal(bytes(`frame ${i}`)));
    bobSession.open(f[0]!);
    throwsWith(() => bobSession.open(f[0]!), 'ERR_REPLAY');
    bobSession.open(f[2]!); // frame 1 lost
    throwsWith(() => bobSession.open(f[1]!), 'ERR_REORDERED');
    throwsWith(() => bobSession.open(f[2]!), 'ERR_REPLAY');
    assert.equal(text(bobSession.open(f[4]!)), 'frame 4');
    throwsWith(() => bobSession.open(f[3]!), 'ERR_REORDERED');
  });

  it("refuses a frame of the other direction or of another call (keys are per call and direction)", async () => {
    const { alice, bob } = await pair();
    const a = await connect(alice, bob, 'c1');
    const b = await connect(alice, bob, 'c2');
    throwsWith(() => a.session.open(a.session.seal(bytes('echo'))), 'ERR_DECRYPT');
    throwsWith(() => b.bobSession.open(a.session.seal(bytes('cross'))), 'ERR_DECRYPT');
  });
});

describe('the handshake refuses', () => {
  it('a replayed hello, and a second hello with the same call id', async () => {
    const { alice, bob } = await pair();
    const bundle = bob.bundle(2);
    const { hello } = await alice.call(fetched(bob, bundle, null), { callId: 'c1' });
    await bob.answer(wire(hello));
    await rejectsWith(bob.answer(wire(hello)), 'ERR_REPLAY');
    const again = await alice.call(fetched(bob, bundle, 0), { callId: 'c1' });
    await rejectsWith(bob.answer(wire(again.hello)), 'ERR_REPLAY');
  });

  it('a hello whose one-time prekey was used already (a second call on one handed-out key)', async () => {
    const { alice, bob } = await pair();
    const bundle = bob.bundle(1);
    const one = await alice.call(fetched(bob, bundle), { callId: 'c1' });
    const two = await alice.call(fetched(bob, bundle), { callId: 'c2' });
    await bob.answer(one.hello);
    assert.equal(bob.oneTimePrekeysLeft, 0);
    await rejectsWith(bob.answer(two.hello), 'ERR_UNKNOWN_PREKEY');
  });

  it('a hello with a bad signature, or changed after signing', async () => {
    const { alice, bob } = await pair();
    const { hello } = await alice.call(fetched(bob, bob.bundle(1)), { callId: 'c1' });
    const sig = fromB64(hello.sig, 64)!;
    sig[5]! ^= 1;
    await rejectsWith(bob.answer({ ...hello, sig: toB64(sig) }), 'ERR_BAD_SIGNATURE');
    await rejectsWith(bob.answer({ ...hello, ts: hello.ts + 1 }), 'ERR_BAD_SIGNATURE');
    await rejectsWith(bob.answer({ ...hello, from: { ...hello.from, user: 'mallory' } }), 'ERR_BAD_SIGNATURE');
    await rejectsWith(bob.answer({ ...hello, commit: toB64(new Uint8Array(32)) }), 'ERR_BAD_SIGNATURE');
  });

  it('a hello for another device, another tenant, or malformed', async () => {
    const { alice, bob } = await pair();
    const carol = await Device.create({ tenant: 'acme', user: 'carol', device: 'c1' });
    const { hello } = await alice.call(fetched(bob, bob.bundle(1)), { callId: 'c1' });
    await rejectsWith(carol.answer(hello), 'ERR_WRONG_PEER');
    const other = await Device.create({ tenant: 'globex', user: 'bob', device: 'b1' });
    await rejectsWith(other.answer(hello), 'ERR_WRONG_PEER');
    await rejectsWith(bob.answer({ ...hello, v: 2 }), 'ERR_BAD_MESSAGE');
    await rejectsWith(bob.answer('hello'), 'ERR_BAD_MESSAGE');
    await rejectsWith(bob.answer({ ...hello, from: { ...hello.from, identity_key: 'AAAA' } }), 'ERR_BAD_KEY');
  });

  it('a hello from more than 10 minutes ago (or ahead)', async () => {
    let now = 1_700_000_000_000;
    const alice = await Device.create({ tenant: 'acme', user: 'alice', device: 'a1', now: () => now });
    const bob = await Device.create({ tenant: 'acme', user: 'bob', device: 'b1', now: () => now });
    const { hello } = await alice.call(fetched(bob, bob.bundle(1)), { callId: 'c1' });
    now += HELLO_WINDOW_MS + 1;
    await rejectsWith(bob.answer(hello), 'ERR_HELLO_EXPIRED');
    const late = await alice.call(fetched(bob, bob.bundle(1)), { callId: 'c2' });
    now -= 2 * HELLO_WINDOW_MS + 2;
    await rejectsWith(bob.answer(late.hello), 'ERR_HELLO_EXPIRED');
  });

  it('a reply that is not signed by the callee, or answers another hello', async () => {
    const { alice, bob } = await pair();
    const one = await alice.call(fetched(bob, bob.bundle(2)), { callId: 'c1' });
    const two = await alice.call(fetched(bob, bob.bundle(2), 1), { callId: 'c2' });
    const r1 = (await bob.answer(one.hello)).reply;
    const r2 = (await bob.answer(two.hello)).reply;
    await rejectsWith(one.session.confirm(r2), 'ERR_WRONG_PEER');
    await rejectsWith(one.session.confirm({ ...r1, call_id: 'c2' }), 'ERR_WRONG_PEER');
    await rejectsWith(one.session.confirm({ ...r1, ek: r2.ek }), 'ERR_BAD_SIGNATURE');
    await rejectsWith(one.session.confirm({ ...r1, ek: toB64(new Uint8Array(32)) }), 'ERR_BAD_KEY');
    await one.session.confirm(r1); // the genuine reply still works after the forgeries
  });

  it('a reveal that does not open the commitment (a caller choosing its key late)', async () => {
    const { alice, bob } = await pair();
    const { session, hello } = await alice.call(fetched(bob, bob.bundle(1)), { callId: 'c1' });
    const { session: bs, reply } = await bob.answer(hello);
    const reveal = await session.confirm(reply);
    const fresh = (await Device.create({ tenant: 'acme', user: 'x', device: 'x' })).bundle(0).signed_prekey.key;
    await rejectsWith(bs.confirm({ ...reveal, ek: fresh }), 'ERR_COMMITMENT');
    await bs.confirm(reveal);
  });

  it('a reveal whose key-confirmation MAC is wrong', async () => {
    const { alice, bob } = await pair();
    const { session, hello } = await alice.call(fetched(bob, bob.bundle(1)), { callId: 'c1' });
    const { session: bs, reply } = await bob.answer(hello);
    const reveal: Reveal = await session.confirm(reply);
    const mac = fromB64(reveal.mac, 32)!;
    mac[0]! ^= 1;
    await rejectsWith(bs.confirm({ ...reveal, mac: toB64(mac) }), 'ERR_KEY_CONFIRMATION');
    await rejectsWith(bs.confirm({ ...reveal, hello: toB64(new Uint8Array(32).fill(7)) }), 'ERR_WRONG_PEER');
    await bs.confirm(reveal);
    assert.equal(bs.sas, session.sas);
  });

  it('a bundle whose signed prekey is not signed by its identity key, or signed for another user', async () => {
    const { alice, bob } = await pair();
    const b = fetched(bob, bob.bundle(1));
    const mallory = await Device.create({ tenant: 'acme', user: 'mallory', device: 'b1' });
    const m = mallory.bundle(0);
    await rejectsWith(alice.call({ ...b, signed_prekey: m.signed_prekey }, { callId: 'c' }), 'ERR_BAD_SIGNATURE');
    // Mallory's own, valid bundle presented as Bob's: the signature binds the user name.
    await rejectsWith(alice.call({ ...b, identity_key: m.identity_key, signed_prekey: m.signed_prekey }, { callId: 'c' }), 'ERR_BAD_SIGNATURE');
    await rejectsWith(alice.call({ ...b, one_time_prekey: { id: 1, key: toB64(new Uint8Array(32)) } }, { callId: 'c' }), 'ERR_BAD_KEY');
    await rejectsWith(alice.call({ ...b, user: undefined }, { callId: 'c' }), 'ERR_BAD_MESSAGE');
    await assert.rejects(alice.call(b, { callId: '' }), TypeError);
  });
});

describe('key continuity', () => {
  it('throws identity_changed when a known peer comes back with another key, until the app accepts it', async () => {
    const { alice, bob } = await pair();
    await connect(alice, bob, 'c1');
    assert.equal(await alice.knownPeer('bob', 'b1'), bob.identityKey);
    assert.equal(await bob.knownPeer('alice', 'a1'), alice.identityKey);
    const newBob = await Device.create({ tenant: 'acme', user: 'bob', device: 'b1' }); // reinstalled
    const b = fetched(newBob, newBob.bundle(1));
    const e = await rejectsWith(alice.call(b, { callId: 'c2' }), 'identity_changed');
    assert.ok(e instanceof IdentityChangedError);
    assert.equal(e.previous, bob.identityKey);
    assert.equal(e.current, newBob.identityKey);
    const { session, hello } = await alice.call(b, { callId: 'c2', acceptIdentityChange: true });
    const { session: nb, reply } = await newBob.answer(hello);
    await nb.confirm(await session.confirm(reply));
    assert.equal(await alice.knownPeer('bob', 'b1'), newBob.identityKey, 'the accepted key is remembered');
  });

  it('the callee side too: a hello from a known caller with a new key', async () => {
    const { alice, bob } = await pair();
    await connect(alice, bob, 'c1');
    const newAlice = await Device.create({ tenant: 'acme', user: 'alice', device: 'a1' });
    const { hello } = await newAlice.call(fetched(bob, bob.bundle(1)), { callId: 'c2' });
    await rejectsWith(bob.answer(hello), 'identity_changed');
    await bob.answer(hello, { acceptIdentityChange: true });
  });
});

describe('device storage', () => {
  it('a device restarted on the same storage keeps its identity, its unused prekeys and its peers', async () => {
    const storage = new MemoryStorage();
    const alice = await Device.create({ tenant: 'acme', user: 'alice', device: 'a1' });
    const bob = await Device.create({ tenant: 'acme', user: 'bob', device: 'b1', storage });
    const bundle = bob.bundle(2);
    await connect(alice, bob, 'c0', null);
    await bob.flush();
    const left = bob.oneTimePrekeysLeft;
    const { session, hello } = await alice.call(fetched(bob, bundle, 1), { callId: 'c1' });
    const restarted = await Device.create({ tenant: 'acme', user: 'bob', device: 'b1', storage });
    assert.equal(restarted.identityKey, bob.identityKey);
    assert.equal(restarted.oneTimePrekeysLeft, left);
    assert.equal(await restarted.knownPeer('alice', 'a1'), alice.identityKey);
    const { session: bs, reply } = await restarted.answer(hello);
    await bs.confirm(await session.confirm(reply));
    assert.equal(bs.sas, session.sas);
    // The used one-time prekey's secret is gone from storage, not only from memory.
    const again = await Device.create({ tenant: 'acme', user: 'bob', device: 'b1', storage });
    assert.equal(again.oneTimePrekeysLeft, left - 1);
    await rejectsWith(again.answer(hello), 'ERR_REPLAY');
  });

  it('a rotated signed prekey still answers hellos made with the previous one', async () => {
    const { alice, bob } = await pair();
    const old = bob.bundle(0);
    bob.rotateSignedPrekey();
    assert.notEqual(bob.bundle(0).signed_prekey.id, old.signed_prekey.id);
    const { session, hello } = await alice.call(fetched(bob, old, null), { callId: 'c1' });
    const { session: bs, reply } = await bob.answer(hello);
    await bs.confirm(await session.confirm(reply));
    assert.equal(bs.sas, session.sas);
    bob.rotateSignedPrekey();
    const late = await alice.call(fetched(bob, old, null), { callId: 'c2' });
    await rejectsWith(bob.answer(late.hello), 'ERR_UNKNOWN_PREKEY');
  });

  it('Device.create checks its options and says how to fix them', async () => {
    await assert.rejects(Device.create({ tenant: 'acme', user: '', device: 'd' }), /user must be a string/);
    const d = await Device.create({ tenant: 'acme', user: 'u', device: 'd' });
    assert.throws(() => d.bundle(101), /from 0 to 100/);
  });
});

describe('messages are JSON-serialisable', () => {
  it('hello, reply and reveal survive JSON and carry only public values', async () => {
    const { alice, bob } = await pair();
    const { hello, reply, reveal } = await connect(alice, bob);
    const all = JSON.stringify([hello, reply, reveal] satisfies [Hello, Reply, Reveal]);
    assert.deepEqual(JSON.parse(all), [hello, reply, reveal]);
    assert.ok(!('one_time_prekey_id' in wire(await alice.call(fetched(bob, bob.bundle(0), null), { callId: 'x' })).hello.to));
  });
});
