// RelayBus over Redis pub/sub, so devices connected to different gateway instances reach each other.
// Pub/sub needs a connection of its own for subscribing (ioredis: `redis.duplicate()`).
import type { Redis } from 'ioredis';
import type { RelayBus } from './relay.js';

export interface RedisRelayBusOptions {
  /** Any connection; PUBLISH goes through it. */
  publisher: Redis;
  /** A connection used for nothing else: it enters subscriber mode. */
  subscriber: Redis;
  /** Channel prefix, as the gateway's store prefix (default "ward:"). */
  prefix?: string;
}

export class RedisRelayBus implements RelayBus {
  readonly #pub: Redis;
  readonly #sub: Redis;
  readonly #prefix: string;
  readonly #handlers = new Map<string, (message: string) => void>();
  readonly #onMessage = (ch: string, message: string) => this.#handlers.get(ch)?.(message);

  constructor(opts: RedisRelayBusOptions) {
    if (!opts?.publisher || !opts.subscriber || opts.publisher === opts.subscriber) {
      throw new TypeError('RedisRelayBus needs { publisher, subscriber }, two connections (subscriber: redis.duplicate())');
    }
    this.#pub = opts.publisher;
    this.#sub = opts.subscriber;
    this.#prefix = opts.prefix ?? 'ward:';
    this.#sub.on('message', this.#onMessage);
  }

  publish(channel: string, message: string): Promise<number> {
    return this.#pub.publish(this.#prefix + channel, message);
  }

  async subscribe(channel: string, onMessage: (message: string) => void): Promise<void> {
    this.#handlers.set(this.#prefix + channel, onMessage);
    await this.#sub.subscribe(this.#prefix + channel);
  }

  async unsubscribe(channel: string): Promise<void> {
    this.#handlers.delete(this.#prefix + channel);
    await this.#sub.unsubscribe(this.#prefix + channel);
  }

  /** Stops listening; the connections stay the caller's to quit. */
  async close(): Promise<void> {
    this.#sub.off('message', this.#onMessage);
    const channels = [...this.#handlers.keys()];
    this.#handlers.clear();
    if (channels.length > 0) await this.#sub.unsubscribe(...channels).catch(() => {});
  }
}
