// The Lua the Redis store runs. Every decision is one script, so it is atomic and one round trip.
//
// Clocks: the scripts read Redis `TIME`, never a client clock, so instances with skewed clocks
// still share one bucket. Calling TIME and then writing is allowed since Redis 5 (scripts replicate
// their effects, not their source; Redis 7 knows no other mode). In a cluster one tenant's keys share
// a slot ({tenant} hash tag), so one master's clock decides for that tenant.
//
// Why GCRA and not rate-limiter-flexible: its Redis limiters count per fixed window, so a client can
// spend a whole window's points at the end of one window and again at the start of the next, twice
// the limit in a moment; the contract promises the token-bucket bound `burst + rate*t/per_s` over
// ANY interval t. GCRA (the generic cell rate algorithm) is that token bucket stored as one number,
// the theoretical arrival time (TAT): a request at `now` conforms when `max(TAT, now) + T - burst*T
// <= now`, with T = per_s/rate the emission interval; admitting moves TAT forward by T.

/** Numbers crossing into redis.call are formatted with 14 significant digits; ms since the epoch
 * need 13, so ms values keep 0.1 ms. The TAT is formatted explicitly to keep its fraction. */
const NOW = `local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000`;

/**
 * Admit: a token of a bucket and/or a lease of a pool, both or neither.
 * KEYS: [bucket] [pool] (KEYS[1] is the bucket when ARGV[1] is 'b' or 'bp', else the pool).
 * ARGV: mode ('b' | 'p' | 'bp'), emission interval ms, burst, pool limit, lease ttl ms, lease member.
 * Returns {refused (0 none, 1 bucket, 2 pool), retryAfterMs, remaining, resetMs}. A refusal changes nothing.
 */
export const ADMIT_LUA = `${NOW}
local mode = ARGV[1]
local hasBucket = mode ~= 'p'
local hasPool = mode ~= 'b'
local refused, retry, remaining, reset = 0, 0, 0, 0
local tat, newTat
if hasBucket then
  local interval = tonumber(ARGV[2])
  local burst = tonumber(ARGV[3])
  tat = tonumber(redis.call('GET', KEYS[1]) or '0')
  if tat < now then tat = now end
  -- A bucket whose rate was raised by a policy edit may hold debt measured at the old rate:
  -- cap it at "empty under the new settings" and keep that, so the edit applies at once.
  if tat > now + burst * interval then
    tat = now + burst * interval
    redis.call('SET', KEYS[1], string.format('%.4f', tat), 'PX', math.ceil(tat - now))
  end
  newTat = tat + interval
  local allowAt = newTat - burst * interval
  if allowAt > now then
    refused = 1
    retry = allowAt - now
    reset = tat - now
  else
    remaining = math.floor((now - allowAt) / interval + 1e-9)
    reset = newTat - now
  end
end
local poolKey = KEYS[1]
if hasBucket then poolKey = KEYS[2] end
if refused == 0 and hasPool then
  redis.call('ZREMRANGEBYSCORE', poolKey, '-inf', now)
  if redis.call('ZCARD', poolKey) >= tonumber(ARGV[4]) then
    refused = 2
    -- The bucket keeps its token: report it as it stays.
    if hasBucket then
      remaining = remaining + 1
      reset = tat - now
    end
  end
end
if refused == 0 then
  if hasBucket then
    -- A TAT in the past equals a full bucket, so the key may vanish then.
    redis.call('SET', KEYS[1], string.format('%.4f', newTat), 'PX', math.ceil(newTat - now))
  end
  if hasPool then
    local ttl = tonumber(ARGV[5])
    redis.call('ZADD', poolKey, now + ttl, ARGV[6])
    if redis.call('PTTL', poolKey) < ttl then redis.call('PEXPIRE', poolKey, ttl) end
  end
end
return {refused, math.ceil(retry), remaining, math.ceil(reset)}`;

/**
 * Renew: pushes the expiry of the holder's live leases of one pool to now + ttl. An upsert, not
 * ZADD XX: a lease that vanished (Redis restarted empty, or the holder stalled past the TTL) is
 * still in flight, so it is counted again; the pool then refuses until it is really under its limit.
 * KEYS: [pool]. ARGV: ttl ms, member...
 */
export const RENEW_LUA = `${NOW}
local ttl = tonumber(ARGV[1])
local exp = now + ttl
for i = 2, #ARGV do redis.call('ZADD', KEYS[1], exp, ARGV[i]) end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('PTTL', KEYS[1]) < ttl then redis.call('PEXPIRE', KEYS[1], ttl) end
return #ARGV - 1`;

/** Count: unexpired leases of one pool. KEYS: [pool]. */
export const COUNT_LUA = `${NOW}
return redis.call('ZCOUNT', KEYS[1], '(' .. string.format('%.3f', now), '+inf')`;

/** Members per renew call: each is one script argument, so huge holders are split. */
export const RENEW_BATCH = 500;
