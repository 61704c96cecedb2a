-- Issue a support PIN: check the caller's session, count the issuance limit, replace the PIN.
-- KEYS[1]  the account's PIN (hash: h = digest, a = failed tries), living as long as the PIN
-- KEYS[2]  the account's issuance rate-limit log
-- KEYS[3]  the caller's session (the account id, then 'm' after a second factor); for a
--          caller the service already believes (a provider's token), any key of the slot
-- ARGV     digest, ttl ms, limit amount, limit window ms, unique member,
--          the account id the session must hold ('' when KEYS[3] is not a session),
--          '1' when the session must have used a second factor (OIDC_REQUIRE_MFA), else '0'
-- Returns  {-1} when the session does not hold the account (nothing changed),
--          {-2} when a second factor is required and the session did not use one,
--          {0, ms until a slot frees} when over the limit (nothing changed),
--          {1, old h, old a, old pttl, expiry ms}: the replaced PIN, for an undo, and when
--          the new one expires (also kept in the hash as e, so its status reads the same).
-- Rules: a new PIN replaces the previous one in the same atomic step, so only the newest works.
-- It leaves the account's failure counter (pinfail) alone: a new PIN does not reset the count
-- of failed verifications (NIST SP 800-63B-4), so asking for PINs cannot buy more guesses.
if ARGV[6] ~= '' then
  local session = redis.call('GET', KEYS[3])
  if not session or string.sub(session, 1, 16) ~= ARGV[6] then
    return {-1}
  end
  if ARGV[7] == '1' and string.sub(session, 17, 17) ~= 'm' then
    return {-2}
  end
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
local old = redis.call('HMGET', KEYS[1], 'h', 'a')
local pttl = redis.call('PTTL', KEYS[1])
redis.call('DEL', KEYS[1])
local expires = now_ms + tonumber(ARGV[2])
redis.call('HSET', KEYS[1], 'h', ARGV[1], 'e', expires)
redis.call('PEXPIREAT', KEYS[1], expires)
return {1, old[1], old[2], pttl, expires}
