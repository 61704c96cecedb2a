-- Take a single-use marker: delete it only if it holds the expected value.
-- KEYS[1]  the marker (e.g. the newest password-reset request of an account)
-- ARGV     the value it must hold
-- Returns  1 when it held the value and is now gone, 0 otherwise (nothing changed).
-- Rule: of two concurrent uses of one link only one succeeds, and an older link (another
-- value) cannot spend the newest one.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
