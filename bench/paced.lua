-- wrk -s bench/paced.lua: a fixed offered load, roughly, as wrk2 gives
-- (Debian has no wrk2). Each connection waits WRK_INTERVAL_MS (default 10)
-- on average, drawn between half and one and a half times that so the
-- connections do not move in step, after each response before its next
-- request: the offered load is about connections * 1000 / (interval +
-- latency) requests a second, the same for two servers whose latency is
-- far below the interval. Like wrk2's, the recorded latency is each
-- request's own (this pacing has wrk's coordinated omission: a request
-- late by a stall delays its connection's next one). After the run, one
-- line of percentiles in microseconds, which bench/shadow.py parses.
local interval = tonumber(os.getenv("WRK_INTERVAL_MS") or "10")

local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("seed", os.time() + threads)
end

function init(args)
  math.randomseed(seed or os.time())
end

function delay()
  return interval * (0.5 + math.random())
end

done = function(summary, latency, requests)
  io.write(string.format(
    "Latency percentiles (us): p50 %d p90 %d p99 %d p99.9 %d max %d\n",
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max))
end
