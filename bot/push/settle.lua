-- Record the outcome of a reserved send, once, and release what a send that never left holds.
--
-- KEYS: 1 run ledger, 2 report hash, 3 digest log, 4 account log, 5 customer-service log,
--       6 mass log, 7 user hash
-- ARGV: 1 openid, 2 run id, 3 digest name, 4 the reserved value, 5 outcome
--       (sent | unknown | failed-api | retry), 6 detail (an error code), 7 the user's cursor field
-- A send that may have reached the subscriber moves their cursor (articles are not repeated),
-- unless they unsubscribed meanwhile (their record is gone and must stay gone).
-- A ledger no longer holding our reservation was settled by a later attempt (as unknown): only
-- the truth "sent" replaces that. Returns the decision now recorded.
local openid, run, digest, reserved, outcome = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local current = redis.call('HGET', KEYS[1], openid)
local at = string.match(reserved, '|(.+)$')
if current ~= reserved then
  if outcome == 'sent' and current == 'unknown|' .. at then
    redis.call('HSET', KEYS[1], openid, 'sent|' .. at)
    if redis.call('EXISTS', KEYS[7]) == 1 then redis.call('HSET', KEYS[7], ARGV[7], at) end
    redis.call('HINCRBY', KEYS[2], digest .. '|unknown', -1)
    redis.call('HINCRBY', KEYS[2], digest .. '|sent', 1)
    return 'sent'
  end
  return string.match(current or 'none|', '^([^|]+)')
end
local value = outcome .. '|' .. at
if ARGV[6] ~= '' then value = value .. '|' .. ARGV[6] end
redis.call('HSET', KEYS[1], openid, value)
if outcome ~= 'retry' then redis.call('HINCRBY', KEYS[2], digest .. '|' .. outcome, 1) end
if outcome == 'failed-api' or outcome == 'retry' then
  -- nothing reached the subscriber: give back the cap, account and window slots
  redis.call('ZREM', KEYS[3], run)
  redis.call('ZREM', KEYS[4], run .. '|' .. openid)
  redis.call('ZREM', KEYS[5], 'digest|' .. run)
  redis.call('ZREM', KEYS[6], run)
end
if (outcome == 'sent' or outcome == 'unknown') and redis.call('EXISTS', KEYS[7]) == 1 then
  redis.call('HSET', KEYS[7], ARGV[7], at)
end
return outcome
