// PROTOCOL.md §5: from the DH outputs and the transcript to the frame keys, the reveal MAC key and
// the SAS. A pure function, so both roles (and test vectors) run exactly the same code.
import { encode, hash, kdf, mac, wipe } from './primitives.js';

export interface Transcript {
  tenant: string;
  callId: string;
  caller: { user: string; device: string; identityKey: Uint8Array };
  callee: { user: string; device: string; identityKey: Uint8Array };
  spkId: number;
  spk: Uint8Array;
  opkId?: number;
  opk?: Uint8Array;
  commit: Uint8Array;
  ts: number;
  ekCaller: Uint8Array;
  ekCallee: Uint8Array;
}

export interface CallKeys {
  /** Transcript hash. */
  th: Uint8Array;
  callerToCallee: Uint8Array;
  calleeToCaller: Uint8Array;
  confirm: Uint8Array;
  sas: string;
}

const EMPTY = new Uint8Array(0);

export function transcriptHash(t: Transcript): Uint8Array {
  return hash(
    encode(
      'ward-e2e/v1/transcript',
      t.tenant, t.callId,
      t.caller.user, t.caller.device, t.caller.identityKey,
      t.callee.user, t.callee.device, t.callee.identityKey,
      t.spkId, t.spk, t.opkId ?? EMPTY, t.opk ?? EMPTY,
      t.commit, t.ts, t.ekCaller, t.ekCallee,
    ),
  );
}

/** dh = [DH1, DH2, DH3, DH4 or undefined, DH5]; the DH outputs are wiped once used. */
export function deriveCallKeys(t: Transcript, dh: [Uint8Array, Uint8Array, Uint8Array, Uint8Array | undefined, Uint8Array]): CallKeys {
  const th = transcriptHash(t);
  const prk = mac(th, encode('ward-e2e/v1/prk', dh[0], dh[1], dh[2], dh[3] ?? EMPTY, dh[4]));
  wipe(...dh);
  const sasKey = kdf(prk, 4);
  const keys: CallKeys = {
    th,
    callerToCallee: kdf(prk, 1),
    calleeToCaller: kdf(prk, 2),
    confirm: kdf(prk, 3),
    sas: sasDigits(sasKey),
  };
  wipe(prk, sasKey);
  return keys;
}

/** Six decimal digits from 40 bits: the bias of the reduction is below 2^-20. */
function sasDigits(key: Uint8Array): string {
  let n = 0;
  for (let i = 0; i < 5; i++) n = n * 256 + key[i]!;
  return String(n % 1_000_000).padStart(6, '0');
}

export function revealMac(confirmKey: Uint8Array, th: Uint8Array): Uint8Array {
  return mac(confirmKey, encode('ward-e2e/v1/reveal', th));
}
