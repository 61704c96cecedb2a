-- After a wrong second-factor code: lock the account when it has reached the limit.
-- KEYS[1]  the account's consecutive wrong-code counter; KEYS[2] the account's lock
-- ARGV     max failures, lock ms
-- Returns  1 only to the caller that set the lock (it writes the audit row), else 0.
local failures = tonumber(redis.call('GET', KEYS[1]) or '0')
if failures >= tonumber(ARGV[1]) then
  redis.call('DEL', KEYS[1])
  if redis.call('SET', KEYS[2], '1', 'PX', ARGV[2], 'NX') then return 1 end
end
return 0
