-- Shared by the benchmark's wrk scripts (loaded with dofile). Reads the generated data file
-- (one account per line: session token, email, current PIN, replaced PIN; tab-separated) and
-- prints wrk's figures as one JSON line that bench/wrk.py parses.
local common = {}

-- With `signed_in`, only the accounts that have a session (the verification run's extra
-- accounts have "-" for a token).
function common.load_rows(signed_in)
  local rows = {}
  for line in io.lines(os.getenv("BENCH_DATA")) do
    local token, email, pin, old = line:match("^(%S+)\t(%S+)\t(%S+)\t(%S+)$")
    if token and not (signed_in and token == "-") then
      rows[#rows + 1] = { token = token, email = email, pin = pin, old = old }
    end
  end
  return rows
end

-- Threads walk disjoint slices of the accounts (thread t takes t, t+T, t+2T, ...), so two
-- connections rarely act on the same account at once.
local next_thread = 0
function common.number_threads(thread)
  next_thread = next_thread + 1
  thread:set("thread_index", next_thread)
  thread:set("thread_count", tonumber(os.getenv("BENCH_THREADS") or "1"))
end

function common.report(summary, latency)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,'
      .. '"p999_us":%d,"max_us":%d,"mean_us":%.1f,"errors_connect":%d,"errors_read":%d,'
      .. '"errors_write":%d,"errors_status":%d,"errors_timeout":%d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency:percentile(99.9), latency.max, latency.mean,
    e.connect, e.read, e.write, e.status, e.timeout))
end

return common
