-- The run's ledger for one batch, shared by decide.lua and settle.lua (prepended to each when
-- it is registered, see throttle.py): read for the whole batch in one call, written in one at the
-- end. A script is atomic, so nobody sees the ledger in between.
local unpack = unpack or table.unpack  -- Lua 5.1 in Redis, 5.2+ elsewhere

-- Returns value (openid -> ledger value, false when absent), set(openid, value), save() and
-- changed (openid -> true once set in this batch).
local function open_ledger(key, openids)
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
    for i = 1, #order, 500 do
      local args = {}
      for j = i, math.min(i + 499, #order) do
        args[#args + 1] = order[j]
        args[#args + 1] = value[order[j]]
      end
      redis.call('HSET', key, unpack(args))
    end
  end
  return value, set, save, changed
end

