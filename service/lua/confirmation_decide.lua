-- The customer's answer to an agent-started confirmation (number matching).
-- KEYS[1]  the account's pending confirmation (hash id, code, agent, agent_id, case_ref,
--          choices, exp, since), living as long as the request (120 s)
-- KEYS[2]  the confirmation's decision (hash status, decided), kept for the agent to read
-- KEYS[3]  the account's consecutive failed verifications (pinfail)
-- KEYS[4]  the account's verification lock (pinlock)
-- ARGV     confirmation id, the answer's digest or 'deny', max failures, lock ms,
--          failure counter TTL ms, decision TTL ms
-- Returns  {'gone'} when no such confirmation is pending (nothing changed), else
--          {outcome, agent, agent_id, case_ref, locked_now} with outcome 'approved',
--          'denied' (a wrong number: counted as a failed verification), 'reported' (the
--          customer is on no call with Support) or 'locked' (the account refuses checks).
-- Rules: a request is answered once (it is deleted in the same step); a wrong number counts
-- toward the account's lock like a wrong PIN, so number matching adds no guesses.
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local pending = redis.call('HMGET', KEYS[1], 'id', 'code', 'agent', 'agent_id', 'case_ref', 'exp')
if not pending[1] or pending[1] ~= ARGV[1] or tonumber(pending[6]) <= now_ms then
  return {'gone'}
end
redis.call('DEL', KEYS[1])
local outcome, locked_now = 'denied', 0
if redis.call('EXISTS', KEYS[4]) == 1 then
  outcome = 'locked'
elseif ARGV[2] == 'deny' then
  outcome = 'reported'
elseif ARGV[2] == pending[2] then
  outcome = 'approved'
else
  local failures = redis.call('INCR', KEYS[3])
  redis.call('PEXPIRE', KEYS[3], ARGV[5])
  if failures >= tonumber(ARGV[3]) then
    redis.call('SET', KEYS[4], '1', 'PX', ARGV[4])
    locked_now = 1
  end
end
local status = outcome
if outcome ~= 'approved' then
  status = 'denied'
end
redis.call('HSET', KEYS[2], 'status', status, 'decided', now_ms)
redis.call('PEXPIRE', KEYS[2], ARGV[6])
return {outcome, pending[3], pending[4], pending[5] or '', locked_now}
