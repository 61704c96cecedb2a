-- POST /v1/agent/verifications with a mix of right (70%), wrong (15%) and replaced (15%) PINs.
-- Each request takes the next account, so an account sees at most one attempt per pass over
-- the data: a right PIN succeeds once, and the account's consecutive-failure lock is never
-- reached (a pass adds at most one failure, and each run starts with none).
local common = dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")
setup = common.number_threads
local rows, cursor, step, agent_header
-- 20 slots: 14 right, 3 wrong, 3 replaced, interleaved.
local mix = { "r", "r", "w", "r", "r", "o", "r", "r", "r", "w",
              "r", "o", "r", "r", "r", "w", "r", "r", "o", "r" }

function init(args)
  rows = common.load_rows()
  cursor, step = thread_index, thread_count
  agent_header = "Bearer " .. os.getenv("BENCH_AGENT_KEY")
end

local function wrong(pin)
  -- Same length, last digit changed: wrong for sure.
  local last = (tonumber(pin:sub(-1)) + 1) % 10
  return pin:sub(1, -2) .. last
end

function request()
  local row = rows[(cursor - 1) % #rows + 1]
  local kind = mix[(cursor - 1) % #mix + 1]
  cursor = cursor + step
  local pin = row.pin
  if kind == "w" then pin = wrong(row.pin) elseif kind == "o" then pin = row.old end
  local body = '{"email":"' .. row.email .. '","pin":"' .. pin .. '"}'
  return wrk.format("POST", "/v1/agent/verifications",
    { ["Authorization"] = agent_header, ["Content-Type"] = "application/json" }, body)
end

done = common.report
