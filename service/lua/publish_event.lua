-- Publish an account's live events: keep them for replay, send them to every instance's
-- streams, and (for a finished check) open the "in contact with Support" window.
-- KEYS[1]  the account's event stream (a Redis stream; entries older than the replay window
--          are trimmed)
-- KEYS[2]  the account's contact window (hash agent, case_ref, since)
-- ARGV     replay window ms, pub/sub channel, contact window ms (0: leave the window alone),
--          agent, case ref, since (RFC 3339), then a name and JSON data per event
-- Returns  the events' ids (stream entry ids), which a page sends back as Last-Event-ID.
-- Rule: ids come from one Redis stream per account, so they increase, and a reconnect gets
-- exactly the events after the last one it saw.
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local replay = tonumber(ARGV[1])
local window = tonumber(ARGV[3])
if window > 0 then
  redis.call('HSET', KEYS[2], 'agent', ARGV[4], 'case_ref', ARGV[5], 'since', ARGV[6])
  redis.call('PEXPIRE', KEYS[2], window)
end
local ids = {}
for i = 7, #ARGV, 2 do
  local id = redis.call('XADD', KEYS[1], 'MINID', '~', now_ms - replay, '*',
    'e', ARGV[i], 'd', ARGV[i + 1])
  redis.call('PUBLISH', ARGV[2], id .. '\n' .. ARGV[i] .. '\n' .. ARGV[i + 1])
  ids[#ids + 1] = id
end
redis.call('PEXPIRE', KEYS[1], replay)
return ids
