-- wrk script: POST /v1/query with the load target's key (examples/load_target.rs); prints
-- errors (non-2xx count as `status`) and latency percentiles.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer load-test-key"
wrk.body = '{"question":"How does the gateway shed load?","k":2}'

function done(summary, latency, requests)
  io.write(string.format("requests=%d errors(connect=%d read=%d write=%d timeout=%d status=%d)\n",
    summary.requests, summary.errors.connect, summary.errors.read, summary.errors.write,
    summary.errors.timeout, summary.errors.status))
  io.write(string.format("p50=%.2fms p90=%.2fms p99=%.2fms max=%.2fms\n",
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000,
    latency.max / 1000))
end
