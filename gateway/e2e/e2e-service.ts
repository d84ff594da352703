// The supervisor's end-to-end key directory: one per ward instance (every listener thread forwards
// to it), on the instance's store — memory, or Redis so that every instance shares one directory,
// one key log and one log signing key.

import { Redis, Cluster } from 'ioredis';
import type { StoreSpec } from '../policy/types.js';
import { E2EDirectory, MemoryDirectoryStore, RedisDirectoryStore, RedisRelayBus, type RelayBus } from '../../crypto/directory/index.js';
import type { E2EHandler } from './e2e-edge.js';
import { ThreadRelayBus } from './thread-relay-bus.js';
import type { Logger } from '../log.js';

export class E2EService {
  private readonly directory: E2EDirectory;
  private readonly redis: Redis | Cluster | undefined;

  constructor(spec: StoreSpec, log: Logger) {
    if (spec.kind === 'memory') {
      this.directory = new E2EDirectory({ store: new MemoryDirectoryStore(), onError: (err) => log.error({ err }, 'e2e directory error') });
    } else {
      this.redis = spec.kind === 'redis' ? new Redis(spec.url!, { lazyConnect: false, maxRetriesPerRequest: 1 }) : new Cluster([...spec.nodes!], { redisOptions: { maxRetriesPerRequest: 1 } });
      this.redis.on('error', () => {}); // reported per request as 503
      this.directory = new E2EDirectory({ store: new RedisDirectoryStore(this.redis, { prefix: spec.prefix }), onError: (err) => log.error({ err }, 'e2e directory error') });
    }
  }

  readonly handle: E2EHandler = (method, path, query, body, ctx) => this.directory.handle(method, path, new URLSearchParams(query), body, ctx);

  async close(): Promise<void> {
    this.redis?.disconnect();
  }
}

/** The relay bus of one listener thread: Redis pub/sub across instances, else across this instance's threads. */
export function relayBusFor(spec: StoreSpec): RelayBus {
  if (spec.kind === 'memory') return new ThreadRelayBus();
  const url = spec.kind === 'redis' ? spec.url! : spec.nodes![0]!; // cluster pub/sub reaches every node
  const publisher = new Redis(url, { maxRetriesPerRequest: 1 });
  const subscriber = publisher.duplicate();
  publisher.on('error', () => {});
  subscriber.on('error', () => {});
  return new RedisRelayBus({ publisher, subscriber, prefix: spec.prefix });
}
