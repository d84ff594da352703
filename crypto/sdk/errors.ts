// Typed errors: callers switch on `code` (a string-literal union, as jose does), never on messages.
// PROTOCOL.md §10 says when each is raised.

export type E2EErrorCode =
  | 'ERR_BAD_KEY'
  | 'ERR_BAD_MESSAGE'
  | 'ERR_BAD_SIGNATURE'
  | 'ERR_WRONG_PEER'
  | 'ERR_UNKNOWN_PREKEY'
  | 'ERR_REPLAY'
  | 'ERR_HELLO_EXPIRED'
  | 'ERR_COMMITMENT'
  | 'ERR_KEY_CONFIRMATION'
  | 'ERR_DECRYPT'
  | 'ERR_REORDERED'
  | 'ERR_STATE'
  | 'identity_changed'
  | 'ERR_LOG_SIGNATURE'
  | 'ERR_LOG_PROOF'
  | 'ERR_LOG_MISMATCH'
  | 'ERR_LOG_INCONSISTENT'
  | 'ERR_LOG_INCOMPLETE';

export class E2EError extends Error {
  readonly code: E2EErrorCode;
  constructor(code: E2EErrorCode, message: string) {
    super(message);
    this.name = 'E2EError';
    this.code = code;
  }
}

/** A peer this device has talked to before presents another identity key (PROTOCOL.md §6). */
export class IdentityChangedError extends E2EError {
  override readonly code = 'identity_changed' as const;
  readonly user: string;
  readonly device: string;
  /** The identity key remembered from earlier calls (base64url). */
  readonly previous: string;
  /** The identity key presented now (base64url). */
  readonly current: string;
  constructor(user: string, device: string, previous: string, current: string) {
    super(
      'identity_changed',
      `the identity key of ${user}/${device} changed since the last call; ` +
        'tell the user, compare the SAS, and pass { acceptIdentityChange: true } to go on',
    );
    this.name = 'IdentityChangedError';
    this.user = user;
    this.device = device;
    this.previous = previous;
    this.current = current;
  }
}
