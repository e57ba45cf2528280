-- Log one customer-service send made outside the digests (a late reply) in the subscriber's
-- window log (batch.lua), dropping entries past the 48 h window. A script, because decide.lua
-- and settle.lua rewrite the same field.
--
-- KEYS: 1 customer-service logs; ARGV: 1 openid, 2 tag, 3 time of the send
local openid, at = ARGV[1], tonumber(ARGV[3])
local logs, set_log, save_logs = open_hash(KEYS[1], {openid})
set_log(openid, log_with(logs[openid], ARGV[2], at, at - KEEP.cs, true))
save_logs()
return 1
