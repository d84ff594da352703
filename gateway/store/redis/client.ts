// The ioredis client behind the Redis store, standalone or cluster, configured so that a request
// never waits on Redis: no offline queue (a disconnected client rejects at once), a short command
// timeout, no retries of a command and no resending after a reconnect (a resent admit script would
// charge a bucket twice). The store answers every rejection from its local insurance limits.

import { Cluster, Redis, type ClusterOptions, type RedisOptions } from 'ioredis';
import type { StoreSpec } from '../../policy/types.js';
import { ADMIT_LUA, COUNT_LUA, RENEW_LUA } from './scripts.js';

/** The scripts, as ioredis commands (EVALSHA, falling back to EVAL on NOSCRIPT). Fixed key counts:
 * ioredis' cluster auto-pipelining routes a script call by its first argument, which must be a key. */
export interface WardCommands {
  wardAdmit1(key: string, mode: string, interval: string, burst: string, limit: string, ttl: string, member: string): Promise<number[]>;
  wardAdmit2(bucket: string, pool: string, mode: string, interval: string, burst: string, limit: string, ttl: string, member: string): Promise<number[]>;
  wardRenew(pool: string, ttl: string, ...members: string[]): Promise<number>;
  wardCount(pool: string): Promise<number>;
}

export type WardClient = (Redis | Cluster) & WardCommands;

export type RedisStoreConfigCode = 'ERR_STORE_URL' | 'ERR_STORE_NODES' | 'ERR_STORE_PREFIX' | 'ERR_STORE_SHARE' | 'ERR_STORE_KIND';

/** A store spec the Redis store cannot run with; `code` says which part, the message says the fix. */
export class RedisStoreConfigError extends Error {
  constructor(
    readonly code: RedisStoreConfigCode,
    message: string,
  ) {
    super(message);
    this.name = 'RedisStoreConfigError';
  }
}

function parseRedisUrl(url: string, code: RedisStoreConfigCode): URL {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new RedisStoreConfigError(code, `store: "${url}" is not a URL; write it like "redis://127.0.0.1:6379"`);
  }
  if (u.protocol !== 'redis:' && u.protocol !== 'rediss:') {
    throw new RedisStoreConfigError(code, `store: "${url}" must start with redis:// or rediss://, e.g. "redis://127.0.0.1:6379"`);
  }
  return u;
}

/** Checks what the Redis store needs from a spec; throws RedisStoreConfigError. */
export function validateRedisSpec(spec: StoreSpec): void {
  if (spec.kind === 'redis') {
    if (!spec.url) throw new RedisStoreConfigError('ERR_STORE_URL', 'store: kind redis needs a url, e.g. { kind: redis, url: "redis://127.0.0.1:6379" }');
    parseRedisUrl(spec.url, 'ERR_STORE_URL');
  } else if (spec.kind === 'redis-cluster') {
    if (!spec.nodes || spec.nodes.length === 0) {
      throw new RedisStoreConfigError('ERR_STORE_NODES', 'store: kind redis-cluster needs nodes, e.g. { kind: redis-cluster, nodes: ["redis://127.0.0.1:7000"] }');
    }
    for (const n of spec.nodes) parseRedisUrl(n, 'ERR_STORE_NODES');
  } else {
    throw new RedisStoreConfigError('ERR_STORE_KIND', `store: kind ${spec.kind} is not served by the Redis store (use redis or redis-cluster)`);
  }
  // Keys are prefix + "{tenant}:...": a brace in the prefix would become the hash tag, putting every
  // tenant in one cluster slot (and on one master).
  if (/[{}]/.test(spec.prefix)) {
    throw new RedisStoreConfigError('ERR_STORE_PREFIX', `store: prefix "${spec.prefix}" must not contain { or }, e.g. prefix: "ward:"`);
  }
  if (!(spec.outage_share > 0 && spec.outage_share <= 1)) {
    throw new RedisStoreConfigError('ERR_STORE_SHARE', `store: outage_share ${spec.outage_share} must be in (0, 1], e.g. outage_share: 0.5`);
  }
}

export interface ClientTuning {
  commandTimeoutMs: number;
  connectTimeoutMs: number;
}

/** Creates the client for a validated spec and defines the scripts on it. */
export function createWardClient(spec: StoreSpec, t: ClientTuning): WardClient {
  const perNode: RedisOptions = {
    commandTimeout: t.commandTimeoutMs,
    connectTimeout: t.connectTimeoutMs,
    maxRetriesPerRequest: 0,
    autoResendUnfulfilledCommands: false,
    enableAutoPipelining: true,
  };
  let client: Redis | Cluster;
  if (spec.kind === 'redis-cluster') {
    const urls = spec.nodes!.map((n) => parseRedisUrl(n, 'ERR_STORE_NODES'));
    const first = urls[0]!;
    const opts: ClusterOptions = {
      enableOfflineQueue: false,
      enableAutoPipelining: true,
      // Keep trying to rejoin; meanwhile the store answers locally.
      clusterRetryStrategy: (times) => Math.min(100 * times, 1000),
      // Never park a command waiting for a failover or a cluster that is down: fail, answer locally.
      retryDelayOnFailover: 0,
      retryDelayOnClusterDown: 0,
      retryDelayOnTryAgain: 0,
      slotsRefreshTimeout: 1000,
      redisOptions: {
        ...perNode,
        username: first.username ? decodeURIComponent(first.username) : undefined,
        password: first.password ? decodeURIComponent(first.password) : undefined,
        tls: first.protocol === 'rediss:' ? {} : undefined,
      },
    };
    client = new Cluster(
      urls.map((u) => ({ host: u.hostname, port: Number(u.port || 6379) })),
      opts,
    );
  } else {
    client = new Redis(spec.url!, {
      ...perNode,
      enableOfflineQueue: false,
      retryStrategy: (times) => Math.min(50 * times, 1000),
    });
  }
  client.defineCommand('wardAdmit1', { numberOfKeys: 1, lua: ADMIT_LUA });
  client.defineCommand('wardAdmit2', { numberOfKeys: 2, lua: ADMIT_LUA });
  client.defineCommand('wardRenew', { numberOfKeys: 1, lua: RENEW_LUA });
  client.defineCommand('wardCount', { numberOfKeys: 1, lua: COUNT_LUA, readOnly: true });
  return client as WardClient;
}

/** One PING to every master (a cluster) or the server: true when all answer in time. */
export async function pingAll(client: WardClient): Promise<boolean> {
  if (client.status !== 'ready') return false;
  if (client instanceof Cluster) {
    const masters = client.nodes('master');
    if (masters.length === 0) return false;
    await Promise.all(masters.map((n) => n.ping()));
  } else {
    await client.ping();
  }
  return true;
}
