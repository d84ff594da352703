// KeyLog (the SDK) checking what ward's directory serves: heads, inclusion, consistency across many
// sizes, and own-key monitoring that cannot be shown an incomplete list.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { E2EDirectory } from '../directory/directory.js';
import { MemoryDirectoryStore } from '../directory/memory-store.js';
import { Device } from '../sdk/device.js';
import { KeyLog, type LogEntries, type LogHead } from '../sdk/key-log.js';
import { ed25519KeyPair, toB64 } from '../sdk/primitives.js';
import { api, throwsWith, wire } from './helpers.js';

async function setup() {
  const dir = new E2EDirectory({ store: new MemoryDirectoryStore() });
  const a = api(dir, 'acme', 'alice');
  const log = new KeyLog((await a.ok('/log/key')).key, { tenant: 'acme' });
  return { dir, a, log };
}

async function publish(dir: E2EDirectory, user: string, device: string): Promise<Device> {
  const d = await Device.create({ tenant: 'acme', user, device });
  const r = await api(dir, 'acme', user).put(device, d.bundle(1));
  assert.equal(r.status, 200);
  return d;
}

describe('log heads', () => {
  it('verify under the pinned key, and not under another key, another tenant, or when changed', async () => {
    const { dir, a, log } = await setup();
    await publish(dir, 'alice', 'a1');
    const head: LogHead = await a.ok('/log/head');
    assert.deepEqual(log.verifyHead(head), head);
    throwsWith(() => new KeyLog(toB64(ed25519KeyPair().publicKey)).verifyHead(head), 'ERR_LOG_SIGNATURE');
    throwsWith(() => log.verifyHead({ ...head, size: 2 }), 'ERR_LOG_SIGNATURE');
    throwsWith(() => log.verifyHead({ ...head, root: toB64(new Uint8Array(32)) }), 'ERR_LOG_SIGNATURE');
    throwsWith(() => log.verifyHead({ ...head, tenant: 'globex' }), 'ERR_LOG_SIGNATURE');
    throwsWith(() => log.verifyHead('head'), 'ERR_LOG_SIGNATURE');
    const globex = await api(dir, 'globex', 'x').ok('/log/head');
    throwsWith(() => log.verifyHead(globex), 'ERR_LOG_SIGNATURE');
    new KeyLog((await a.ok('/log/key')).key).verifyHead(globex); // without a pinned tenant, any tenant's head
    assert.throws(() => new KeyLog('not-a-key'), (e: { code?: string }) => e.code === 'ERR_BAD_KEY');
  });
});

describe('inclusion', () => {
  it("proves a device's current key, refuses a proof for another key, and verifyBundle ties it to a fetched bundle", async () => {
    const { dir, a, log } = await setup();
    const alice = await publish(dir, 'alice', 'a1');
    await publish(dir, 'bob', 'b1');
    const head = await a.ok('/log/head');
    const proof = await a.ok('/log/proof?user=alice&device=a1');
    const proven = log.verifyInclusion(head, proof);
    assert.deepEqual([proven.user, proven.device, proven.identity_key, proven.index], ['alice', 'a1', alice.identityKey, 0]);
    throwsWith(() => log.verifyInclusion(head, { ...proof, identity_key: toB64(ed25519KeyPair().publicKey) }), 'ERR_LOG_PROOF');
    throwsWith(() => log.verifyInclusion(head, { ...proof, user: 'bob' }), 'ERR_LOG_PROOF');
    throwsWith(() => log.verifyInclusion(head, { ...proof, ts: proof.ts + 1 }), 'ERR_LOG_PROOF');
    throwsWith(() => log.verifyInclusion(head, { ...proof, index: 1 }), 'ERR_LOG_PROOF');
    throwsWith(() => log.verifyInclusion(head, { ...proof, size: 1 }), 'ERR_LOG_PROOF');
    throwsWith(() => log.verifyInclusion(head, { ...proof, path: ['AAAA'] }), 'ERR_LOG_PROOF');
    const bundle = (await a.ok('/users/alice/bundles')).bundles[0];
    log.verifyBundle(head, proof, bundle);
    const other = await Device.create({ tenant: 'acme', user: 'alice', device: 'a1' });
    throwsWith(() => log.verifyBundle(head, proof, { ...bundle, identity_key: other.identityKey }), 'ERR_LOG_MISMATCH');
  });
});

describe('consistency', () => {
  it('every later head extends every earlier one, over 40 publishes (all pairs)', async () => {
    const { dir, a, log } = await setup();
    const heads: LogHead[] = [await a.ok('/log/head')];
    for (let i = 0; i < 40; i++) {
      await publish(dir, `u${i % 5}`, `d${i}`);
      heads.push(await a.ok('/log/head'));
    }
    for (let m = 0; m < heads.length; m++) {
      for (let n = m; n < heads.length; n++) {
        const proof = await a.ok(`/log/consistency?from=${m}&to=${n}`);
        log.verifyConsistency(heads[m], heads[n], proof);
        assert.deepEqual(await a.ok(`/log/head?size=${m}`), heads[m], 'a past head is served identically');
      }
    }
    const p = await a.ok('/log/consistency?from=13&to=29');
    throwsWith(() => log.verifyConsistency(heads[13], heads[30], p), 'ERR_LOG_INCONSISTENT');
    throwsWith(() => log.verifyConsistency(heads[12], heads[29], p), 'ERR_LOG_INCONSISTENT');
    const bad = { ...p, path: [toB64(new Uint8Array(32)), ...p.path.slice(1)] };
    throwsWith(() => log.verifyConsistency(heads[13], heads[29], bad), 'ERR_LOG_INCONSISTENT');
  });

  it('a log rewritten under the same key (a fork) is caught by the consistency check', async () => {
    const key = ed25519KeyPair().secretKey;
    const honest = new E2EDirectory({ store: new MemoryDirectoryStore(), logSigningKey: key });
    const forked = new E2EDirectory({ store: new MemoryDirectoryStore(), logSigningKey: key });
    await publish(honest, 'alice', 'a1');
    await publish(forked, 'alice', 'a1'); // another key for alice/a1 in the fork
    const old = await api(honest, 'acme', 'x').ok('/log/head');
    await publish(forked, 'bob', 'b1');
    const log = new KeyLog(await honest.logKey());
    const newer = await api(forked, 'acme', 'x').ok('/log/head');
    log.verifyHead(newer); // validly signed: only consistency reveals the rewrite
    const proof = await api(forked, 'acme', 'x').ok('/log/consistency?from=1&to=2');
    throwsWith(() => log.verifyConsistency(old, newer, proof), 'ERR_LOG_INCONSISTENT');
  });
});

describe('own-key monitoring', () => {
  it('returns nothing while the log holds only my keys, and flags a key published under my name', async () => {
    const { dir, a, log } = await setup();
    const a1 = await publish(dir, 'alice', 'a1');
    const a2 = await publish(dir, 'alice', 'a2');
    for (let i = 0; i < 9; i++) await publish(dir, `other${i}`, 'd');
    const mine = [a1.identityKey, a2.identityKey];
    assert.deepEqual(log.monitor(await a.ok('/log/entries?user=alice'), await a.ok('/log/head'), mine), []);
    // Someone (ward itself, or a stolen token) publishes a device as alice.
    const evil = await publish(dir, 'alice', 'a3');
    const found = log.monitor(await a.ok('/log/entries?user=alice'), await a.ok('/log/head'), mine);
    assert.deepEqual(found.map((e) => [e.device, e.identity_key]), [['a3', evil.identityKey]]);
    assert.deepEqual([...log.currentKeys(await a.ok('/log/entries?user=alice'), await a.ok('/log/head')).keys()], ['a1', 'a2', 'a3']);
  });

  it('refuses an entry list that leaves out, adds or alters anything (ERR_LOG_INCOMPLETE)', async () => {
    const { dir, a, log } = await setup();
    const a1 = await publish(dir, 'alice', 'a1');
    await publish(dir, 'bob', 'b1');
    await publish(dir, 'alice', 'a9'); // the injected one
    await publish(dir, 'carol', 'c1');
    const head = await a.ok('/log/head');
    const full: LogEntries = await a.ok('/log/entries?user=alice');
    assert.equal(full.entries.length, 2);
    const spoil = (f: (e: LogEntries) => void) => {
      const e = wire(full);
      f(e);
      return e;
    };
    const bobLeaf = full.leaves[1]!;
    const cases: [string, LogEntries | unknown][] = [
      ['the injected entry left out', spoil((e) => e.entries.splice(1, 1))],
      ['its leaf swapped for another user\'s', spoil((e) => {
        e.entries.splice(1, 1);
        e.leaves[2] = bobLeaf;
      })],
      ['its leaf dropped', spoil((e) => {
        e.entries.splice(1, 1);
        e.leaves.splice(2, 1);
      })],
      ['an entry with another key', spoil((e) => (e.entries[1]!.identity_key = a1.identityKey))],
      ['an entry with another device', spoil((e) => (e.entries[1]!.device = 'a1'))],
      ['an invented entry', spoil((e) => e.entries.push({ ...e.entries[0]!, index: 3 }))],
      ['an entry listed twice', spoil((e) => e.entries.push(e.entries[0]!))],
      ['a changed leaf', spoil((e) => (e.leaves[3] = toB64(new Uint8Array(64))))],
      ['the list of another size', spoil((e) => (e.size = 3))],
      ['another user\'s list', spoil((e) => (e.user = 'bob'))],
      ['a list starting later, with no earlier head', spoil((e) => {
        e.from = 1;
        e.leaves.shift();
        e.entries.shift();
      })],
      ['not a list', 'entries'],
    ];
    for (const [what, e] of cases) {
      assert.throws(() => log.monitor(e, head, [a1.identityKey]), (err: { code?: string }) => err.code === 'ERR_LOG_INCOMPLETE', what);
    }
    // And against a head of another size, a complete list still does not pass.
    const head3 = await a.ok('/log/head?size=3');
    throwsWith(() => log.monitor(full, head3, []), 'ERR_LOG_INCOMPLETE');
  });

  it('checks only what is new since a head it checked before (from + since)', async () => {
    const { dir, a, log } = await setup();
    const a1 = await publish(dir, 'alice', 'a1');
    for (let i = 0; i < 6; i++) await publish(dir, `u${i}`, 'd');
    const since = await a.ok('/log/head');
    assert.deepEqual(log.monitor(await a.ok('/log/entries?user=alice'), since, [a1.identityKey]), []);
    for (let i = 0; i < 5; i++) await publish(dir, `v${i}`, 'd');
    const evil = await publish(dir, 'alice', 'a2');
    const head = await a.ok('/log/head');
    const delta: LogEntries = await a.ok(`/log/entries?user=alice&from=${since.size}`);
    assert.equal(delta.leaves.length, head.size - since.size);
    const found = log.monitor(delta, head, [a1.identityKey], { since });
    assert.deepEqual(found.map((e) => e.identity_key), [evil.identityKey]);
    const head3 = await a.ok('/log/head?size=3');
    throwsWith(() => log.monitor(delta, head, [], { since: head3 }), 'ERR_LOG_INCOMPLETE');
    const forgedPrefix = { ...delta, prefix: delta.prefix.map(() => toB64(new Uint8Array(32))) };
    throwsWith(() => log.monitor(forgedPrefix, head, [], { since }), 'ERR_LOG_INCOMPLETE');
  });
});
