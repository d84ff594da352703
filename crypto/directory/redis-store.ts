// The directory on Redis, for many gateway instances. A publish and a take are each one Lua script:
// Redis runs a script alone, so a one-time prekey is popped by exactly one fetch and the log append,
// the device record and its prekeys change together. All of a tenant's keys carry the `{tenant}`
// hash tag, so on Redis Cluster they share one slot (the take script derives prekey list names from
// the device hash: same tag, same slot).
import type { Cluster, Redis } from 'ioredis';
import type { Bundle } from '../sdk/bundle.js';
import { fromB64, toB64 } from '../sdk/primitives.js';
import {
  DEFAULT_LIMITS, type DirectoryLimits, type DirectoryStore, type FetchedBundle, type PublishOutcome, type StoredLeaf,
} from './store.js';

const PUBLISH = `
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 and redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[5]) then
  return {-1}
end
local cur = redis.call('HGET', KEYS[2], ARGV[1])
local index
local appended = 0
if cur then
  local sp = string.find(cur, ' ', 1, true)
  if string.sub(cur, 1, sp - 1) == ARGV[3] then index = tonumber(string.sub(cur, sp + 1)) end
end
if not index then
  index = redis.call('RPUSH', KEYS[4], ARGV[4]) - 1
  redis.call('HSET', KEYS[2], ARGV[1], ARGV[3] .. ' ' .. index)
  redis.call('DEL', KEYS[3])
  appended = 1
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
if #ARGV >= 7 then redis.call('RPUSH', KEYS[3], unpack(ARGV, 7)) end
local n = redis.call('LLEN', KEYS[3])
local max = tonumber(ARGV[6])
if n > max then
  redis.call('LTRIM', KEYS[3], n - max, -1)
  n = max
end
return {index, redis.call('LLEN', KEYS[4]), appended, n}
`;

const TAKE = `
local devs = redis.call('HGETALL', KEYS[1])
local out = {}
for i = 1, #devs, 2 do
  out[#out + 1] = devs[i + 1]
  out[#out + 1] = redis.call('LPOP', ARGV[1] .. devs[i]) or ''
end
return out
`;

type Scripted = {
  wardE2EPublish(...args: (string | number)[]): Promise<number[]>;
  wardE2ETake(...args: string[]): Promise<string[]>;
};

export interface RedisDirectoryOptions extends DirectoryLimits {
  /** Key prefix, as the gateway's store prefix (default "ward:"). */
  prefix?: string;
}

export class RedisDirectoryStore implements DirectoryStore {
  readonly #redis: (Redis | Cluster) & Scripted;
  readonly #prefix: string;
  readonly #limits: Required<DirectoryLimits>;

  /** `redis` stays the caller's: close() does not quit it. */
  constructor(redis: Redis | Cluster, opts: RedisDirectoryOptions = {}) {
    this.#prefix = opts.prefix ?? 'ward:';
    this.#limits = { ...DEFAULT_LIMITS, ...opts };
    redis.defineCommand('wardE2EPublish', { numberOfKeys: 4, lua: PUBLISH });
    redis.defineCommand('wardE2ETake', { numberOfKeys: 1, lua: TAKE });
    this.#redis = redis as (Redis | Cluster) & Scripted;
  }

  #t(tenant: string): string {
    return `${this.#prefix}e2e:{${encodeURIComponent(tenant)}}:`;
  }

  async publish(tenant: string, user: string, device: string, bundle: Bundle, leaf: StoredLeaf): Promise<PublishOutcome> {
    const t = this.#t(tenant);
    const u = encodeURIComponent(user);
    const d = encodeURIComponent(device);
    const record = JSON.stringify({ device, identity_key: bundle.identity_key, signed_prekey: bundle.signed_prekey });
    const r = await this.#redis.wardE2EPublish(
      `${t}devs:${u}`, `${t}cur:${u}`, `${t}opk:${u}:${d}`, `${t}log`,
      d, record, bundle.identity_key, JSON.stringify(leaf), this.#limits.maxDevicesPerUser, this.#limits.maxPrekeysPerDevice,
      ...bundle.one_time_prekeys.map((k) => JSON.stringify(k)),
    );
    if (r[0] === -1) return { error: 'too_many_devices' };
    return { index: r[0]!, size: r[1]!, appended: r[2] === 1, prekeys: r[3]! };
  }

  async takeBundles(tenant: string, user: string): Promise<FetchedBundle[]> {
    const t = this.#t(tenant);
    const u = encodeURIComponent(user);
    const flat = await this.#redis.wardE2ETake(`${t}devs:${u}`, `${t}opk:${u}:`);
    const out: FetchedBundle[] = [];
    for (let i = 0; i < flat.length; i += 2) {
      const rec = JSON.parse(flat[i]!) as FetchedBundle;
      const b: FetchedBundle = { device: rec.device, identity_key: rec.identity_key, signed_prekey: rec.signed_prekey };
      if (flat[i + 1]) b.one_time_prekey = JSON.parse(flat[i + 1]!) as FetchedBundle['one_time_prekey'];
      out.push(b);
    }
    return out.sort((a, b) => (a.device < b.device ? -1 : a.device > b.device ? 1 : 0));
  }

  async logSize(tenant: string): Promise<number> {
    return this.#redis.llen(`${this.#t(tenant)}log`);
  }

  async logLeaves(tenant: string, from: number, to: number): Promise<StoredLeaf[]> {
    if (to <= from) return [];
    const raw = await this.#redis.lrange(`${this.#t(tenant)}log`, from, to - 1);
    return raw.map((s) => JSON.parse(s) as StoredLeaf);
  }

  async logSigningKey(generate: () => Uint8Array): Promise<Uint8Array> {
    const key = `${this.#prefix}e2e:log-signing-key`;
    await this.#redis.set(key, toB64(generate()), 'NX');
    const stored = fromB64(await this.#redis.get(key), 64);
    if (!stored) throw new Error(`${key} in Redis is not a 64-byte Ed25519 secret key in base64url`);
    return stored;
  }

  async close(): Promise<void> {}
}
