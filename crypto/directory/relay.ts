// The /v1/e2e/relay hub: devices of one tenant pass each other JSON messages (hello, reply, reveal,
// sealed frames). ward reads only the envelope ({to, to_user}); the payload goes on unchanged. A
// device is addressed by its id within the tenant, optionally narrowed to one user with `to_user`.
// Across instances (or worker threads), messages travel over a RelayBus (redis-relay-bus.ts).
import { isName } from '../sdk/bundle.js';
import type { E2EAnswer, E2EContext } from './directory.js';

export interface RelayBus {
  /** Hands `message` to the subscribers of `channel` on every instance; resolves to how many
   * subscriptions (instances) received it. */
  publish(channel: string, message: string): Promise<number>;
  subscribe(channel: string, onMessage: (message: string) => void): Promise<void>;
  unsubscribe(channel: string): Promise<void>;
  close(): Promise<void>;
}

export interface E2ERelayOptions {
  bus?: RelayBus;
  /** Largest client message, in characters. Default 65536. */
  maxMessageBytes?: number;
}

export interface RelayConnection {
  onMessage(text: string): void;
  detach(): void;
}

interface Conn {
  user: string;
  device: string;
  send: (text: string) => boolean;
}

interface BusEnvelope {
  origin: string;
  to_user?: string;
  text: string;
}

const DEFAULT_MAX = 64 * 1024;

export class E2ERelay {
  readonly #local = new Map<string, Set<Conn>>();
  readonly #bus: RelayBus | undefined;
  readonly #max: number;
  readonly #origin = Math.random().toString(36).slice(2) + Date.now().toString(36);
  readonly #pending = new Set<Promise<void>>();

  constructor(opts: E2ERelayOptions = {}) {
    this.#bus = opts.bus;
    this.#max = opts.maxMessageBytes ?? DEFAULT_MAX;
  }

  /** The answer to refuse a relay upgrade with, or null when `device` is acceptable. */
  static refuse(query: URLSearchParams): E2EAnswer | null {
    return isName(query.get('device')) ? null : { status: 400, body: { error: 'bad_request', detail: 'device is required' } };
  }

  /** Registers a connected device; `send` writes one text message to its socket. */
  attach(ctx: E2EContext & { device: string }, send: (text: string) => boolean): RelayConnection {
    if (!isName(ctx.device)) throw new TypeError('E2ERelay.attach: device must be 1-128 characters (check with E2ERelay.refuse first)');
    const conn: Conn = { user: ctx.user, device: ctx.device, send };
    const key = slot(ctx.tenant, ctx.device);
    let set = this.#local.get(key);
    if (!set) {
      this.#local.set(key, (set = new Set()));
      if (this.#bus) this.#track(this.#bus.subscribe(channel(ctx.tenant, ctx.device), (m) => this.#fromBus(key, m)));
    }
    set.add(conn);
    let attached = true;
    return {
      onMessage: (text) => {
        if (attached) this.#onMessage(ctx.tenant, conn, text);
      },
      detach: () => {
        if (!attached) return;
        attached = false;
        const s = this.#local.get(key);
        s?.delete(conn);
        if (s && s.size === 0) {
          this.#local.delete(key);
          if (this.#bus) this.#track(this.#bus.unsubscribe(channel(ctx.tenant, ctx.device)));
        }
      },
    };
  }

  /** Resolves once every bus subscription started so far is in place (a device attached on this
   * instance is reachable from the others from then on). */
  async settled(): Promise<void> {
    while (this.#pending.size > 0) await Promise.all([...this.#pending]);
  }

  #track(p: Promise<void>): void {
    const t = p.catch(() => {}).finally(() => this.#pending.delete(t));
    this.#pending.add(t);
  }

  /** Connected devices (all tenants, this instance). */
  get connections(): number {
    let n = 0;
    for (const s of this.#local.values()) n += s.size;
    return n;
  }

  async close(): Promise<void> {
    this.#local.clear();
    await this.#bus?.close();
  }

  #onMessage(tenant: string, from: Conn, text: string): void {
    if (text.length > this.#max) return void from.send(JSON.stringify({ error: 'too_large', max: this.#max }));
    let msg: unknown;
    try {
      msg = JSON.parse(text);
    } catch {
      msg = undefined;
    }
    const m = msg as { to?: unknown; to_user?: unknown; payload?: unknown } | undefined;
    if (typeof m !== 'object' || m === null || Array.isArray(m) || !isName(m.to) || m.payload === undefined || (m.to_user !== undefined && !isName(m.to_user))) {
      return void from.send(JSON.stringify({ error: 'bad_message', detail: 'send {"to": DEVICE, "payload": ...}' }));
    }
    let out: string;
    try {
      out = JSON.stringify({ from: from.device, from_user: from.user, payload: m.payload });
    } catch {
      // JSON.parse takes any depth; JSON.stringify recurses and overflows the stack on a payload
      // nested some thousands deep (a 60 KB message of brackets): refuse it, never throw.
      return void from.send(JSON.stringify({ error: 'bad_message', detail: 'payload nested too deeply' }));
    }
    const toUser = m.to_user as string | undefined;
    const key = slot(tenant, m.to);
    const local = this.#deliver(key, toUser, out);
    if (!this.#bus) {
      if (local === 0) from.send(JSON.stringify({ error: 'not_connected', to: m.to }));
      return;
    }
    const env: BusEnvelope = { origin: this.#origin, text: out, ...(toUser ? { to_user: toUser } : {}) };
    const subscribedHere = this.#local.has(key) ? 1 : 0;
    const to = m.to;
    this.#bus.publish(channel(tenant, to), JSON.stringify(env)).then(
      (n) => {
        if (local === 0 && n - subscribedHere <= 0) from.send(JSON.stringify({ error: 'not_connected', to }));
      },
      () => {
        if (local === 0) from.send(JSON.stringify({ error: 'not_connected', to }));
      },
    );
  }

  #fromBus(key: string, message: string): void {
    let env: BusEnvelope;
    try {
      env = JSON.parse(message) as BusEnvelope;
    } catch {
      return;
    }
    if (env.origin === this.#origin || typeof env.text !== 'string') return;
    this.#deliver(key, env.to_user, env.text);
  }

  #deliver(key: string, toUser: string | undefined, text: string): number {
    let n = 0;
    for (const c of this.#local.get(key) ?? []) {
      if (toUser !== undefined && c.user !== toUser) continue;
      try {
        c.send(text);
        n++;
      } catch {
        // a socket closing under us: the adapter detaches it
      }
    }
    return n;
  }
}

/** Tenant and device are URI-encoded so no two (tenant, device) pairs share a key or channel. */
function slot(tenant: string, device: string): string {
  return `${encodeURIComponent(tenant)}:${encodeURIComponent(device)}`;
}

function channel(tenant: string, device: string): string {
  return `e2e:relay:${slot(tenant, device)}`;
}
