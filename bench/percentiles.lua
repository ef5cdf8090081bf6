-- wrk -s bench/percentiles.lua: after the run, one more line with the
-- latency percentiles wrk's --latency does not print (p99.9, p99.99), in
-- microseconds, from the same histogram. Only done() is defined, so wrk
-- still sends its one prebuilt request and the script costs nothing per
-- request. bench/bench.py parses the line.
done = function(summary, latency, requests)
  io.write(string.format(
    "Latency percentiles (us): p50 %d p90 %d p99 %d p99.9 %d p99.99 %d max %d\n",
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency:percentile(99.99), latency.max))
end
