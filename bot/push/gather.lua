-- Read what selecting a chunk's articles needs, in one round trip (read only).
--
-- ARGV: 1 user key prefix, 2 interests key prefix, 3 the digest's cursor field, 4... openids
-- Returns, per openid: {tz, quiet, lang, since, cursor, term, weight, term, weight, ...}
local out = {}
for i = 4, #ARGV do
  local openid = ARGV[i]
  local row = redis.call('HMGET', ARGV[1] .. openid, 'tz', 'quiet', 'lang', 'since', ARGV[3])
  local terms = redis.call('ZRANGE', ARGV[2] .. openid, 0, -1, 'WITHSCORES')
  for j = 1, 5 do
    if not row[j] then row[j] = '' end
  end
  for j = 1, #terms do row[5 + j] = terms[j] end
  out[#out + 1] = row
end
return out
