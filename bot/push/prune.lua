-- Drop entries past their window from some subscribers' sliding logs (batch.lua), by the Redis
-- server's clock; a log left empty is deleted. The scheduler runs it on a slice at each tick, so
-- the logs of those no digest reaches any more do not stay forever.
--
-- KEYS: 1 digest logs, 2 mass logs, 3 clock offset; ARGV: openids
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000 + tonumber(redis.call('GET', KEYS[3]) or '0')
local logs, set_log, save_logs = open_hash(KEYS[1], ARGV)
local masses, set_mass, save_masses = open_hash(KEYS[2], ARGV)
for _, openid in ipairs(ARGV) do
  if logs[openid] then set_log(openid, log_with(logs[openid], '', false, now - 7 * 86400)) end
  if masses[openid] then set_mass(openid, log_with(masses[openid], '', false, now - 31 * 86400)) end
end
save_logs()
save_masses()
return #ARGV
