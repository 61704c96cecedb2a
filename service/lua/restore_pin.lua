-- Undo a PIN script's change after PostgreSQL refused its audit row.
-- KEYS[1]  the account's PIN; KEYS[2] its failure counter; KEYS[3] its lock
-- ARGV     the digest the change left in place ('' if none, '-' to leave the PIN alone),
--          the PIN before: h, e, a, pttl;
--          '1' to restore the failure counter (then its value and pttl) or '0';
--          '1' to remove the lock or '0'
-- Returns  1
-- Rule: no PIN is shown, consumed or refused without its audit row, so a change whose row
-- was not committed is taken back. A PIN issued since (another digest) is left alone.
local current = redis.call('HGET', KEYS[1], 'h')
if (not current) or current == ARGV[1] then
  redis.call('DEL', KEYS[1])
  if ARGV[2] ~= '' and tonumber(ARGV[5]) > 0 then
    redis.call('HSET', KEYS[1], 'h', ARGV[2], 'e', ARGV[3])
    if ARGV[4] ~= '' then redis.call('HSET', KEYS[1], 'a', ARGV[4]) end
    redis.call('PEXPIRE', KEYS[1], ARGV[5])
  end
end
if ARGV[6] == '1' then
  if ARGV[7] ~= '' and tonumber(ARGV[8]) > 0 then
    redis.call('SET', KEYS[2], ARGV[7], 'PX', ARGV[8])
  else
    redis.call('DEL', KEYS[2])
  end
end
if ARGV[9] == '1' then redis.call('DEL', KEYS[3]) end
return 1
