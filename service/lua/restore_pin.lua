-- Undo a PIN script's change after PostgreSQL refused its audit row.
-- KEYS[1]  the account's PIN; KEYS[2] its failure counter; KEYS[3] its lock
-- ARGV     the digest the change left in place ('' if none, '-' to leave the PIN alone),
--          the PIN before: h, a, pttl;
--          '1' to restore the failure counter (then its value and pttl) or '0';
--          '1' to remove the lock or '0'
-- Returns  1
-- Rule: no PIN is shown, consumed or refused without its audit row, so a change whose row
-- was not committed is taken back. A PIN issued since (another digest) is left alone.
local current = redis.call('HGET', KEYS[1], 'h')
if (not current) or current == ARGV[1] then
  redis.call('DEL', KEYS[1])
  if ARGV[2] ~= '' and tonumber(ARGV[4]) > 0 then
    redis.call('HSET', KEYS[1], 'h', ARGV[2])
    if ARGV[3] ~= '' then redis.call('HSET', KEYS[1], 'a', ARGV[3]) end
    redis.call('PEXPIRE', KEYS[1], ARGV[4])
  end
end
if ARGV[5] == '1' then
  if ARGV[6] ~= '' and tonumber(ARGV[7]) > 0 then
    redis.call('SET', KEYS[2], ARGV[6], 'PX', ARGV[7])
  else
    redis.call('DEL', KEYS[2])
  end
end
if ARGV[8] == '1' then redis.call('DEL', KEYS[3]) end
return 1
