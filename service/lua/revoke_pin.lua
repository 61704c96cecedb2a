-- Revoke the account's PIN.
-- KEYS[1]  the account's PIN
-- Returns  {h, a, pttl} of the PIN as it was (h is false when none was active), for an undo.
local old = redis.call('HMGET', KEYS[1], 'h', 'a')
local pttl = redis.call('PTTL', KEYS[1])
redis.call('DEL', KEYS[1])
return {old[1], old[2], pttl}
