// One contract for every DirectoryStore: the /v1/e2e endpoints as CONTRACT.md states them. Run by
// directory-memory.test.ts and directory-redis.test.ts (a real redis-server).
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { E2EDirectory } from '../directory/directory.js';
import type { DirectoryLimits, DirectoryStore } from '../directory/store.js';
import type { Bundle } from '../sdk/bundle.js';
import { Device } from '../sdk/device.js';
import { KeyLog } from '../sdk/key-log.js';
import { ed25519KeyPair, fromB64, toB64, x25519KeyPair } from '../sdk/primitives.js';
import { signPrekey } from '../sdk/bundle.js';
import { api, rejectsWith } from './helpers.js';

export interface StoreFactory {
  /** A fresh, empty store (its own namespace). */
  fresh(limits?: DirectoryLimits): Promise<DirectoryStore>;
  /** Another handle on the same data, as a second gateway instance would have. */
  twin(store: DirectoryStore): Promise<DirectoryStore>;
  close(): Promise<void>;
}

const P = (1n << 255n) - 19n;
const le = (n: bigint) => {
  const b = new Uint8Array(32);
  for (let i = 0; i < 32; i++) b[i] = Number((n >> BigInt(8 * i)) & 0xffn);
  return b;
};

/** A valid bundle for (tenant, user, device) built by hand, so each field can be spoiled. */
function handmade(tenant: string, user: string, device: string, opks = 3) {
  const id = ed25519KeyPair();
  const spk = x25519KeyPair();
  const bundle: Bundle = {
    identity_key: toB64(id.publicKey),
    signed_prekey: { id: 7, key: toB64(spk.publicKey), sig: signPrekey(id.secretKey, tenant, user, device, 7, spk.publicKey) },
    one_time_prekeys: Array.from({ length: opks }, (_, i) => ({ id: i + 1, key: toB64(x25519KeyPair().publicKey) })),
  };
  const resign = (key: Uint8Array, spkId = 7, t = tenant, u = user, d = device) => signPrekey(id.secretKey, t, u, d, spkId, key);
  return { bundle, id, resign };
}

export function directoryContract(name: string, factory: () => Promise<StoreFactory>): void {
  describe(`E2EDirectory on ${name}`, async () => {
    const f = await factory();
    after(() => f.close());
    const fresh = async (limits?: DirectoryLimits) => new E2EDirectory({ store: await f.fresh(limits) });

    it('publishes a device: 200, and its identity key is in the log before the answer', async () => {
      const dir = await fresh();
      const alice = await Device.create({ tenant: 'acme', user: 'alice', device: 'a1' });
      const a = api(dir, 'acme', 'alice');
      const r = await a.put('a1', alice.bundle(5));
      assert.equal(r.status, 200, JSON.stringify(r.body));
      assert.deepEqual(r.body, { device: 'a1', identity_key: alice.identityKey, one_time_prekeys: 5, log: { index: 0, size: 1, appended: true } });
      const log = new KeyLog((await a.ok('/log/key')).key, { tenant: 'acme' });
      const head = await a.ok('/log/head');
      const proven = log.verifyInclusion(head, await a.ok('/log/proof?user=alice&device=a1'));
      assert.equal(proven.identity_key, alice.identityKey);
    });

    it('refuses every kind of bad bundle with 400 bad_bundle, and stores nothing', async () => {
      const dir = await fresh();
      const a = api(dir, 'acme', 'alice');
      const { bundle, resign } = handmade('acme', 'alice', 'a1');
      const spk = bundle.signed_prekey;
      const lowOrder = toB64(le(1n));
      const topBit = fromB64(spk.key, 32)!;
      topBit[31]! |= 0x80;
      const bigU = le(P + 3n);
      const sig = fromB64(spk.sig, 64)!;
      sig[10]! ^= 4;
      const badIdentity = toB64(le(P + 1n));
      const smallOrderEd = toB64(le(1n)); // the identity point
      const many = Array.from({ length: 101 }, (_, i) => ({ id: i, key: toB64(x25519KeyPair().publicKey) }));
      const cases: [string, unknown][] = [
        ['empty body', ''],
        ['not JSON', '{"identity_key":'],
        ['not UTF-8', new Uint8Array([0x7b, 0xff, 0x7d])],
        ['a JSON array', [bundle]],
        ['no identity key', { ...bundle, identity_key: undefined }],
        ['identity key of 31 bytes', { ...bundle, identity_key: toB64(new Uint8Array(31)) }],
        ['identity key with padding', { ...bundle, identity_key: bundle.identity_key + '=' }],
        ['identity key in standard base64', { ...bundle, identity_key: Buffer.from(fromB64(bundle.identity_key)!).toString('base64') }],
        ['identity key not canonical (y >= p)', { ...bundle, identity_key: badIdentity }],
        ['identity key of small order', { ...bundle, identity_key: smallOrderEd }],
        ['no signed prekey', { ...bundle, signed_prekey: undefined }],
        ['signed prekey of 33 bytes', { ...bundle, signed_prekey: { ...spk, key: toB64(new Uint8Array(33)) } }],
        ['signed prekey of low order (validly signed)', { ...bundle, signed_prekey: { ...spk, key: lowOrder, sig: resign(le(1n)) } }],
        ['signed prekey with the top bit set (validly signed)', { ...bundle, signed_prekey: { ...spk, key: toB64(topBit), sig: resign(topBit) } }],
        ['signed prekey u >= p (validly signed)', { ...bundle, signed_prekey: { ...spk, key: toB64(bigU), sig: resign(bigU) } }],
        ['signed prekey with a flipped signature bit', { ...bundle, signed_prekey: { ...spk, sig: toB64(sig) } }],
        ['signed prekey signature of 63 bytes', { ...bundle, signed_prekey: { ...spk, sig: toB64(sig.subarray(1)) } }],
        ['signed prekey signed for another id', { ...bundle, signed_prekey: { ...spk, id: 8 } }],
        ['signed prekey signed for another device', { ...bundle, signed_prekey: { ...spk, sig: resign(fromB64(spk.key)!, 7, 'acme', 'alice', 'a2') } }],
        ['signed prekey signed for another user', { ...bundle, signed_prekey: { ...spk, sig: resign(fromB64(spk.key)!, 7, 'acme', 'bob') } }],
        ['signed prekey signed for another tenant', { ...bundle, signed_prekey: { ...spk, sig: resign(fromB64(spk.key)!, 7, 'globex') } }],
        ['signed prekey id negative', { ...bundle, signed_prekey: { ...spk, id: -1 } }],
        ['signed prekey id 2^32', { ...bundle, signed_prekey: { ...spk, id: 2 ** 32 } }],
        ['signed prekey id a string', { ...bundle, signed_prekey: { ...spk, id: '7' } }],
        ['one-time prekeys not a list', { ...bundle, one_time_prekeys: { id: 1 } }],
        ['101 one-time prekeys', { ...bundle, one_time_prekeys: many }],
        ['a one-time prekey of low order', { ...bundle, one_time_prekeys: [{ id: 1, key: lowOrder }] }],
        ['a one-time prekey with the top bit set', { ...bundle, one_time_prekeys: [{ id: 1, key: toB64(topBit) }] }],
        ['a one-time prekey of 16 bytes', { ...bundle, one_time_prekeys: [{ id: 1, key: toB64(new Uint8Array(16)) }] }],
        ['a one-time prekey without id', { ...bundle, one_time_prekeys: [{ key: bundle.one_time_prekeys[0]!.key }] }],
        ['two one-time prekeys with one id', { ...bundle, one_time_prekeys: [bundle.one_time_prekeys[0], { ...bundle.one_time_prekeys[1], id: 1 }] }],
        ['a body over 64 KiB', { ...bundle, padding: 'x'.repeat(70_000) }],
      ];
      for (const [what, body] of cases) {
        const r = await a.put('a1', body);
        assert.equal(r.status, 400, `${what}: ${JSON.stringify(r.body)}`);
        assert.equal((r.body as { error: string }).error, 'bad_bundle', what);
      }
      assert.equal((await a.put('x'.repeat(129), bundle)).status, 400, 'a device id of 129 characters');
      assert.equal((await a.ok('/log/head')).size, 0, 'nothing was logged');
      assert.deepEqual(await a.ok('/users/alice/bundles'), { bundles: [] });
      assert.equal((await a.put('a1', { ...bundle, one_time_prekeys: many.slice(0, 100) })).status, 200, '100 prekeys are fine');
      assert.equal((await a.put('a1', bundle)).status, 200, 'and the untouched bundle is fine');
    });

    it('hands out each one-time prekey once, one bundle per device, then bundles without one', async () => {
      const dir = await fresh();
      const a = api(dir, 'acme', 'alice');
      const b1 = handmade('acme', 'alice', 'a1', 2);
      const b2 = handmade('acme', 'alice', 'a2', 1);
      await a.put('a1', b1.bundle);
      await a.put('a2', b2.bundle);
      const bob = api(dir, 'acme', 'bob');
      const first = (await bob.ok('/users/alice/bundles')).bundles;
      assert.deepEqual(first.map((b: { device: string }) => b.device), ['a1', 'a2']);
      assert.deepEqual(first[0], { user: 'alice', device: 'a1', identity_key: b1.bundle.identity_key, signed_prekey: b1.bundle.signed_prekey, one_time_prekey: b1.bundle.one_time_prekeys[0] });
      assert.deepEqual(first[1].one_time_prekey, b2.bundle.one_time_prekeys[0]);
      const second = (await bob.ok('/users/alice/bundles')).bundles;
      assert.deepEqual(second[0].one_time_prekey, b1.bundle.one_time_prekeys[1]);
      assert.equal('one_time_prekey' in second[1], false);
      const third = (await bob.ok('/users/alice/bundles')).bundles;
      assert.equal(third.length, 2);
      assert.ok(third.every((b: object) => !('one_time_prekey' in b)));
    });

    it('never hands out one one-time prekey twice under concurrent fetches from two instances', async () => {
      const store = await f.fresh();
      const one = new E2EDirectory({ store });
      const two = new E2EDirectory({ store: await f.twin(store) });
      const owner = api(one, 'acme', 'alice');
      for (const d of ['a1', 'a2']) {
        const h = handmade('acme', 'alice', d, 0);
        h.bundle.one_time_prekeys = Array.from({ length: 100 }, (_, i) => ({ id: i, key: toB64(x25519KeyPair().publicKey) }));
        await owner.put(d, h.bundle);
        h.bundle.one_time_prekeys = Array.from({ length: 50 }, (_, i) => ({ id: 100 + i, key: toB64(x25519KeyPair().publicKey) }));
        await owner.put(d, h.bundle);
      }
      const fetchers = Array.from({ length: 200 }, (_, i) => api(i % 2 ? one : two, 'acme', `caller${i}`));
      const answers = await Promise.all(fetchers.map((c) => c.ok('/users/alice/bundles')));
      for (const d of ['a1', 'a2']) {
        const ids = answers.flatMap((r) => r.bundles.filter((b: { device: string }) => b.device === d).map((b: { one_time_prekey?: { id: number } }) => b.one_time_prekey?.id)).filter((x) => x !== undefined);
        assert.equal(ids.length, 150, `${d}: every prekey handed out`);
        assert.equal(new Set(ids).size, 150, `${d}: none twice`);
      }
    });

    it('appends the log atomically: concurrent publishes from two instances each get their own index', async () => {
      const store = await f.fresh();
      const one = new E2EDirectory({ store });
      const two = new E2EDirectory({ store: await f.twin(store) });
      const devices = await Promise.all(Array.from({ length: 40 }, (_, i) => Device.create({ tenant: 'acme', user: `u${i % 4}`, device: `d${i}` })));
      const answers = await Promise.all(devices.map((d, i) => api(i % 2 ? one : two, 'acme', d.user).put(d.device, d.bundle(2))));
      const indices = answers.map((r) => (r.body as { log: { index: number } }).log.index);
      assert.deepEqual([...indices].sort((x, y) => x - y), Array.from({ length: 40 }, (_, i) => i));
      const reader = api(one, 'acme', 'x');
      const log = new KeyLog((await reader.ok('/log/key')).key);
      const head = await reader.ok('/log/head');
      assert.equal(head.size, 40);
      for (const [i, d] of devices.entries()) {
        const proven = log.verifyInclusion(head, await api(i % 2 ? two : one, 'acme', 'x').ok(`/log/proof?user=${d.user}&device=${d.device}`));
        assert.deepEqual([proven.identity_key, proven.index], [d.identityKey, indices[i]]);
      }
    });

    it('re-publishing the same identity key adds prekeys without a log entry; a new identity key is logged and drops the old prekeys', async () => {
      const dir = await fresh();
      const a = api(dir, 'acme', 'alice');
      const alice = await Device.create({ tenant: 'acme', user: 'alice', device: 'a1' });
      await a.put('a1', alice.bundle(2));
      const again = await a.put('a1', alice.bundle(3));
      assert.deepEqual((again.body as { log: unknown }).log, { index: 0, size: 1, appended: false });
      assert.equal((again.body as { one_time_prekeys: number }).one_time_prekeys, 5);
      const reinstalled = await Device.create({ tenant: 'acme', user: 'alice', device: 'a1' });
      const rb = reinstalled.bundle(1);
      const r = await a.put('a1', rb);
      assert.deepEqual((r.body as { log: unknown }).log, { index: 1, size: 2, appended: true });
      assert.equal((r.body as { one_time_prekeys: number }).one_time_prekeys, 1);
      const proof = await a.ok('/log/proof?user=alice&device=a1');
      assert.equal(proof.identity_key, reinstalled.identityKey);
      assert.equal((await a.ok('/log/proof?user=alice&device=a1&size=1')).identity_key, alice.identityKey, 'the older head proves the older key');
      const fetched = (await a.ok('/users/alice/bundles')).bundles[0];
      assert.equal(fetched.identity_key, reinstalled.identityKey);
      assert.deepEqual(fetched.one_time_prekey, rb.one_time_prekeys[0], 'only the new key\'s prekeys are handed out');
    });

    it('keeps tenants apart: users, bundles, log, proofs and entries', async () => {
      const store = await f.fresh();
      const dir = new E2EDirectory({ store });
      const acme = api(dir, 'acme', 'alice');
      const globex = api(dir, 'globex', 'mallory');
      const alice = await Device.create({ tenant: 'acme', user: 'alice', device: 'a1' });
      await acme.put('a1', alice.bundle(3));
      assert.deepEqual(await globex.ok('/users/alice/bundles'), { bundles: [] });
      assert.equal((await globex.ok('/log/head')).size, 0);
      assert.equal((await globex.get('/log/proof?user=alice&device=a1')).status, 404);
      const entries = await globex.ok('/log/entries?user=alice');
      assert.deepEqual([entries.size, entries.entries.length], [0, 0]);
      // globex's "alice" is another person in another namespace: publishing there changes nothing at acme.
      const other = await Device.create({ tenant: 'globex', user: 'alice', device: 'a1' });
      assert.equal((await api(dir, 'globex', 'alice').put('a1', other.bundle(1))).status, 200);
      const seen = (await api(dir, 'acme', 'bob').ok('/users/alice/bundles')).bundles;
      assert.deepEqual(seen.map((b: { identity_key: string }) => b.identity_key), [alice.identityKey]);
      assert.equal((await acme.ok('/log/head')).size, 1);
      // A bundle signed for acme cannot be published at globex (the signature binds the tenant).
      assert.equal((await api(dir, 'globex', 'alice').put('a1', alice.bundle(0))).status, 400);
      // A head of one tenant does not pass for another's.
      const key = (await acme.ok('/log/key')).key;
      await rejectsWith(async () => new KeyLog(key, { tenant: 'acme' }).verifyHead(await globex.ok('/log/head')), 'ERR_LOG_SIGNATURE');
    });

    it('every instance on one store signs with the same log key; a provided key is used as given', async () => {
      const store = await f.fresh();
      const one = new E2EDirectory({ store });
      const two = new E2EDirectory({ store: await f.twin(store) });
      const [k1, k2] = await Promise.all([one.logKey(), two.logKey()]);
      assert.equal(k1, k2);
      const alice = await Device.create({ tenant: 'acme', user: 'alice', device: 'a1' });
      await api(one, 'acme', 'alice').put('a1', alice.bundle(0));
      const h1 = await api(one, 'acme', 'x').ok('/log/head');
      const h2 = await api(two, 'acme', 'y').ok('/log/head');
      assert.deepEqual(h1, h2, 'a head of one size is the same bytes on every instance');
      const given = ed25519KeyPair();
      const three = new E2EDirectory({ store, logSigningKey: given.secretKey });
      assert.equal(await three.logKey(), toB64(given.publicKey));
      new KeyLog(toB64(given.publicKey)).verifyHead(await api(three, 'acme', 'z').ok('/log/head'));
      assert.throws(() => new E2EDirectory({ store, logSigningKey: new Uint8Array(32) }), /64-byte/);
      const wrong = given.secretKey.slice();
      wrong[40]! ^= 1;
      assert.throws(() => new E2EDirectory({ store, logSigningKey: wrong }), /public key of its seed/);
    });

    it('answers 404, 405, 426 and 400 for wrong paths, methods, upgrades and queries', async () => {
      const dir = await fresh();
      const a = api(dir, 'acme', 'alice');
      const ctx = { tenant: 'acme', user: 'alice' };
      const q = new URLSearchParams();
      assert.equal((await dir.handle('GET', '/nope', q, null, ctx)).status, 404);
      assert.equal((await dir.handle('GET', '/log/constructor', q, null, ctx)).status, 404);
      assert.equal((await dir.handle('GET', '/devices/a1', q, null, ctx)).status, 405);
      assert.equal((await dir.handle('POST', '/log/head', q, null, ctx)).status, 405);
      assert.equal((await dir.handle('GET', '/relay', q, null, ctx)).status, 426);
      assert.equal((await dir.handle('GET', '/users/%E0%A4%A/bundles', q, null, ctx)).status, 404);
      for (const path of ['/log/head?size=1', '/log/head?size=-1', '/log/proof?user=alice', '/log/consistency?from=1&to=0',
        '/log/consistency?to=0', '/log/entries', '/log/entries?user=alice&from=3', '/log/proof?user=alice&device=a1&size=x']) {
        const r = await a.get(path);
        assert.equal(r.status, 400, path);
        assert.equal((r.body as { error: string }).error, 'bad_request', path);
      }
      assert.equal((await a.get('/log/proof?user=alice&device=a1')).status, 404);
    });

    it('caps devices per user (409 too_many_devices) and keeps only the newest one-time prekeys', async () => {
      const dir = new E2EDirectory({ store: await f.fresh({ maxDevicesPerUser: 2, maxPrekeysPerDevice: 5 }) });
      const a = api(dir, 'acme', 'alice');
      const h = handmade('acme', 'alice', 'a1', 0);
      h.bundle.one_time_prekeys = Array.from({ length: 8 }, (_, i) => ({ id: i, key: toB64(x25519KeyPair().publicKey) }));
      assert.equal((await a.put('a1', h.bundle)).status, 200);
      assert.equal((await a.put('a2', handmade('acme', 'alice', 'a2').bundle)).status, 200);
      const r = await a.put('a3', handmade('acme', 'alice', 'a3').bundle);
      assert.deepEqual([r.status, (r.body as { error: string }).error], [409, 'too_many_devices']);
      assert.equal((await a.put('a2', handmade('acme', 'alice', 'a2').bundle)).status, 200, 'a known device may re-publish');
      const got = (await a.ok('/users/alice/bundles')).bundles[0];
      assert.equal(got.one_time_prekey.id, 3);
    });
  });
}
