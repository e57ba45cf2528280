-- Shared by decide.lua and settle.lua (put in front of each when it is registered, see
-- throttle.py): hashes read for a whole batch of subscribers in one call and written in one at
-- the end (a script is atomic: nobody sees them in between), and the sliding logs they hold.
local unpack = unpack or table.unpack  -- Lua 5.1 in Redis, 5.2+ elsewhere

-- The Redis server's clock in seconds, plus the simulation offset held at `offset_key`.
local function server_now(offset_key)
  local t = redis.call('TIME')
  return tonumber(t[1]) + tonumber(t[2]) / 1000000 + tonumber(redis.call('GET', offset_key) or '0')
end

-- A batch view of the hash `key` for these openids. Returns value (openid -> value, false when
-- absent), set(openid, value or false to delete), save() and changed (openid -> true once set).
local function open_hash(key, openids)
  local value, changed, order = {}, {}, {}
  for i = 1, #openids, 1000 do
    local ids = {unpack(openids, i, math.min(i + 999, #openids))}
    local got = redis.call('HMGET', key, unpack(ids))
    for j = 1, #ids do value[ids[j]] = got[j] end
  end
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
    for i = 1, #put, 1000 do redis.call('HSET', key, unpack(put, i, math.min(i + 999, #put))) end
    for i = 1, #drop, 1000 do redis.call('HDEL', key, unpack(drop, i, math.min(i + 999, #drop))) end
  end
  return value, set, save, changed
end

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
