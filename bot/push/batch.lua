-- Shared by the throttle's scripts (put in front of each when it is registered, see
-- throttle.py): hashes read for a whole batch of subscribers in one call and written in one at
-- the end (a script is atomic: nobody sees them in between), and the sliding logs they hold.
local unpack = unpack or table.unpack  -- Lua 5.1 in Redis, 5.2+ elsewhere

-- The Redis server's clock in seconds, plus the simulation offset held at `offset_key`.
local function server_now(offset_key)
  local t = redis.call('TIME')
  return tonumber(t[1]) + tonumber(t[2]) / 1000000 + tonumber(redis.call('GET', offset_key) or '0')
end

-- `command key` with the items of `list` as its arguments, in calls of at most 1000 of them (a
-- batch can be longer than Lua's stack allows); the replies of a command that answers one value
-- per argument (HMGET, ZMSCORE), in the order of `list`.
local function in_parts(command, key, list)
  local replies = {}
  for i = 1, #list, 1000 do
    local got = redis.call(command, key, unpack(list, i, math.min(i + 999, #list)))
    if type(got) == 'table' then
      for j = 1, #got do replies[i + j - 1] = got[j] end
    end
  end
  return replies
end

-- A batch view of the hash `key` for these openids. Returns value (openid -> value, false when
-- absent), set(openid, value or false to delete), save() and changed (openid -> true once set).
local function open_hash(key, openids)
  local value, changed, order = {}, {}, {}
  local got = in_parts('HMGET', key, openids)
  for i = 1, #openids do value[openids[i]] = got[i] end
  local function set(openid, v)
    if not changed[openid] then
      changed[openid] = true
      order[#order + 1] = openid
    end
    value[openid] = v
  end
  local function save()
    local put, drop = {}, {}
    for _, openid in ipairs(order) do
      if value[openid] then
        put[#put + 1] = openid
        put[#put + 1] = value[openid]
      else
        drop[#drop + 1] = openid
      end
    end
    in_parts('HSET', key, put)  -- 1000 arguments are 500 whole pairs
    in_parts('HDEL', key, drop)
  end
  return value, set, save, changed
end

-- How long each sliding log keeps an entry: the longest window a rule counts it in (the weekly
-- cap, the service account's 4 mass sends in 31 days, the 48 h customer-service window).
local KEEP = {digest = 7 * 86400, mass = 31 * 86400, cs = 2 * 86400}

-- A subscriber's sliding log, one field of a log hash: "tag time;tag time...", a tag (a run id,
-- a digest name) naming each entry; no tag holds a space or a ';'. The entries are read with
-- string patterns and kept as they were written: parsing them into tables and formatting the
-- times again was most of the scripts' time.

-- The log with `tag` at time `at` (moved when present; added when absent if `add`; removed when
-- `at` is false) and without entries older than `keep_after`; false when nothing is left.
local function log_with(text, tag, at, keep_after, add)
  local parts, found = {}, false
  local new = at and (tag .. ' ' .. string.format('%.3f', at))
  if text then
    for entry, name, time in string.gmatch(text, '(([^ ;]+) ([^;]+))') do
      if name == tag then
        found = true
        if new then parts[#parts + 1] = new end
      elseif tonumber(time) >= keep_after then
        parts[#parts + 1] = entry
      end
    end
  end
  if new and add and not found then parts[#parts + 1] = new end
  if #parts == 0 then return false end
  return table.concat(parts, ';')
end

-- How many entries of the log are at or after `since`.
local function log_count(text, since)
  local n = 0
  if text then
    for time in string.gmatch(text, '[^ ;]+ ([^;]+)') do
      if tonumber(time) >= since then n = n + 1 end
    end
  end
  return n
end
