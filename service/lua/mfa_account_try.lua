-- Count a second-factor code as a failure of the account until it is proven right.
-- KEYS[1]  the account's consecutive wrong-code counter; KEYS[2] the account's lock
-- ARGV     max failures, lock ms, failure counter ttl ms
-- Returns  {'locked', ms left} while locked (or {'locked', lock ms, 'new'} when wrong codes
--          raced past the limit and this call locked it), else {'ok', failures}.
-- Rule: at most max failures wrong codes per account across every sign-in (NIST: <= 100).
if redis.call('EXISTS', KEYS[2]) == 1 then
  return {'locked', redis.call('PTTL', KEYS[2])}
end
local failures = redis.call('INCR', KEYS[1])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
if failures > tonumber(ARGV[1]) then
  redis.call('DEL', KEYS[1])
  redis.call('SET', KEYS[2], '1', 'PX', ARGV[2])
  return {'locked', tonumber(ARGV[2]), 'new'}
end
return {'ok', failures}
