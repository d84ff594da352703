// PROTOCOL.md §7: per-frame XChaCha20-Poly1305 with a counter in the header, one key per direction.
import { E2EError } from './errors.js';
import { aeadOpen, aeadSeal, concat, wipe } from './primitives.js';

const VERSION = 0x01;
const HEADER = 9;
const TAG = 16;
/** How far back `open` can still tell a replay from a late frame. */
const WINDOW = 64;

function header(counter: number): Uint8Array {
  const h = new Uint8Array(HEADER);
  h[0] = VERSION;
  new DataView(h.buffer).setBigUint64(1, BigInt(counter));
  return h;
}

function nonce(counter: number): Uint8Array {
  const n = new Uint8Array(24);
  new DataView(n.buffer).setBigUint64(16, BigInt(counter));
  return n;
}

export class FrameCipher {
  #sendKey: Uint8Array;
  #recvKey: Uint8Array;
  #sent = 0;
  #highest = -1;
  #recent = new Set<number>();
  #closed = false;

  constructor(sendKey: Uint8Array, recvKey: Uint8Array) {
    this.#sendKey = sendKey;
    this.#recvKey = recvKey;
  }

  seal(plaintext: Uint8Array): Uint8Array {
    if (this.#closed) throw new E2EError('ERR_STATE', 'the session is closed');
    if (!(plaintext instanceof Uint8Array)) throw new TypeError('seal() takes a Uint8Array');
    if (this.#sent >= Number.MAX_SAFE_INTEGER) throw new E2EError('ERR_STATE', 'frame counter exhausted: start a new call');
    const counter = this.#sent++;
    const h = header(counter);
    return concat(h, aeadSeal(this.#sendKey, nonce(counter), h, plaintext));
  }

  open(frame: Uint8Array): Uint8Array {
    if (this.#closed) throw new E2EError('ERR_STATE', 'the session is closed');
    if (!(frame instanceof Uint8Array) || frame.length < HEADER + TAG || frame[0] !== VERSION) {
      throw new E2EError('ERR_BAD_MESSAGE', 'not a v1 frame');
    }
    const big = new DataView(frame.buffer, frame.byteOffset, HEADER).getBigUint64(1);
    if (big > BigInt(Number.MAX_SAFE_INTEGER)) throw new E2EError('ERR_BAD_MESSAGE', 'frame counter out of range');
    const counter = Number(big);
    if (counter <= this.#highest) {
      if (this.#recent.has(counter)) throw new E2EError('ERR_REPLAY', `frame ${counter} was already received`);
      throw new E2EError('ERR_REORDERED', `frame ${counter} arrived after frame ${this.#highest}`);
    }
    const h = frame.subarray(0, HEADER);
    const plaintext = aeadOpen(this.#recvKey, nonce(counter), h, frame.subarray(HEADER));
    if (!plaintext) throw new E2EError('ERR_DECRYPT', 'frame does not authenticate (tampered, or for another call)');
    this.#highest = counter;
    this.#recent.add(counter);
    for (const c of this.#recent) if (c <= counter - WINDOW) this.#recent.delete(c);
    return plaintext;
  }

  close(): void {
    this.#closed = true;
    wipe(this.#sendKey, this.#recvKey);
  }
}
