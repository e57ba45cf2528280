-- Decide, atomically and by the Redis server's own clock, whether each subscriber of a batch
-- gets one digest; reserve the sends that pass. One call decides a whole chunk.
--
-- KEYS: 1 run ledger, 2 account log (groups), 3 report hash, 4 due zset, 5 clock offset,
--       6 account group counts, 7 digest logs (hash: openid -> log), 8 mass logs, 9 customer-
--       service logs (the same)
-- ARGV: 1 run id, 2 digest name, 3 channel (visit|tag|custom|mass), 4 per_day, 5 per_week,
--       6 account_daily, 7 inactive seconds, 8 window seconds, 9 window sends,
--       10 mass per 31 days (0: not checked here), 11 lease seconds, 12 dry run (1|0),
--       13 seconds the run's ledger is kept,
--       14-15 key prefixes (completed with the openid): user, pending hash;
--       16 reclaim (1|0): a reservation left by a dead attempt is returned as reserved again
--          (a broadcast whose call is idempotent by clientmsgid), not made unknown;
--       17... one per subscriber: "openid <TAB> has content (1|0) <TAB> quiet intervals", the
--       intervals as "start,end,start,end..." in epoch seconds
-- Returns, per subscriber, decision, time, fresh: reserved (send now), busy (another attempt
-- holds it), unknown, deferred-quiet (time = when it is due), or a final decision; fresh is 0
-- when an earlier attempt had already recorded it (nothing changed).
--
-- Channels: custom checks the 48 h window; tag and mass are broadcasts (the mass log, and a
-- service account's 4 a month); a tag broadcast goes out once, so quiet hours skip it
-- (skipped-quiet) instead of deferring it; visit (the reply to a message the subscriber just
-- sent) needs no window and uses neither log.
local now = server_now(KEYS[5])
local stamp = string.format('%.3f', now)
local run, digest, channel = ARGV[1], ARGV[2], ARGV[3]
local per_day_max, per_week_max = tonumber(ARGV[4]), tonumber(ARGV[5])
local account_daily, inactive = tonumber(ARGV[6]), tonumber(ARGV[7])
local window, window_sends = tonumber(ARGV[8]), tonumber(ARGV[9])
local mass_cap, lease, dry = tonumber(ARGV[10]), tonumber(ARGV[11]), ARGV[12] == '1'
local ledger, account, report, due = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local day, week, month = 86400, KEEP.digest, KEEP.mass
local out = {}
local tally = {}
local parsed = {}
local function count(reason)
  tally[reason] = (tally[reason] or 0) + 1
end

-- The account's sliding log holds one entry per group of sends (those one call reserved, named
-- run|time, scored by the latest of them) and a count per group: two writes per call, not two
-- per send into a log as long as the account's audience.
local counts = KEYS[6]
local group = run .. '|' .. stamp
local reserved_here = 0
if not dry then
  local expired = redis.call('ZRANGEBYSCORE', account, '-inf', '(' .. (now - day))
  in_parts('HDEL', counts, expired)
  if #expired > 0 then redis.call('ZREMRANGEBYSCORE', account, '-inf', '(' .. (now - day)) end
end
local account_used = 0
local live = redis.call('ZRANGEBYSCORE', account, now - day, '+inf')
local sizes = in_parts('HMGET', counts, live)
for i = 1, #live do account_used = account_used + tonumber(sizes[i] or '0') end

local batch, ids = {}, {}
local reclaim = ARGV[16] == '1'
for i = 17, #ARGV do
  local openid, has_content, quiet = string.match(ARGV[i], '^([^\t]*)\t([^\t]*)\t?(.*)$')
  batch[#batch + 1] = {openid, has_content, quiet}
  ids[#ids + 1] = openid
end
-- an openid given twice in a batch is decided once
local entries, record, save_ledger, written = open_hash(ledger, ids)
-- the subscribers' sliding logs of digests, mass and customer-service sends (batch.lua)
local logs, set_log, save_logs = open_hash(KEYS[7], ids)
local broadcast = channel == 'mass' or channel == 'tag'
local masses, set_mass, save_masses = open_hash(KEYS[8], broadcast and ids or {})
local cs, set_cs, save_cs = open_hash(KEYS[9], channel == 'custom' and ids or {})

local user_prefix, pending_prefix = ARGV[14], ARGV[15]

local function unpend(openid, prev)
  -- only a send deferred by this run left something pending for it
  if prev then
    local pending = pending_prefix .. openid
    redis.call('HDEL', pending, run)
    if redis.call('HLEN', pending) == 0 then redis.call('ZREM', due, openid) end
  end
end

local function final(openid, prev, reason)
  if not dry then
    record(openid, reason .. '|' .. stamp)
    count(reason)
    unpend(openid, prev)
  end
  return reason, stamp, 1
end

local function one(openid, has_content, quiet)
  if written[openid] then  -- given twice in this batch: already decided above
    local state, at = string.match(entries[openid], '^([^|]+)|([^|]+)')
    return state, at, 0
  end
  local prev = entries[openid]
  if prev then
    local state, at = string.match(prev, '^([^|]+)|([^|]+)')
    if state == 'reserved' then
      if now - tonumber(at) < lease then return 'busy', at, 0 end
      if reclaim then return 'reserved', at, 0 end
      if not dry then
        -- the attempt that reserved this send died before recording its outcome: never resend
        record(openid, 'unknown|' .. at)
        count('unknown')
        -- it may have been delivered at any moment until now: count it from now
        set_log(openid, log_with(logs[openid], run, now, now - week, false))
        redis.call('ZADD', account, 'XX', now, run .. '|' .. at)
        if cs[openid] then set_cs(openid, log_with(cs[openid], run, now, now - KEEP.cs, false)) end
        if masses[openid] then
          set_mass(openid, log_with(masses[openid], run, now, now - month, false))
        end
      end
      return 'unknown', at, 1
    elseif state ~= 'deferred-quiet' and state ~= 'retry' then
      return state, at, 0
    end
  end

  local u = redis.call('HMGET', user_prefix .. openid, 'subscribed', 'digests', 'last_seen',
                       'last_msg', 'per_day', 'per_week')
  if u[1] ~= '1' then return final(openid, prev, 'skipped-unsubscribed') end
  if u[2] == 'off' then return final(openid, prev, 'skipped-optout') end
  if now - tonumber(u[3] or '0') > inactive then return final(openid, prev, 'skipped-inactive') end
  if has_content ~= '1' then return final(openid, prev, 'skipped-irrelevant') end

  local bounds = parsed[quiet]
  if not bounds then  -- most subscribers of a chunk share a zone and quiet hours
    bounds = {}
    for v in string.gmatch(quiet, '[^,]+') do bounds[#bounds + 1] = tonumber(v) end
    parsed[quiet] = bounds
  end
  for i = 1, #bounds - 1, 2 do
    local s, e = bounds[i], bounds[i + 1]
    if now >= s and now < e then
      if channel == 'tag' then return final(openid, prev, 'skipped-quiet') end
      if not dry then
        if not prev then count('deferred-quiet') end
        record(openid, 'deferred-quiet|' .. stamp .. '|' .. e)
        redis.call('HSET', pending_prefix .. openid, run, e)
        local at = redis.call('ZSCORE', due, openid)
        if not at or tonumber(at) > e then redis.call('ZADD', due, e, openid) end
      end
      return 'deferred-quiet', tostring(e), 1
    end
  end

  if channel == 'custom' then
    local opened = tonumber(u[4] or '0')
    if opened == 0 or now - opened > window then return final(openid, prev, 'skipped-window') end
    -- never use the last send of the window: the subscriber's next question may need it
    if log_count(cs[openid], opened) + 2 > window_sends then
      return final(openid, prev, 'skipped-window')
    end
  elseif mass_cap > 0 then
    if log_count(masses[openid], now - month) >= mass_cap then
      return final(openid, prev, 'skipped-quota')
    end
  end

  local per_day = math.min(tonumber(u[5] or per_day_max), per_day_max)
  local per_week = math.min(tonumber(u[6] or per_week_max), per_week_max)
  local log = logs[openid]
  if log_count(log, now - day) >= per_day or log_count(log, now - week) >= per_week then
    return final(openid, prev, 'skipped-cap')
  end
  if account_used >= account_daily then return final(openid, prev, 'skipped-account-cap') end
  if dry then return 'would-send', stamp, 1 end

  account_used = account_used + 1
  set_log(openid, log_with(logs[openid], run, now, now - week, true))
  reserved_here = reserved_here + 1
  if channel == 'custom' then
    set_cs(openid, log_with(cs[openid], run, now, now - KEEP.cs, true))
  elseif broadcast then
    set_mass(openid, log_with(masses[openid], run, now, now - month, true))
  end
  record(openid, 'reserved|' .. stamp)
  unpend(openid, prev)
  return 'reserved', stamp, 1
end

for _, row in ipairs(batch) do
  local reason, at, fresh = one(row[1], row[2], row[3])
  out[#out + 1] = reason
  out[#out + 1] = at
  out[#out + 1] = fresh
end
save_ledger()
save_logs()
save_masses()
save_cs()
if reserved_here > 0 then
  redis.call('ZADD', account, now, group)
  redis.call('HINCRBY', counts, group, reserved_here)
end
if not dry then redis.call('EXPIRE', ledger, ARGV[13]) end
for reason, n in pairs(tally) do redis.call('HINCRBY', report, digest .. '|' .. reason, n) end
return out
