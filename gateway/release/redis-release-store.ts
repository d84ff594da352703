// Release state shared by every instance on one Redis: a hash per release (`version`, `state`
// as JSON), written by a compare-and-set script so two instances cannot both take a step.

import type { Cluster, Redis } from 'ioredis';
import type { ReleaseState, ReleaseStateStore } from './release-state.js';

const CAS_LUA = `
local v = redis.call('HGET', KEYS[1], 'version')
if (v or '0') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'version', ARGV[2], 'state', ARGV[3])
return 1
`;

export class RedisReleaseStateStore implements ReleaseStateStore {
  /**
   * `client`: an ioredis client (standalone or cluster); closed by close() only when `owned`.
   * Keys: `${prefix}release:{NAME}`.
   */
  constructor(
    private readonly client: Redis | Cluster,
    private readonly prefix = 'ward:',
    private readonly owned = false,
  ) {}

  private key(name: string): string {
    return `${this.prefix}release:{${name}}`;
  }

  async load(name: string): Promise<ReleaseState | undefined> {
    const h = await this.client.hgetall(this.key(name));
    if (h.state === undefined) return undefined;
    const st = JSON.parse(h.state) as ReleaseState;
    return { ...st, version: Number(h.version) };
  }

  async save(name: string, next: ReleaseState, expected: number): Promise<boolean> {
    const r = await this.client.eval(CAS_LUA, 1, this.key(name), String(expected), String(next.version), JSON.stringify(next));
    return r === 1;
  }

  async close(): Promise<void> {
    if (this.owned) await this.client.quit().catch(() => undefined);
  }
}
