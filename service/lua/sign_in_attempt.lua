-- Admit one password sign-in attempt, counted as a failure until it is proven right.
-- KEYS[1]  the consecutive-failure counter of the attempt's subject (an email's unknown
--          clients, or one device)
-- KEYS[2]  the subject's rate-limit log
-- ARGV     max consecutive failures, ms the counter lives after the last failure,
--          limit amount, limit window ms, a member unique to this attempt
-- Returns  {1, failures so far} when admitted, {0, ms until it may be tried again} when the
--          subject is locked (max failures reached) or over its rate limit.
-- Rules: at most max consecutive failures per subject (NIST SP 800-63B-4: <= 100), counted
-- before the password is checked, so concurrent guesses cannot pass the limit; a refused
-- attempt is neither counted nor a failure; the lock ends an hour (ARGV[2]) after the last
-- failure, or when the caller clears the counter after a right password.
local failures = tonumber(redis.call('GET', KEYS[1]) or '0')
if failures >= tonumber(ARGV[1]) then
  return {0, math.max(redis.call('PTTL', KEYS[1]), 1)}
end
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local amount, window = tonumber(ARGV[3]), tonumber(ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now_ms - window)
local count = redis.call('ZCARD', KEYS[2])
if count >= amount then
  local oldest = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
  return {0, tonumber(oldest[2]) + window - now_ms}
end
redis.call('ZADD', KEYS[2], now_ms, ARGV[5])
redis.call('PEXPIRE', KEYS[2], window)
failures = redis.call('INCR', KEYS[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return {1, failures}
