// One device of one user: its identity and prekeys, the bundle it publishes, and the two ways a call
// starts (call, answer). What must survive a restart goes through DeviceStorage (storage.ts).
import { type Bundle, checkPeerBundle, isName, MAX_ONE_TIME_PREKEYS, signPrekey } from './bundle.js';
import { E2EError, IdentityChangedError } from './errors.js';
import { commitment, type Hello, helloHash, helloMessage, type HelloFields, parseHello, replyMessage, type Reply } from './handshake.js';
import {
  ed25519KeyPair, edSecretToX, equal, fromB64, type KeyPair, sign, toB64, verify, x25519Base, x25519KeyPair,
} from './primitives.js';
import { CalleeSession, CallerSession, type Peer } from './session.js';
import { type DeviceStorage, MemoryStorage } from './storage.js';

export interface DeviceOptions {
  tenant: string;
  user: string;
  device: string;
  /** Where secrets and peer memory live; default: in memory (lost on restart). */
  storage?: DeviceStorage;
  /** Milliseconds since the epoch; tests move it. */
  now?: () => number;
}

export interface IdentityOptions {
  /** Go on although a known peer's identity key changed (after telling the user). */
  acceptIdentityChange?: boolean;
}

export interface CallOptions extends IdentityOptions {
  callId: string;
  /** The callee's user, when the bundle does not carry it. */
  user?: string;
}

/** How far a hello's clock may be from ours, and how long answered hellos are remembered. */
export const HELLO_WINDOW_MS = 10 * 60_000;

interface StoredPrekey {
  id: number;
  sk: string;
}
interface PrekeyState {
  spk: StoredPrekey;
  prev?: StoredPrekey;
  nextSpk: number;
  nextOpk: number;
  opks: Record<string, string>;
}

export class Device {
  readonly tenant: string;
  readonly user: string;
  readonly device: string;
  readonly #storage: DeviceStorage;
  readonly #prefix: string;
  readonly #now: () => number;
  readonly #identity: KeyPair;
  #prekeys: PrekeyState;
  #seen: Map<string, number>;
  #writes: Promise<void> = Promise.resolve();
  #writeError: unknown;

  private constructor(opts: Required<DeviceOptions>, prefix: string, identity: KeyPair, prekeys: PrekeyState, seen: Map<string, number>) {
    this.tenant = opts.tenant;
    this.user = opts.user;
    this.device = opts.device;
    this.#storage = opts.storage;
    this.#now = opts.now;
    this.#prefix = prefix;
    this.#identity = identity;
    this.#prekeys = prekeys;
    this.#seen = seen;
  }

  /** Loads this device's keys from storage, or creates them on first use. */
  static async create(opts: DeviceOptions): Promise<Device> {
    for (const k of ['tenant', 'user', 'device'] as const) {
      if (!isName(opts?.[k])) throw new TypeError(`Device.create: ${k} must be a string of 1-128 characters, e.g. { ${k}: 'a1' }`);
    }
    const full: Required<DeviceOptions> = { ...opts, storage: opts.storage ?? new MemoryStorage(), now: opts.now ?? Date.now };
    const prefix = [opts.tenant, opts.user, opts.device].map(encodeURIComponent).join('/') + '/';
    const st = full.storage;
    const writes: Promise<void>[] = [];
    let identity: KeyPair;
    const storedId = fromB64(await st.get(prefix + 'identity'), 64);
    if (storedId) {
      identity = { secretKey: storedId, publicKey: storedId.slice(32) };
    } else {
      identity = ed25519KeyPair();
      writes.push(Promise.resolve(st.set(prefix + 'identity', toB64(identity.secretKey))));
    }
    const rawPrekeys = await st.get(prefix + 'prekeys');
    let prekeys: PrekeyState;
    if (rawPrekeys) {
      prekeys = JSON.parse(rawPrekeys) as PrekeyState;
    } else {
      prekeys = { spk: { id: 1, sk: toB64(x25519KeyPair().secretKey) }, nextSpk: 2, nextOpk: 1, opks: {} };
      writes.push(Promise.resolve(st.set(prefix + 'prekeys', JSON.stringify(prekeys))));
    }
    const seen = new Map<string, number>(JSON.parse((await st.get(prefix + 'seen')) ?? '[]') as [string, number][]);
    await Promise.all(writes);
    return new Device(full, prefix, identity, prekeys, seen);
  }

  /** base64url Ed25519 public identity key of this device. */
  get identityKey(): string {
    return toB64(this.#identity.publicKey);
  }

  /** The JSON to PUT to /v1/e2e/devices/{device}, with `n` fresh one-time prekeys (0-100). Their
   * secrets are kept (and written to storage in the background: `await flush()` to wait). */
  bundle(n = 10): Bundle {
    if (!Number.isInteger(n) || n < 0 || n > MAX_ONE_TIME_PREKEYS) {
      throw new RangeError(`bundle(n): n must be an integer from 0 to ${MAX_ONE_TIME_PREKEYS}`);
    }
    const p = this.#prekeys;
    const one_time_prekeys = [];
    for (let i = 0; i < n; i++) {
      const kp = x25519KeyPair();
      const id = p.nextOpk++;
      p.opks[id] = toB64(kp.secretKey);
      one_time_prekeys.push({ id, key: toB64(kp.publicKey) });
    }
    if (n > 0) this.#savePrekeys();
    const spkPub = x25519Base(fromB64(p.spk.sk, 32)!);
    return {
      identity_key: this.identityKey,
      signed_prekey: {
        id: p.spk.id,
        key: toB64(spkPub),
        sig: signPrekey(this.#identity.secretKey, this.tenant, this.user, this.device, p.spk.id, spkPub),
      },
      one_time_prekeys,
    };
  }

  /** Starts a new signed prekey; the previous one still answers hellos already under way. Publish a
   * new bundle afterwards. */
  rotateSignedPrekey(): void {
    const p = this.#prekeys;
    p.prev = p.spk;
    p.spk = { id: p.nextSpk++, sk: toB64(x25519KeyPair().secretKey) };
    this.#savePrekeys();
  }

  /** One-time prekeys whose secrets this device still holds (published and not yet used). */
  get oneTimePrekeysLeft(): number {
    return Object.keys(this.#prekeys.opks).length;
  }

  /** Calls the device of `bundle` (one element of GET /v1/e2e/users/{user}/bundles). */
  async call(bundle: unknown, opts: CallOptions): Promise<{ session: CallerSession; hello: Hello }> {
    if (!isName(opts?.callId)) throw new TypeError('call(bundle, { callId }): callId must be a string of 1-128 characters');
    const b = checkPeerBundle(bundle, this.tenant, opts.user);
    await this.#checkContinuity(b.user, b.device, toB64(b.identityKey), opts.acceptIdentityChange);
    const ephemeral = x25519KeyPair();
    const fields: HelloFields = {
      tenant: this.tenant,
      callId: opts.callId,
      from: { user: this.user, device: this.device, identityKey: this.#identity.publicKey },
      to: { user: b.user, device: b.device, identityKey: b.identityKey },
      spkId: b.signedPrekey.id,
      commit: commitment(this.tenant, opts.callId, this.#identity.publicKey, ephemeral.publicKey),
      ts: this.#now(),
    };
    if (b.oneTimePrekey) fields.opkId = b.oneTimePrekey.id;
    const tbs = helloMessage(fields);
    const sig = sign(this.#identity.secretKey, tbs);
    const hello: Hello = {
      v: 1,
      type: 'hello',
      tenant: this.tenant,
      call_id: opts.callId,
      ts: fields.ts,
      from: { user: this.user, device: this.device, identity_key: this.identityKey },
      to: {
        user: b.user,
        device: b.device,
        identity_key: toB64(b.identityKey),
        signed_prekey_id: b.signedPrekey.id,
        ...(b.oneTimePrekey ? { one_time_prekey_id: b.oneTimePrekey.id } : {}),
      },
      commit: toB64(fields.commit),
      sig: toB64(sig),
    };
    const session = new CallerSession(opts.callId, {
      hello: fields,
      helloHash: helloHash(tbs, sig),
      identitySecretX: edSecretToX(this.#identity.secretKey),
      ephemeral,
      bundle: b,
      remember: (peer) => this.#remember(peer),
    });
    return { session, hello };
  }

  /** Answers a hello. Throws ERR_BAD_SIGNATURE, ERR_REPLAY, ERR_HELLO_EXPIRED, ERR_WRONG_PEER,
   * ERR_UNKNOWN_PREKEY, identity_changed (typed E2EError). */
  async answer(hello: unknown, opts: IdentityOptions = {}): Promise<{ session: CalleeSession; reply: Reply }> {
    const { fields: h, sig } = parseHello(hello);
    if (h.tenant !== this.tenant || h.to.user !== this.user || h.to.device !== this.device || !equal(h.to.identityKey, this.#identity.publicKey)) {
      throw new E2EError('ERR_WRONG_PEER', 'this hello is addressed to another device or identity key');
    }
    const tbs = helloMessage(h);
    if (!verify(h.from.identityKey, tbs, sig)) throw new E2EError('ERR_BAD_SIGNATURE', 'the hello is not signed by the caller identity key');
    const now = this.#now();
    if (Math.abs(now - h.ts) > HELLO_WINDOW_MS) throw new E2EError('ERR_HELLO_EXPIRED', 'the hello is more than 10 minutes from this clock');
    const hh = helloHash(tbs, sig);
    await this.#checkContinuity(h.from.user, h.from.device, toB64(h.from.identityKey), opts.acceptIdentityChange);
    // From here to the reply nothing awaits, so two concurrent answers cannot both pass the checks.
    this.#pruneSeen(now);
    const callKey = `call:${JSON.stringify([h.from.user, h.from.device, h.callId])}`;
    const hashKey = `hello:${toB64(hh)}`;
    if (this.#seen.has(callKey) || this.#seen.has(hashKey)) throw new E2EError('ERR_REPLAY', 'this hello (or this call id) was answered before');
    const p = this.#prekeys;
    const spkStored = p.spk.id === h.spkId ? p.spk : p.prev?.id === h.spkId ? p.prev : undefined;
    if (!spkStored) throw new E2EError('ERR_UNKNOWN_PREKEY', `signed prekey ${h.spkId} is not held by this device`);
    let opk: KeyPair | undefined;
    if (h.opkId !== undefined) {
      const sk = p.opks[h.opkId];
      if (!sk) throw new E2EError('ERR_UNKNOWN_PREKEY', `one-time prekey ${h.opkId} was used already or never published`);
      const secretKey = fromB64(sk, 32)!;
      opk = { secretKey, publicKey: x25519Base(secretKey) };
      delete p.opks[h.opkId];
      this.#savePrekeys();
    }
    const until = now + 2 * HELLO_WINDOW_MS;
    this.#seen.set(callKey, until);
    this.#seen.set(hashKey, until);
    this.#write('seen', JSON.stringify([...this.#seen]));
    const spkSecret = fromB64(spkStored.sk, 32)!;
    const ephemeral = x25519KeyPair();
    const reply: Reply = {
      v: 1,
      type: 'reply',
      call_id: h.callId,
      hello: toB64(hh),
      ek: toB64(ephemeral.publicKey),
      sig: toB64(sign(this.#identity.secretKey, replyMessage(hh, this.#identity.publicKey, ephemeral.publicKey))),
    };
    const session = new CalleeSession(h.callId, {
      hello: h,
      helloHash: hh,
      identitySecretX: edSecretToX(this.#identity.secretKey),
      ephemeral,
      spk: { secretKey: spkSecret, publicKey: x25519Base(spkSecret) },
      ...(opk ? { opk } : {}),
      remember: (peer) => this.#remember(peer),
    });
    await this.flush();
    return { session, reply };
  }

  /** The identity key remembered for a peer device, if any. */
  async knownPeer(user: string, device: string): Promise<string | undefined> {
    return (await this.#storage.get(this.#peerKey(user, device))) ?? undefined;
  }

  /** Pins a peer's identity key (e.g. after checking it against the key log, or scanning a QR code). */
  async trustPeer(user: string, device: string, identityKey: string): Promise<void> {
    await this.#storage.set(this.#peerKey(user, device), identityKey);
  }

  async forgetPeer(user: string, device: string): Promise<void> {
    await this.#storage.delete(this.#peerKey(user, device));
  }

  /** Waits for background storage writes; rethrows the first write error. */
  async flush(): Promise<void> {
    await this.#writes;
    if (this.#writeError !== undefined) {
      const e = this.#writeError;
      this.#writeError = undefined;
      throw e;
    }
  }

  async #checkContinuity(user: string, device: string, key: string, accept?: boolean): Promise<void> {
    const known = await this.knownPeer(user, device);
    if (known !== undefined && known !== key && !accept) throw new IdentityChangedError(user, device, known, key);
  }

  async #remember(peer: Peer): Promise<void> {
    await this.trustPeer(peer.user, peer.device, peer.identityKey);
  }

  #peerKey(user: string, device: string): string {
    return `${this.#prefix}peer/${encodeURIComponent(user)}/${encodeURIComponent(device)}`;
  }

  #pruneSeen(now: number): void {
    for (const [k, until] of this.#seen) if (until < now) this.#seen.delete(k);
  }

  #savePrekeys(): void {
    this.#write('prekeys', JSON.stringify(this.#prekeys));
  }

  /** Writes in order, in the background; bundle() is synchronous, storage may not be. */
  #write(key: string, value: string): void {
    this.#writes = this.#writes
      .then(() => this.#storage.set(this.#prefix + key, value))
      .catch((e: unknown) => {
        this.#writeError ??= e;
      });
  }
}
