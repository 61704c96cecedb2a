-- Baseline: the framework's own cost (no I/O behind the route).
local common = dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")
wrk.method = "GET"
wrk.path = "/healthz"
done = common.report
