-- POST /v1/me/support-pin, each request signed in as the next account.
local common = dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")
setup = common.number_threads
local rows, cursor, step

function init(args)
  rows = common.load_rows(true)
  cursor, step = thread_index, thread_count
end

function request()
  local row = rows[(cursor - 1) % #rows + 1]
  cursor = cursor + step
  return wrk.format("POST", "/v1/me/support-pin", { ["Authorization"] = "Bearer " .. row.token })
end

done = common.report
