-- Count one code tried against an mfa_token, before the code is checked.
-- KEYS[1]  the mfa token
-- ARGV     max tries per token
-- Returns  {'gone'} (no such token, or it has used up its tries and is deleted now) or
--          {'ok', account id bytes, tries so far}.
-- Rule: a token takes a bounded number of codes, so it cannot be used to guess on.
local account = redis.call('HGET', KEYS[1], 'a')
if not account then return {'gone'} end
local tries = redis.call('HINCRBY', KEYS[1], 't', 1)
if tries > tonumber(ARGV[1]) then
  redis.call('DEL', KEYS[1])
  return {'gone'}
end
return {'ok', account, tries}
