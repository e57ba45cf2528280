-- Record the outcomes of reserved sends, once each, and release what a send that never left
-- holds (failed-api, retry, skipped-*: the API refused it, or was never called). A send that
-- may have reached the subscriber moves their cursor (articles are not repeated), unless they
-- unsubscribed meanwhile (their record is gone and must stay gone).
--
-- The sliding logs then hold the time the outcome was known (at or after the delivery), not the
-- time of the reservation: a chunk sends for minutes, and the next digest must come 24 h after
-- the delivery, not after the reservation.
--
-- KEYS: 1 run ledger, 2 report hash, 3 account log (groups, see decide.lua), 4 clock offset,
--       5 account group counts, 6 digest logs, 7 mass logs, 8 customer-service logs, 9 cursors
--       (hashes: openid -> log, batch.lua), 10 members (zset: the subscribed)
-- ARGV: 1 run id, 2 digest name, 3 channel (visit|tag|custom|mass: tag and mass are broadcasts);
--       4... one per send: "openid <TAB> reserved value <TAB> outcome <TAB> detail", outcome one
--       of sent, unknown, failed-api, retry, or skipped-* (skipped-quota: the subscription
--       account's one mass send of the day was taken by another chunk; skipped-optout or
--       skipped-unsubscribed: a tag broadcast's subscriber left before the call; no call reached
--       them)
-- A ledger no longer holding our reservation was settled by a later attempt (as unknown): only
-- the truth "sent" replaces that. Returns the decision now recorded for each send.
local ledger, report, account = KEYS[1], KEYS[2], KEYS[3]
local now = server_now(KEYS[4])
local run, digest, channel = ARGV[1], ARGV[2], ARGV[3]
local out = {}
local tally = {}
local function count(reason, n)
  tally[reason] = (tally[reason] or 0) + n
end

local counts = KEYS[5]
local week, month = KEEP.digest, KEEP.mass

local batch, ids = {}, {}
for i = 4, #ARGV do
  batch[#batch + 1] = {string.match(ARGV[i], '^([^\t]*)\t([^\t]*)\t([^\t]*)\t?(.*)$')}
  ids[#ids + 1] = batch[#batch][1]
end
local current_of, record, save_ledger = open_hash(ledger, ids)
local logs, set_log, save_logs = open_hash(KEYS[6], ids)
local broadcast = channel == 'mass' or channel == 'tag'
local masses, set_mass, save_masses = open_hash(KEYS[7], broadcast and ids or {})
local cs, set_cs, save_cs = open_hash(KEYS[8], channel == 'custom' and ids or {})
local cursors, set_cursor, save_cursors = open_hash(KEYS[9], ids)
-- who is still subscribed: an unsubscribe purged their cursor, which must stay gone
local member = {}
local scores = in_parts('ZMSCORE', KEYS[10], ids)
for i = 1, #ids do member[ids[i]] = scores[i] end

local restamped = {}
local function restamp(openid, at)
  set_log(openid, log_with(logs[openid], run, now, now - week, false))
  if channel == 'custom' then
    if cs[openid] then set_cs(openid, log_with(cs[openid], run, now, now - KEEP.cs, false)) end
  elseif broadcast then
    set_mass(openid, log_with(masses[openid], run, now, now - month, false))
  end
  -- the send's group in the account log now counts from its latest send
  local group = run .. '|' .. at
  if not restamped[group] then
    restamped[group] = true
    redis.call('ZADD', account, 'XX', now, group)
  end
end

-- it may have reached the subscriber: count it from now and move their cursor (articles are not
-- repeated), unless they unsubscribed meanwhile
local function delivered(openid, at)
  restamp(openid, at)
  if member[openid] then
    set_cursor(openid, log_with(cursors[openid], digest, tonumber(at), 0, true))
  end
end

local function one(openid, reserved, outcome, detail)
  local current = current_of[openid]
  local at = string.match(reserved, '|(.+)$')
  if current ~= reserved then
    if outcome == 'sent' and current == 'unknown|' .. at then
      record(openid, 'sent|' .. at)
      delivered(openid, at)
      count('unknown', -1)
      count('sent', 1)
      return 'sent'
    end
    return string.match(current or 'none|', '^([^|]+)')
  end
  local value = outcome .. '|' .. at
  if detail ~= '' then value = value .. '|' .. detail end
  record(openid, value)
  if outcome ~= 'retry' then count(outcome, 1) end
  if outcome == 'failed-api' or outcome == 'retry' or string.sub(outcome, 1, 8) == 'skipped-' then
    -- nothing reached the subscriber: give back the cap, account and window slots
    set_log(openid, log_with(logs[openid], run, false, now - week, false))
    local group = run .. '|' .. at
    if redis.call('HEXISTS', counts, group) == 1 then redis.call('HINCRBY', counts, group, -1) end
    if channel == 'custom' then
      if cs[openid] then set_cs(openid, log_with(cs[openid], run, false, now - KEEP.cs, false)) end
    elseif broadcast then
      set_mass(openid, log_with(masses[openid], run, false, now - month, false))
    end
  else
    delivered(openid, at)
  end
  return outcome
end

for _, row in ipairs(batch) do
  out[#out + 1] = one(row[1], row[2], row[3], row[4])
end
save_ledger()
save_logs()
save_masses()
save_cs()
save_cursors()
for reason, n in pairs(tally) do redis.call('HINCRBY', report, digest .. '|' .. reason, n) end
return out
