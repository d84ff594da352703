// A call's two ends after the hello (PROTOCOL.md §4-§5). Each end confirms once, derives the keys,
// erases its ephemeral and prekey secrets, and from then on seals and opens frames.
import { type CheckedPeerBundle } from './bundle.js';
import { E2EError } from './errors.js';
import { FrameCipher } from './frames.js';
import { commitment, type HelloFields, parseReply, parseReveal, replyMessage, type Reveal } from './handshake.js';
import { type CallKeys, deriveCallKeys, revealMac } from './key-schedule.js';
import { edPublicToX, equal, type KeyPair, toB64, verify, wipe, x25519 } from './primitives.js';

export interface Peer {
  user: string;
  device: string;
  /** base64url Ed25519 identity key: check it against the key log (KeyLog.verifyInclusion). */
  identityKey: string;
}

/** Called once a call completes, so the device remembers the peer's key (key continuity). */
export type RememberPeer = (peer: Peer) => Promise<void>;

export abstract class CallSession {
  readonly callId: string;
  readonly peer: Peer;
  abstract readonly role: 'caller' | 'callee';
  #frames: FrameCipher | undefined;
  #sas: string | undefined;
  #closed = false;

  protected constructor(callId: string, peer: Peer) {
    this.callId = callId;
    this.peer = peer;
  }

  /** The short authentication string (6 digits) the two people compare aloud. Throws ERR_STATE
   * until this end has confirmed. */
  get sas(): string {
    if (this.#sas === undefined) throw new E2EError('ERR_STATE', 'the SAS is defined once confirm() has succeeded');
    return this.#sas;
  }

  /** True once confirm() has succeeded. */
  get established(): boolean {
    return this.#frames !== undefined;
  }

  seal(frame: Uint8Array): Uint8Array {
    return this.#cipher().seal(frame);
  }

  /** Throws ERR_DECRYPT (tampered), ERR_REPLAY, ERR_REORDERED or ERR_BAD_MESSAGE. */
  open(frame: Uint8Array): Uint8Array {
    return this.#cipher().open(frame);
  }

  /** Erases the session's keys (and any secret still held for an unfinished set-up). */
  close(): void {
    this.#closed = true;
    this.#frames?.close();
    this.wipeSetup();
  }

  protected abstract wipeSetup(): void;

  protected establish(keys: CallKeys, send: Uint8Array, recv: Uint8Array): void {
    this.#frames = new FrameCipher(send, recv);
    this.#sas = keys.sas;
    wipe(keys.confirm);
  }

  /** Key continuity is recorded before the session counts as established: if storage fails, the
   * set-up secrets are still there and confirm() may be called again. */
  protected async rememberOrWipe(remember: RememberPeer, keys: CallKeys): Promise<void> {
    try {
      await remember(this.peer);
    } catch (e) {
      wipe(keys.callerToCallee, keys.calleeToCaller, keys.confirm);
      throw e;
    }
  }

  protected assertPending(): void {
    if (this.#closed) throw new E2EError('ERR_STATE', 'the session is closed');
    if (this.#frames) throw new E2EError('ERR_STATE', 'confirm() already succeeded for this session');
  }

  #cipher(): FrameCipher {
    if (this.#closed) throw new E2EError('ERR_STATE', 'the session is closed');
    if (!this.#frames) throw new E2EError('ERR_STATE', 'frames need a confirmed session');
    return this.#frames;
  }
}

export interface CallerSetup {
  hello: HelloFields;
  helloHash: Uint8Array;
  identitySecretX: Uint8Array;
  ephemeral: KeyPair;
  bundle: CheckedPeerBundle;
  remember: RememberPeer;
}

export class CallerSession extends CallSession {
  readonly role = 'caller' as const;
  #s: CallerSetup;

  constructor(callId: string, setup: CallerSetup) {
    const b = setup.bundle;
    super(callId, { user: b.user, device: b.device, identityKey: toB64(b.identityKey) });
    this.#s = setup;
  }

  /** Checks the callee's reply and returns the reveal to send back. The SAS is defined from here. */
  async confirm(reply: unknown): Promise<Reveal> {
    this.assertPending();
    const s = this.#s;
    const r = parseReply(reply);
    if (r.callId !== this.callId || !equal(r.hello, s.helloHash)) {
      throw new E2EError('ERR_WRONG_PEER', 'this reply answers another hello');
    }
    const ik = s.bundle.identityKey;
    if (!verify(ik, replyMessage(s.helloHash, ik, r.ek), r.sig)) {
      throw new E2EError('ERR_BAD_SIGNATURE', 'the reply is not signed by the callee identity key');
    }
    const spk = s.bundle.signedPrekey.key;
    const opk = s.bundle.oneTimePrekey;
    const ek = s.ephemeral.secretKey;
    const keys = deriveCallKeys(
      { ...transcriptBase(s.hello), spk, opk: opk?.key, ekCaller: s.ephemeral.publicKey, ekCallee: r.ek },
      [x25519(s.identitySecretX, spk), x25519(ek, edPublicToX(ik)), x25519(ek, spk), opk && x25519(ek, opk.key), x25519(ek, r.ek)],
    );
    const reveal: Reveal = {
      v: 1,
      type: 'reveal',
      call_id: this.callId,
      hello: toB64(s.helloHash),
      ek: toB64(s.ephemeral.publicKey),
      mac: toB64(revealMac(keys.confirm, keys.th)),
    };
    await this.rememberOrWipe(s.remember, keys);
    this.establish(keys, keys.callerToCallee, keys.calleeToCaller);
    this.wipeSetup();
    return reveal;
  }

  protected wipeSetup(): void {
    wipe(this.#s.ephemeral.secretKey, this.#s.identitySecretX);
  }
}

export interface CalleeSetup {
  hello: HelloFields;
  helloHash: Uint8Array;
  identitySecretX: Uint8Array;
  ephemeral: KeyPair;
  spk: KeyPair;
  opk?: KeyPair;
  remember: RememberPeer;
}

export class CalleeSession extends CallSession {
  readonly role = 'callee' as const;
  #s: CalleeSetup;

  constructor(callId: string, setup: CalleeSetup) {
    const f = setup.hello.from;
    super(callId, { user: f.user, device: f.device, identityKey: toB64(f.identityKey) });
    this.#s = setup;
  }

  /** Checks the caller's reveal against the hello's commitment and its key-confirmation MAC. */
  async confirm(reveal: unknown): Promise<void> {
    this.assertPending();
    const s = this.#s;
    const r = parseReveal(reveal);
    if (r.callId !== this.callId || !equal(r.hello, s.helloHash)) {
      throw new E2EError('ERR_WRONG_PEER', 'this reveal is for another hello');
    }
    const h = s.hello;
    if (!equal(commitment(h.tenant, h.callId, h.from.identityKey, r.ek), h.commit)) {
      throw new E2EError('ERR_COMMITMENT', 'the reveal does not open the hello commitment');
    }
    const spk = s.spk.secretKey;
    const keys = deriveCallKeys(
      { ...transcriptBase(h), spk: s.spk.publicKey, opk: s.opk?.publicKey, ekCaller: r.ek, ekCallee: s.ephemeral.publicKey },
      [
        x25519(spk, edPublicToX(h.from.identityKey)),
        x25519(s.identitySecretX, r.ek),
        x25519(spk, r.ek),
        s.opk && x25519(s.opk.secretKey, r.ek),
        x25519(s.ephemeral.secretKey, r.ek),
      ],
    );
    if (!equal(revealMac(keys.confirm, keys.th), r.mac)) {
      wipe(keys.callerToCallee, keys.calleeToCaller, keys.confirm);
      throw new E2EError('ERR_KEY_CONFIRMATION', 'the reveal MAC does not verify: the caller does not hold its identity key');
    }
    await this.rememberOrWipe(s.remember, keys);
    this.establish(keys, keys.calleeToCaller, keys.callerToCallee);
    this.wipeSetup();
  }

  protected wipeSetup(): void {
    const s = this.#s;
    wipe(s.ephemeral.secretKey, s.spk.secretKey, s.opk?.secretKey, s.identitySecretX);
  }
}

function transcriptBase(h: HelloFields) {
  return {
    tenant: h.tenant,
    callId: h.callId,
    caller: h.from,
    callee: h.to,
    spkId: h.spkId,
    opkId: h.opkId,
    commit: h.commit,
    ts: h.ts,
  };
}
