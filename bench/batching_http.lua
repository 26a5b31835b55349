-- wrk script for bench/batching_http.py: POSTs predict calls, cycling through request bodies.
--
-- Environment (set by batching_http.py):
--   BENCH_BODIES   a file with one JSON request body per line
--   BENCH_API_KEY  the bearer token
-- Requests are formatted once at start-up, so wrk spends no time building them under load.
-- At the end one line is printed for batching_http.py to parse:
--   RESULT requests=... duration_s=... p50_ms=... p99_ms=... errors=... non2xx=...

local prepared = {}
local next_index = 0

init = function(args)
  local headers = {
    ["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer " .. os.getenv("BENCH_API_KEY"),
  }
  for body in io.lines(os.getenv("BENCH_BODIES")) do
    prepared[#prepared + 1] = wrk.format("POST", nil, headers, body)
  end
  if #prepared == 0 then
    error("BENCH_BODIES holds no request bodies")
  end
end

request = function()
  next_index = next_index % #prepared + 1
  return prepared[next_index]
end

done = function(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    "RESULT requests=%d duration_s=%.3f p50_ms=%.3f p99_ms=%.3f errors=%d non2xx=%d\n",
    summary.requests, summary.duration / 1e6,
    latency:percentile(50) / 1000.0, latency:percentile(99) / 1000.0,
    errors.connect + errors.read + errors.write + errors.timeout, errors.status))
end
