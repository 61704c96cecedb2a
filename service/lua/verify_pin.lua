-- Check a caller's PIN against the account being discussed, and consume it when right.
-- KEYS[1]  the account's verification rate-limit log
-- KEYS[2]  the account's PIN (hash: h = digest, a = failed tries), living as long as the PIN
-- KEYS[3]  the account's consecutive-failure counter
-- KEYS[4]  the account's lock
--          (for an address with no account, the same four keys named by the email's digest:
--          it takes the same steps, and no PIN is ever stored there)
-- ARGV     limit amount, limit window ms, unique member, candidate digest, max tries per PIN,
--          max consecutive failures, lock ms, failure counter ttl ms
-- Returns  {'limited', ms until a slot frees} (nothing else changed), or
--          {outcome, h, a, pttl, failures, failures pttl} with the state before this
--          check (for an undo); outcome is 'valid', 'wrong_pin', 'no_pin', 'locked' (this
--          failure locked the account) or 'locked_out' (already locked; nothing evaluated).
-- Rules: the limit is counted first, so a refused request is not a guess; a PIN works once;
-- a PIN dies after max tries; the failure counter belongs to the account, and at max failures
-- the account is locked for every PIN; digests are compared in constant time.
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local amount, window = tonumber(ARGV[1]), tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now_ms - window)
local count = redis.call('ZCARD', KEYS[1])
if count >= amount then
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return {'limited', tonumber(oldest[2]) + window - now_ms}
end
redis.call('ZADD', KEYS[1], now_ms, ARGV[3])
redis.call('PEXPIRE', KEYS[1], window)

local function equal(a, b)
  if #a ~= #b then return false end
  local diff = 0
  for i = 1, #a do
    diff = bit.bor(diff, bit.bxor(string.byte(a, i), string.byte(b, i)))
  end
  return diff == 0
end

local pin = redis.call('HMGET', KEYS[2], 'h', 'a')
local pttl = redis.call('PTTL', KEYS[2])
local fails = redis.call('GET', KEYS[3])
local fails_pttl = redis.call('PTTL', KEYS[3])
local function answer(outcome)
  return {outcome, pin[1], pin[2], pttl, fails, fails_pttl}
end
if redis.call('EXISTS', KEYS[4]) == 1 then
  return answer('locked_out')
end
if pin[1] and equal(pin[1], ARGV[4]) then
  redis.call('DEL', KEYS[2], KEYS[3])
  return answer('valid')
end
if pin[1] and redis.call('HINCRBY', KEYS[2], 'a', 1) >= tonumber(ARGV[5]) then
  redis.call('DEL', KEYS[2])
end
local failures = redis.call('INCR', KEYS[3])
redis.call('PEXPIRE', KEYS[3], ARGV[8])
if failures >= tonumber(ARGV[6]) then
  redis.call('DEL', KEYS[2], KEYS[3])
  redis.call('SET', KEYS[4], '1', 'PX', ARGV[7])
  return answer('locked')
end
if pin[1] then
  return answer('wrong_pin')
end
return answer('no_pin')
