-- POST /v1/agent/verifications, each account checked BENCH_REPEAT_TRIES times: its right PIN
-- once, then wrong ones (an agent retrying, or a guesser). The accounts go in blocks: the
-- block's first try for each account, then its second try for each, and so on. A block holds
-- several times more accounts than there are requests in flight, so a try is normally
-- answered before the account's next one is sent: the right PIN is checked first and the
-- wrong ones then meet no PIN. Either way the wrong tries (BENCH_REPEAT_TRIES - 1) stay below
-- the PIN's tries and the account's lock. Each thread takes its own accounts.
local common = dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")
setup = common.number_threads
local rows, tries, block, sent, agent_header

function init(args)
  rows = {}
  for i, row in ipairs(common.load_rows()) do
    if (i - 1) % thread_count + 1 == thread_index then rows[#rows + 1] = row end
  end
  tries = tonumber(os.getenv("BENCH_REPEAT_TRIES"))
  local in_flight = math.ceil(tonumber(os.getenv("BENCH_CONNECTIONS")) / thread_count)
  block = math.min(math.max(4 * in_flight, 64), #rows)
  sent = 0
  agent_header = "Bearer " .. os.getenv("BENCH_AGENT_KEY")
end

local function wrong(pin, by)
  -- Same length, last digit changed: wrong for sure, and a different wrong PIN each try.
  local last = (tonumber(pin:sub(-1)) + by) % 10
  return pin:sub(1, -2) .. last
end

function request()
  local per_block = block * tries
  local first = math.floor(sent / per_block) * block
  local try = math.floor((sent % per_block) / block)
  local row = rows[(first + sent % block) % #rows + 1]
  sent = sent + 1
  local pin = row.pin
  if try > 0 then pin = wrong(row.pin, try) end
  local body = '{"email":"' .. row.email .. '","pin":"' .. pin .. '"}'
  return wrk.format("POST", "/v1/agent/verifications",
    { ["Authorization"] = agent_header, ["Content-Type"] = "application/json" }, body)
end

done = common.report
