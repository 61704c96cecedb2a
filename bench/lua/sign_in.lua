-- POST /v1/auth/token (password grant): one argon2 verification per request.
local common = dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")
setup = common.number_threads
local rows, cursor, step, password

function init(args)
  rows = common.load_rows()
  cursor, step = thread_index, thread_count
  password = os.getenv("BENCH_PASSWORD")
end

function request()
  local row = rows[(cursor - 1) % #rows + 1]
  cursor = cursor + step
  local body = "grant_type=password&username=" .. row.email:gsub("@", "%%40")
    .. "&password=" .. password
  return wrk.format("POST", "/v1/auth/token",
    { ["Content-Type"] = "application/x-www-form-urlencoded" }, body)
end

done = common.report
