-- Decide, atomically and by the Redis server's own clock, whether one subscriber gets one digest.
--
-- KEYS: 1 user hash, 2 digest log, 3 customer-service log, 4 mass log, 5 run ledger,
--       6 account log, 7 report hash, 8 pending hash, 9 due zset, 10 clock offset
-- ARGV: 1 openid, 2 run id, 3 digest name, 4 channel (custom|mass), 5 has content (1|0),
--       6 per_day, 7 per_week, 8 account_daily, 9 inactive seconds, 10 window seconds,
--       11 window sends, 12 mass per 31 days (0: not checked here), 13 lease seconds,
--       14 dry run (1|0), 15 number of quiet intervals, then their start/end pairs
-- Returns {decision, time, fresh}: reserved (send now), busy (another attempt holds it), unknown,
-- deferred-quiet (time = when it is due), or a final decision; fresh is 0 when the decision was
-- already recorded by an earlier attempt (nothing changed).
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000 + tonumber(redis.call('GET', KEYS[10]) or '0')
local openid, run, digest, channel = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local dry = ARGV[14] == '1'
local stamp = string.format('%.3f', now)

local prev = redis.call('HGET', KEYS[5], openid)
if prev then
  local state, at = string.match(prev, '^([^|]+)|([^|]+)')
  if state == 'reserved' then
    if now - tonumber(at) < tonumber(ARGV[13]) then return {'busy', at, 0} end
    if not dry then
      -- the attempt that reserved this send died before recording its outcome: never resend
      redis.call('HSET', KEYS[5], openid, 'unknown|' .. at)
      redis.call('HINCRBY', KEYS[7], digest .. '|unknown', 1)
    end
    return {'unknown', at, 1}
  elseif state ~= 'deferred-quiet' and state ~= 'retry' then
    return {state, at, 0}
  end
end

local function unpend()
  redis.call('HDEL', KEYS[8], run)
  if redis.call('HLEN', KEYS[8]) == 0 then redis.call('ZREM', KEYS[9], openid) end
end

local function decide(reason)
  if not dry then
    redis.call('HSET', KEYS[5], openid, reason .. '|' .. stamp)
    redis.call('HINCRBY', KEYS[7], digest .. '|' .. reason, 1)
    unpend()
  end
  return {reason, stamp, 1}
end

local u = redis.call('HMGET', KEYS[1], 'subscribed', 'digests', 'last_seen', 'last_msg',
                     'per_day', 'per_week')
if u[1] ~= '1' then return decide('skipped-unsubscribed') end
if u[2] == 'off' then return decide('skipped-optout') end
if now - tonumber(u[3] or '0') > tonumber(ARGV[9]) then return decide('skipped-inactive') end
if ARGV[5] ~= '1' then return decide('skipped-irrelevant') end

local quiet = tonumber(ARGV[15])
for i = 0, quiet - 1 do
  local s, e = tonumber(ARGV[16 + 2 * i]), tonumber(ARGV[17 + 2 * i])
  if now >= s and now < e then
    if not dry then
      if not prev then redis.call('HINCRBY', KEYS[7], digest .. '|deferred-quiet', 1) end
      redis.call('HSET', KEYS[5], openid, 'deferred-quiet|' .. stamp .. '|' .. e)
      redis.call('HSET', KEYS[8], run, e)
      local due = redis.call('ZSCORE', KEYS[9], openid)
      if not due or tonumber(due) > e then redis.call('ZADD', KEYS[9], e, openid) end
    end
    return {'deferred-quiet', tostring(e), 1}
  end
end

if channel == 'custom' then
  local opened = tonumber(u[4] or '0')
  if opened == 0 or now - opened > tonumber(ARGV[10]) then return decide('skipped-window') end
  -- never use the last send of the window: the subscriber's next question may need it
  local used = redis.call('ZCOUNT', KEYS[3], opened, '+inf')
  if used + 2 > tonumber(ARGV[11]) then return decide('skipped-window') end
elseif tonumber(ARGV[12]) > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now - 31 * 86400)
  if redis.call('ZCARD', KEYS[4]) >= tonumber(ARGV[12]) then return decide('skipped-quota') end
end

local per_day = math.min(tonumber(u[5] or ARGV[6]), tonumber(ARGV[6]))
local per_week = math.min(tonumber(u[6] or ARGV[7]), tonumber(ARGV[7]))
if not dry then redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - 7 * 86400) end
if redis.call('ZCOUNT', KEYS[2], now - 86400, '+inf') >= per_day then return decide('skipped-cap') end
if redis.call('ZCOUNT', KEYS[2], now - 7 * 86400, '+inf') >= per_week then
  return decide('skipped-cap')
end
if not dry then redis.call('ZREMRANGEBYSCORE', KEYS[6], '-inf', now - 86400) end
if redis.call('ZCOUNT', KEYS[6], now - 86400, '+inf') >= tonumber(ARGV[8]) then
  return decide('skipped-account-cap')
end
if dry then return {'would-send', stamp, 1} end

redis.call('ZADD', KEYS[2], now, run)
redis.call('EXPIRE', KEYS[2], 8 * 86400)
redis.call('ZADD', KEYS[6], now, run .. '|' .. openid)
if channel == 'custom' then
  redis.call('ZADD', KEYS[3], now, 'digest|' .. run)
  redis.call('EXPIRE', KEYS[3], 2 * 86400)
else
  redis.call('ZADD', KEYS[4], now, run)
  redis.call('EXPIRE', KEYS[4], 31 * 86400)
end
redis.call('HSET', KEYS[5], openid, 'reserved|' .. stamp)
unpend()
return {'reserved', stamp, 1}
