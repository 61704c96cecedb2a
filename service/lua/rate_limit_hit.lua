-- One hit on a sliding-window rate-limit log (a sorted set of hit times in ms).
-- KEYS[1]  the limit's log
-- ARGV     amount, window ms, a member unique to this hit
-- Returns  {1, hits left} when the hit is counted, {0, ms until a slot frees} when refused.
-- Rule: a refused hit is not recorded, so a client that keeps hammering is not shut out for
-- longer than the window; Redis's clock is the one every instance agrees on.
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local amount, window = tonumber(ARGV[1]), tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now_ms - window)
local count = redis.call('ZCARD', KEYS[1])
if count >= amount then
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return {0, tonumber(oldest[2]) + window - now_ms}
end
redis.call('ZADD', KEYS[1], now_ms, ARGV[3])
redis.call('PEXPIRE', KEYS[1], window)
return {1, amount - count - 1}
