// A device's end of the /v1/e2e/relay WebSocket, in-process: every text that crosses the relay is
// recorded in `wire`, so tests can show what ward saw.
import type { E2ERelay, RelayConnection } from '../directory/relay.js';

export class RelayClient {
  readonly #conn: RelayConnection;
  readonly #inbox: any[] = [];
  #wake: (() => void) | undefined;

  constructor(relay: E2ERelay, tenant: string, user: string, device: string, readonly wire: string[] = []) {
    this.#conn = relay.attach({ tenant, user, device }, (text) => {
      wire.push(text);
      this.#inbox.push(JSON.parse(text));
      this.#wake?.();
      return true;
    });
  }

  send(to: string, payload: unknown, toUser?: string): void {
    const text = JSON.stringify({ to, payload, ...(toUser ? { to_user: toUser } : {}) });
    this.wire.push(text);
    this.#conn.onMessage(text);
  }

  raw(text: string): void {
    this.#conn.onMessage(text);
  }

  /** The next message delivered to this device (fails after `ms`). */
  async next(ms = 2000): Promise<any> {
    const deadline = Date.now() + ms;
    while (this.#inbox.length === 0) {
      if (Date.now() > deadline) throw new Error('no message arrived');
      await new Promise<void>((r) => {
        this.#wake = r;
        setTimeout(r, 20);
      });
    }
    return this.#inbox.shift();
  }

  /** Messages waiting, without waiting for more. */
  drain(): any[] {
    return this.#inbox.splice(0);
  }

  detach(): void {
    this.#conn.detach();
  }
}
