-- Open a second-factor sign-in step (an mfa_token).
-- KEYS[1]  the mfa token (hash: a = account id, t = tries)
-- ARGV     account id bytes, ttl ms
-- Returns  1
redis.call('HSET', KEYS[1], 'a', ARGV[1], 't', 0)
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
