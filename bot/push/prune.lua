-- Drop entries past their window from some subscribers' sliding logs in one log hash (batch.lua),
-- by the Redis server's clock; a log left empty is deleted. The scheduler runs it on a slice of
-- each hash at each tick, so the logs of those no digest reaches any more do not stay forever.
--
-- KEYS: 1 the log hash, 2 clock offset; ARGV: 1 the log's name in KEEP (batch.lua), 2... openids
local now = server_now(KEYS[2])
local keep_after = now - KEEP[ARGV[1]]
local openids = {unpack(ARGV, 2)}
local logs, set_log, save_logs = open_hash(KEYS[1], openids)
for _, openid in ipairs(openids) do
  if logs[openid] then set_log(openid, log_with(logs[openid], '', false, keep_after)) end
end
save_logs()
return #openids
