// Protocol v1 test vectors (crypto/test/vectors/protocol-v1.json): every byte string of one call and
// of a small key log, from fixed secrets, so another implementation of PROTOCOL.md can check itself
// against ours. Regenerate (only on a deliberate protocol change): WARD_WRITE_VECTORS=1.
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { LogTree } from '../directory/log-tree.js';
import { signedPrekeyMessage } from '../sdk/bundle.js';
import { FrameCipher } from '../sdk/frames.js';
import { commitment, helloHash, helloMessage, replyMessage, type HelloFields } from '../sdk/handshake.js';
import { deriveCallKeys, revealMac } from '../sdk/key-schedule.js';
import { headMessage, logLeaf } from '../sdk/key-log.js';
import { ed25519FromSeed, edPublicToX, edSecretToX, sign, toB64, x25519, x25519Base } from '../sdk/primitives.js';

const FILE = fileURLToPath(new URL('../../../crypto/test/vectors/protocol-v1.json', import.meta.url));
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const fill = (n: number) => new Uint8Array(32).fill(n);

function compute(): Record<string, unknown> {
  const tenant = 'acme';
  const callId = 'call-1';
  const ts = 1_700_000_000_000;
  const ikA = ed25519FromSeed(fill(1));
  const ikB = ed25519FromSeed(fill(2));
  const spk = fill(3), opk = fill(4), ekA = fill(5), ekB = fill(6);
  const spkPub = x25519Base(spk), opkPub = x25519Base(opk), ekAPub = x25519Base(ekA), ekBPub = x25519Base(ekB);
  const spkMsg = signedPrekeyMessage(tenant, 'bob', 'b1', 1, spkPub);
  const commit = commitment(tenant, callId, ikA.publicKey, ekAPub);
  const fields: HelloFields = {
    tenant, callId, ts, commit, spkId: 1, opkId: 5,
    from: { user: 'alice', device: 'a1', identityKey: ikA.publicKey },
    to: { user: 'bob', device: 'b1', identityKey: ikB.publicKey },
  };
  const tbs = helloMessage(fields);
  const helloSig = sign(ikA.secretKey, tbs);
  const hh = helloHash(tbs, helloSig);
  const replyMsg = replyMessage(hh, ikB.publicKey, ekBPub);
  const dh = [
    x25519(edSecretToX(ikA.secretKey), spkPub),
    x25519(ekA, edPublicToX(ikB.publicKey)),
    x25519(ekA, spkPub),
    x25519(ekA, opkPub),
    x25519(ekA, ekBPub),
  ] as const;
  const dhHex = dh.map(hex);
  const keys = deriveCallKeys(
    { tenant, callId, caller: fields.from, callee: fields.to, spkId: 1, spk: spkPub, opkId: 5, opk: opkPub, commit, ts, ekCaller: ekAPub, ekCallee: ekBPub },
    [...dh],
  );
  const out = {
    call: {
      inputs: {
        tenant, call_id: callId, ts, caller: 'alice/a1', callee: 'bob/b1', signed_prekey_id: 1, one_time_prekey_id: 5,
        caller_identity_seed: hex(fill(1)), callee_identity_seed: hex(fill(2)),
        signed_prekey_secret: hex(spk), one_time_prekey_secret: hex(opk), caller_ephemeral_secret: hex(ekA), callee_ephemeral_secret: hex(ekB),
      },
      caller_identity_key: toB64(ikA.publicKey),
      callee_identity_key: toB64(ikB.publicKey),
      signed_prekey: { key: toB64(spkPub), message: hex(spkMsg), sig: toB64(sign(ikB.secretKey, spkMsg)) },
      one_time_prekey: toB64(opkPub),
      commit: toB64(commit),
      hello_tbs: hex(tbs),
      hello_sig: toB64(helloSig),
      hello_hash: toB64(hh),
      reply_tbs: hex(replyMsg),
      reply_sig: toB64(sign(ikB.secretKey, replyMsg)),
      dh: dhHex,
      transcript_hash: hex(keys.th),
      caller_to_callee_key: hex(keys.callerToCallee),
      callee_to_caller_key: hex(keys.calleeToCaller),
      confirm_key: hex(keys.confirm),
      reveal_mac: toB64(revealMac(keys.confirm, keys.th)),
      sas: keys.sas,
      first_frame_hello: hex(new FrameCipher(keys.callerToCallee.slice(), keys.calleeToCaller.slice()).seal(new TextEncoder().encode('hello'))),
    },
    log: (() => {
      const logKey = ed25519FromSeed(fill(7));
      const tree = new LogTree(tenant);
      const entries = [0, 1, 2, 3, 4].map((i) => ({ user: ['alice', 'bob'][i % 2]!, device: `d${i}`, identity_key: toB64(ed25519FromSeed(fill(10 + i)).publicKey), ts: ts + i }));
      const leaves = entries.map((e) => {
        tree.append(e);
        return hex(logLeaf(tenant, e.user, e.device, ed25519FromSeed(fill(10 + entries.indexOf(e))).publicKey, e.ts));
      });
      const roots = [0, 1, 2, 3, 4, 5].map((n) => toB64(tree.root(n)));
      return {
        tenant,
        log_key_seed: hex(fill(7)),
        log_key: toB64(logKey.publicKey),
        entries,
        leaves,
        roots,
        head_5: { tenant, size: 5, root: roots[5], sig: toB64(sign(logKey.secretKey, headMessage(tenant, 5, tree.root(5)))) },
        inclusion_2_of_5: tree.inclusion(2, 5).map(toB64),
        consistency_3_to_5: tree.consistency(3, 5).map(toB64),
      };
    })(),
  };
  return out;
}

describe('protocol v1 vectors', () => {
  it('our implementation reproduces crypto/test/vectors/protocol-v1.json byte for byte', () => {
    const now = compute();
    if (process.env.WARD_WRITE_VECTORS === '1') writeFileSync(FILE, JSON.stringify(now, null, 2) + '\n');
    assert.deepEqual(now, JSON.parse(readFileSync(FILE, 'utf8')));
  });
});
